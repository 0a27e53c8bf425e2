# Rewrites deploy/adapters/<id>.yaml into the example that package ptibus-adapter installs
# as /etc/ptibus/adapters/<id>.yaml (deploy/packaging.cmake): the values "keys/..." and
# "state/<id>/..." (relative to the file's folder in the source tree) become the package's
# folders. docs/packaging.md, "ptibus-adapter", says why these.
1i\
# Installed by package ptibus-adapter (a conffile: an upgrade keeps your edits; the pristine\
# example is /usr/share/ptibus/adapters/). Keys in /etc/ptibus/adapters/keys/, state in\
# /var/lib/ptibus-adapter/<id>/ (ptibus-adapter@<id>.service's StateDirectory). Set\
# broker.endpoint to the broker's address. man ptibus-adapter, docs/operations.md.
s|^\( *[a-z_]*: \)keys/|\1/etc/ptibus/adapters/keys/|
s|^\( *[a-z_]*: \)state/|\1/var/lib/ptibus-adapter/|
