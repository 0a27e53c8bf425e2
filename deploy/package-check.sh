#!/usr/bin/env bash
# Builds the Debian packages, checks their contents, lints them, installs them on this
# machine and runs the installed programs, then removes and purges them checking what
# stays. For CI (.ci/run calls it after the tests): run as root on a fresh Debian 12
# machine; it installs what it needs (lintian) itself. About a minute.
#
#   deploy/package-check.sh            build in build-pkg/, check, install, purge
#
# It refuses to run where ptibus-broker is installed or /etc/ptibus or /var/lib/ptibus
# exist (it would purge a real installation); the keys for --check-config are generated
# in a temporary copy of the installed /etc/ptibus, never in /etc/ptibus itself.
# shellcheck disable=SC2015 # "A && B || die": die when either fails
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build="$top/build-pkg"
start=$(date +%s)

die() { echo "package-check: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (it installs and purges the packages)"
if dpkg-query -W -f='${Status}' ptibus-broker 2>/dev/null | grep -q installed ||
    [ -e /etc/ptibus ] || [ -e /var/lib/ptibus ]; then
    die "ptibus is installed here (or /etc/ptibus, /var/lib/ptibus exist): not on this machine"
fi

"$top/deploy/install-deps.sh"
export DEBIAN_FRONTEND=noninteractive
if ! command -v lintian >/dev/null; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends lintian >/dev/null
fi

echo "== build the packages (dpkg-buildflags, hardening=+all)"
export DEB_BUILD_MAINT_OPTIONS=hardening=+all
CFLAGS="$(dpkg-buildflags --get CFLAGS) $(dpkg-buildflags --get CPPFLAGS)" \
    LDFLAGS="$(dpkg-buildflags --get LDFLAGS)" \
    cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
    -DCMAKE_SKIP_INSTALL_ALL_DEPENDENCY=ON -DPTIBUS_BENCH=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target ptibusd ptibusctl ptibus_package_files ptibus_schemas \
    >/dev/null
rm -f "$build"/ptibus-*.deb
(cd "$build" && cpack -G DEB >/dev/null)
broker_deb=$(ls "$build"/ptibus-broker_*.deb)
doc_deb=$(ls "$build"/ptibus-doc_*_all.deb)

echo "== contents"
expect() { # DEB PATH...: each path is in the package
    local deb=$1 list
    shift
    list=$(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|; s|/$||')
    for p in "$@"; do
        grep -qxF "$p" <<<"$list" || die "$(basename "$deb") lacks $p"
    done
}
dpkg-deb -c "$broker_deb" | awk '$1 !~ /^d/ {print "  " $1, $6}'
expect "$broker_deb" /usr/bin/ptibusd /usr/bin/ptibusctl /etc/ptibus/broker.yaml \
    /lib/systemd/system/ptibusd.service /usr/share/man/man8/ptibusd.8.gz \
    /usr/share/man/man1/ptibusctl.1.gz /usr/share/ptibus/broker.yaml.example \
    /usr/share/doc/ptibus-broker/copyright /usr/share/doc/ptibus-broker/changelog.gz
expect "$doc_deb" /usr/share/doc/ptibus/README.md /usr/share/doc/ptibus/operations.md \
    /usr/share/doc/ptibus/packaging.md /usr/share/doc/ptibus/configuration.md \
    /usr/share/doc/ptibus-doc/copyright /usr/share/doc/ptibus/integration.md \
    /usr/share/doc/ptibus/schemas/referral.schema.json
dpkg-deb --ctrl-tarfile "$broker_deb" | tar -t | grep -qx './conffiles' || die "no conffiles"
[ "$(dpkg-deb --ctrl-tarfile "$broker_deb" | tar -xO ./conffiles)" = /etc/ptibus/broker.yaml ] ||
    die "conffiles is not /etc/ptibus/broker.yaml"
depends=$(dpkg-deb -f "$broker_deb" Depends)
echo "  Depends: $depends"
for lib in libzmq5 libsodium23 liblmdb0 libuv1 adduser; do # computed by dpkg-shlibdeps
    grep -q "$lib" <<<"$depends" || die "Depends lacks $lib"
done

echo "== lintian"
lintian --fail-on error --tag-display-limit 0 "$broker_deb" "$doc_deb" 2>&1 |
    grep -v 'running with root privileges' || true
lintian --fail-on error "$broker_deb" "$doc_deb" >/dev/null 2>&1 || die "lintian reports errors"

echo "== the unit"
unit="$top/deploy/ptibusd.service"
for opt in Type=notify WatchdogSec= User=ptibus StateDirectory=ptibus ConfigurationDirectory=ptibus \
    ProtectSystem=strict ProtectHome=yes PrivateTmp=yes NoNewPrivileges=yes \
    RestrictAddressFamilies= SystemCallFilter=@system-service 'CapabilityBoundingSet=$' \
    MemoryDenyWriteExecute=yes LockPersonality=yes; do
    grep -q "^$opt" "$unit" || die "ptibusd.service lacks $opt"
done
if command -v systemd-analyze >/dev/null; then
    # Fails above an exposure of 2.5 (the threshold is in tenths).
    systemd-analyze security --offline=true --threshold=25 "$unit" | tail -n 1
fi

# Everything installed from here on is purged at exit, state included.
installed=no
pid=""
cleanup() {
    [ -z "$pid" ] || kill -KILL "$pid" 2>/dev/null || true
    [ "$installed" = yes ] || return 0
    PTIBUS_PURGE_STATE=yes apt-get purge -y -qq ptibus-broker ptibus-doc >/dev/null 2>&1 || true
    rm -rf "${tmp:-/nonexistent}"
}
trap cleanup EXIT

echo "== install"
installed=yes
apt-get install -y -qq "$broker_deb" "$doc_deb" >/dev/null
getent passwd ptibus >/dev/null && getent group ptibus >/dev/null || die "no ptibus user or group"
[ "$(stat -c '%a %U:%G' /var/lib/ptibus)" = "700 ptibus:ptibus" ] || die "/var/lib/ptibus: $(stat -c '%a %U:%G' /var/lib/ptibus)"
[ "$(stat -c '%a %U:%G' /etc/ptibus/keys)" = "750 root:ptibus" ] || die "/etc/ptibus/keys: $(stat -c '%a %U:%G' /etc/ptibus/keys)"
dpkg-query -W -f='${Conffiles}\n' ptibus-broker | grep -q /etc/ptibus/broker.yaml || die "conffile not registered"
/usr/bin/ptibusd --version
if command -v systemd-analyze >/dev/null; then
    man_opt=--man=no
    command -v man >/dev/null && man_opt=--man=yes
    systemd-analyze verify "$man_opt" /lib/systemd/system/ptibusd.service
    echo "  systemd-analyze verify: OK"
fi

echo "== --check-config on the installed example, with keys made by the installed ptibusctl"
# A copy of /etc/ptibus: the example names its keys relative to itself (keys/...).
tmp=$(mktemp -d /tmp/ptibus-package-check.XXXXXX)
chmod 755 "$tmp"
cp -a /etc/ptibus "$tmp/ptibus"
conf="$tmp/ptibus/broker.yaml"
keys="$tmp/ptibus/keys"
gen() { /usr/bin/ptibusctl keygen --dir "$keys" --kind "$1" "$2" >/dev/null; }
gen curve broker
gen sign broker
gen hmac person_index
partners=$(sed -n 's/^  - id: \([a-z0-9_]*\)$/\1/p' "$conf")
for p in $partners; do gen curve "$p"; done
# The broker's secrets are the ptibus user's; public keys may stay root's.
chown ptibus: "$keys/broker.key" "$keys/broker.sign" "$keys/person_index.hmac"
# An administrator's key pair is made where the administrator works, not in /etc/ptibus.
install -d -m 0700 "$tmp/admin"
/usr/bin/ptibusctl keygen --dir "$tmp/admin" --kind curve admin >/dev/null
as_ptibus() { setpriv --reuid=ptibus --regid=ptibus --init-groups "$@"; }
# Without one partner's public key the check must fail (and say which file).
mv "$keys/caf.pub" "$tmp/caf.pub"
if as_ptibus /usr/bin/ptibusd --config "$conf" --check-config 2>"$tmp/err"; then
    die "--check-config passed without keys/caf.pub"
fi
grep -q caf.pub "$tmp/err" || die "--check-config did not name caf.pub: $(cat "$tmp/err")"
mv "$tmp/caf.pub" "$keys/caf.pub"
as_ptibus /usr/bin/ptibusd --config "$conf" --check-config

echo "== the installed broker runs, as ptibus, and stops cleanly"
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
port=$(free_port)
admin_key=$(cat "$tmp/admin/admin.pub")
admin_key=${admin_key//&/\\&}
install -d -m 0700 -o ptibus -g ptibus "$tmp/state"
sed -e "s|^listen: .*|listen: \"tcp://127.0.0.1:$port\"|" \
    -e "s|ipc:///run/ptibus/admin.sock|ipc://$tmp/state/admin.sock|" \
    -e "s|^    - \"R2zk.*\"|    - \"$admin_key\"|" \
    -e "s|127.0.0.1:9400|127.0.0.1:$(free_port)|" \
    -e "s|dir: /var/lib/ptibus/journal|dir: $tmp/state/journal|" "$conf" >"$tmp/ptibus/run.yaml"
setpriv --reuid=ptibus --regid=ptibus --init-groups /usr/bin/ptibusd --config "$tmp/ptibus/run.yaml" >"$tmp/ptibusd.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    kill -0 $pid 2>/dev/null || { cat "$tmp/ptibusd.log"; die "ptibusd exited"; }
    sleep 0.1
done
/usr/bin/ptibusctl stats --endpoint "ipc://$tmp/state/admin.sock" --server-key "$keys/broker.pub" \
    --key "$tmp/admin/admin.key" --pub "$tmp/admin/admin.pub" >/dev/null || die "ptibusctl stats failed"
kill -TERM $pid
st=0
wait $pid || st=$?
pid=""
[ $st -eq 0 ] || { cat "$tmp/ptibusd.log"; die "ptibusd exited with status $st on SIGTERM"; }
/usr/bin/ptibusctl journal-verify --journal "$tmp/state/journal" --pubkey "$keys/broker.sign.pub"

echo "== an edited configuration survives a reinstall; remove keeps it and the state"
echo "# edited by package-check" >>/etc/ptibus/broker.yaml
touch /var/lib/ptibus/marker
dpkg -i --force-confold "$broker_deb" >/dev/null
tail -n 1 /etc/ptibus/broker.yaml | grep -q "edited by package-check" || die "reinstall overwrote the edited config"
apt-get remove -y -qq ptibus-broker >/dev/null
[ ! -e /usr/bin/ptibusd ] || die "remove left /usr/bin/ptibusd"
grep -q "edited by package-check" /etc/ptibus/broker.yaml || die "remove lost the config"
[ -e /var/lib/ptibus/marker ] || die "remove lost /var/lib/ptibus"

echo "== purge removes the configuration, keeps the journal and keys unless asked"
apt-get purge -y -qq ptibus-broker 2>&1 >/dev/null | grep -v '^dpkg: warning' || true
[ ! -e /etc/ptibus/broker.yaml ] || die "purge left /etc/ptibus/broker.yaml"
[ -e /var/lib/ptibus/marker ] && [ -d /etc/ptibus/keys ] || die "purge removed the state unasked"
apt-get install -y -qq "$broker_deb" >/dev/null
PTIBUS_PURGE_STATE=yes apt-get purge -y -qq ptibus-broker ptibus-doc >/dev/null
[ ! -e /var/lib/ptibus ] && [ ! -e /etc/ptibus ] || die "PTIBUS_PURGE_STATE=yes purge left state"
getent passwd ptibus >/dev/null || die "purge removed the ptibus user"
installed=no
rm -rf "$tmp"

echo "package-check: OK in $(( $(date +%s) - start ))s ($(basename "$broker_deb"), $(basename "$doc_deb"))"
