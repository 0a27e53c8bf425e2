#!/usr/bin/env bash
# Builds the Debian packages (ptibus-broker, ptibus-adapter, ptibus-tools, ptibus-doc),
# checks their contents, lints them, installs them on this machine and runs the installed
# programs (the broker, and an adapter connected to it), then removes and purges them
# checking what stays. For CI (.ci/run calls it after the tests): run as root on a fresh Debian 12
# machine; it installs what it needs (lintian) itself. About a minute.
#
#   deploy/package-check.sh            build in build-pkg/, check, install, purge
#
# It refuses to run where a ptibus package is installed or /etc/ptibus, /var/lib/ptibus
# or /var/lib/ptibus-adapter exist (it would purge a real installation). The broker's
# keys for --check-config are generated in a temporary copy of the installed /etc/ptibus;
# the adapter's in /etc/ptibus/adapters/keys, which its package made here and the purge
# at exit removes (the installed examples name that folder, as a partner's site has it).
# shellcheck disable=SC2015 # "A && B || die": die when either fails
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build="$top/build-pkg"
start=$(date +%s)

die() { echo "package-check: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (it installs and purges the packages)"
for pkg in ptibus-broker ptibus-adapter ptibus-tools ptibus-doc; do
    if grep -q installed <<<"$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)"; then
        die "$pkg is installed here: not on this machine"
    fi
done
if [ -e /etc/ptibus ] || [ -e /var/lib/ptibus ] || [ -e /var/lib/ptibus-adapter ]; then
    die "/etc/ptibus, /var/lib/ptibus or /var/lib/ptibus-adapter exist: not on this machine"
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
cmake --build "$build" -j"$(nproc)" --target ptibus_package_programs ptibus_schemas >/dev/null
rm -f "$build"/ptibus-*.deb
(cd "$build" && cpack -G DEB >/dev/null)
broker_deb=$(ls "$build"/ptibus-broker_*.deb)
adapter_deb=$(ls "$build"/ptibus-adapter_*.deb)
tools_deb=$(ls "$build"/ptibus-tools_*.deb)
doc_deb=$(ls "$build"/ptibus-doc_*_all.deb)
debs=("$broker_deb" "$adapter_deb" "$tools_deb" "$doc_deb")
programs=(departement pole-emploi caf msa region mission-locale)
adapter_ids=(departement pole_emploi caf msa region ml_nord ml_sud)

echo "== contents"
expect() { # DEB PATH...: each path is in the package
    local deb=$1 list
    shift
    list=$(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|; s|/$||')
    for p in "$@"; do
        grep -qxF "$p" <<<"$list" || die "$(basename "$deb") lacks $p"
    done
}
for deb in "$broker_deb" "$adapter_deb" "$tools_deb"; do
    echo "  $(basename "$deb"):"
    dpkg-deb -c "$deb" | awk '$1 !~ /^d/ {print "    " $1, $6, $7, $8}'
done
expect "$broker_deb" /usr/bin/ptibusd /etc/ptibus/broker.yaml \
    /lib/systemd/system/ptibusd.service /usr/share/man/man8/ptibusd.8.gz \
    /usr/share/ptibus/broker.yaml.example \
    /usr/share/doc/ptibus-broker/copyright /usr/share/doc/ptibus-broker/changelog.gz
expect "$tools_deb" /usr/bin/ptibusctl /usr/share/man/man1/ptibusctl.1.gz \
    /usr/share/doc/ptibus-tools/copyright /usr/share/doc/ptibus-tools/changelog.gz
expect "$adapter_deb" /usr/lib/ptibus/adapter-exec /lib/systemd/system/ptibus-adapter@.service \
    /usr/share/man/man8/ptibus-adapter.8.gz /usr/share/doc/ptibus-adapter/copyright \
    /usr/share/doc/ptibus-adapter/changelog.gz
for p in "${programs[@]}"; do
    expect "$adapter_deb" "/usr/bin/ptibus-adapter-$p" "/usr/share/man/man8/ptibus-adapter-$p.8.gz"
done
for id in "${adapter_ids[@]}"; do
    expect "$adapter_deb" "/etc/ptibus/adapters/$id.yaml" "/usr/share/ptibus/adapters/$id.yaml"
done
expect "$doc_deb" /usr/share/doc/ptibus/README.md /usr/share/doc/ptibus/operations.md \
    /usr/share/doc/ptibus/packaging.md /usr/share/doc/ptibus/configuration.md \
    /usr/share/doc/ptibus-doc/copyright /usr/share/doc/ptibus/integration.md \
    /usr/share/doc/ptibus/schemas/referral.schema.json
# Lists are read whole before grep -q looks at them: with pipefail, a grep that exits at
# the first match can make the writer die of SIGPIPE and the test fail at random.
grep -qx './conffiles' <<<"$(dpkg-deb --ctrl-tarfile "$broker_deb" | tar -t)" || die "no conffiles"
[ "$(dpkg-deb --ctrl-tarfile "$broker_deb" | tar -xO ./conffiles)" = /etc/ptibus/broker.yaml ] ||
    die "conffiles is not /etc/ptibus/broker.yaml"
[ "$(dpkg-deb --ctrl-tarfile "$adapter_deb" | tar -xO ./conffiles)" = \
    "$(printf '/etc/ptibus/adapters/%s.yaml\n' "${adapter_ids[@]}" | sort)" ] ||
    die "the adapter's conffiles are not its seven examples"
# The installed examples name the package's folders, never a path relative to the file.
examples=$(mktemp -d /tmp/ptibus-package-examples.XXXXXX)
dpkg-deb -x "$adapter_deb" "$examples"
for id in "${adapter_ids[@]}"; do
    f="$examples/etc/ptibus/adapters/$id.yaml"
    ! grep -nE '^ *[a-z_]+: "?(keys|state)/' "$f" || die "$id.yaml keeps a relative path"
    grep -q "^  secret_key_file: /etc/ptibus/adapters/keys/$id.key$" "$f" &&
        grep -q "^  dir: /var/lib/ptibus-adapter/$id/spool$" "$f" ||
        die "$id.yaml does not name /etc/ptibus/adapters/keys/ and /var/lib/ptibus-adapter/$id/"
done
rm -rf "$examples"
depends_on() { # DEB NAME...: each name is in Depends
    local deb=$1 depends
    shift
    depends=$(dpkg-deb -f "$deb" Depends)
    echo "  $(dpkg-deb -f "$deb" Package) Depends: $depends"
    for lib in "$@"; do
        grep -q "\b$lib\b" <<<"$depends" || die "$(basename "$deb"): Depends lacks $lib"
    done
}
# Computed by dpkg-shlibdeps, but adduser and ptibus-tools.
depends_on "$broker_deb" libzmq5 libsodium23 liblmdb0 libuv1 adduser ptibus-tools
depends_on "$adapter_deb" libzmq5 libsodium23 liblmdb0 libuv1 libcurl4 libxml2 libmicrohttpd12 libssl3 \
    adduser ptibus-tools
depends_on "$tools_deb" libzmq5 libsodium23 liblmdb0

echo "== lintian"
lintian --fail-on error --tag-display-limit 0 "${debs[@]}" 2>&1 |
    grep -v 'running with root privileges' || true
lintian --fail-on error "${debs[@]}" >/dev/null 2>&1 || die "lintian reports errors"

echo "== the units"
unit="$top/deploy/ptibusd.service"
aunit="$top/deploy/ptibus-adapter@.service"
hardening=(ProtectSystem=strict ProtectHome=yes PrivateTmp=yes NoNewPrivileges=yes
    RestrictAddressFamilies= SystemCallFilter=@system-service 'CapabilityBoundingSet=$'
    MemoryDenyWriteExecute=yes LockPersonality=yes)
# shellcheck disable=SC2016 # $MAINPID is systemd's, not the shell's
for opt in Type=notify WatchdogSec= User=ptibus StateDirectory=ptibus ConfigurationDirectory=ptibus \
    'ExecReload=/bin/kill -HUP $MAINPID' "${hardening[@]}"; do
    grep -q "^$opt" "$unit" || die "ptibusd.service lacks $opt"
done
for opt in Type=notify WatchdogSec= User=ptibus 'StateDirectory=ptibus-adapter/%i$' \
    'ExecStartPre=/usr/lib/ptibus/adapter-exec %i .*--check-config$' \
    'ExecStart=/usr/lib/ptibus/adapter-exec %i --config /etc/ptibus/adapters/%i.yaml$' \
    "${hardening[@]}"; do
    grep -q "^$opt" "$aunit" || die "ptibus-adapter@.service lacks $opt"
done
# The same hardening block in both (from NoNewPrivileges to SystemCallErrorNumber).
block() { sed -n '/^NoNewPrivileges=/,/^SystemCallErrorNumber=/p' "$1" | grep -v '^#'; }
diff <(block "$unit") <(block "$aunit") >&2 || die "the units' hardening blocks differ"
if command -v systemd-analyze >/dev/null; then
    # Fails above an exposure of 2.5 (the threshold is in tenths). A template is analysed
    # through an instance: a link named ptibus-adapter@caf.service.
    units=$(mktemp -d /tmp/ptibus-package-units.XXXXXX)
    cp "$aunit" "$units/"
    ln -s ptibus-adapter@.service "$units/ptibus-adapter@caf.service"
    systemd-analyze security --offline=true --threshold=25 "$unit" | tail -n 1
    systemd-analyze security --offline=true --threshold=25 "$units/ptibus-adapter@caf.service" |
        tail -n 1
    rm -rf "$units"
fi

# Everything installed from here on is purged at exit, state included.
installed=no
pid=""
apid=""
cleanup() {
    [ -z "$pid" ] || kill -KILL "$pid" 2>/dev/null || true
    # Its children too, were adapter-exec ever to run the adapter rather than exec it.
    [ -z "$apid" ] || pkill -KILL -P "$apid" 2>/dev/null || true
    [ -z "$apid" ] || kill -KILL "$apid" 2>/dev/null || true
    [ "$installed" = yes ] || return 0
    # apt-get refuses the whole list if one package is unknown: only those dpkg still has.
    local pkgs=()
    mapfile -t pkgs < <(dpkg-query -W -f='${Package} ${db:Status-Status}\n' ptibus-broker \
        ptibus-adapter ptibus-tools ptibus-doc 2>/dev/null | awk '$2 != "not-installed" {print $1}')
    [ ${#pkgs[@]} -eq 0 ] || PTIBUS_PURGE_STATE=yes apt-get purge -y -qq "${pkgs[@]}" >/dev/null 2>&1 ||
        true
    # A failure after a purge that kept the state leaves it behind: everything there was
    # made by this run (it refused to start if any of it existed).
    rm -rf /etc/ptibus /var/lib/ptibus /var/lib/ptibus-adapter
    rm -rf "${tmp:-/nonexistent}"
}
trap cleanup EXIT

echo "== install"
installed=yes
# The adapter alone first: a partner's machine has no broker, its postinst makes the user.
apt-get install -y -qq "$adapter_deb" "$tools_deb" >/dev/null
getent passwd ptibus >/dev/null && getent group ptibus >/dev/null ||
    die "no ptibus user or group after installing ptibus-adapter alone"
apt-get install -y -qq "$broker_deb" "$doc_deb" >/dev/null
getent passwd ptibus >/dev/null && getent group ptibus >/dev/null || die "no ptibus user or group"
mode_is() { # PATH "MODE USER:GROUP"
    [ "$(stat -c '%a %U:%G' "$1")" = "$2" ] || die "$1: $(stat -c '%a %U:%G' "$1"), not $2"
}
mode_is /var/lib/ptibus "700 ptibus:ptibus"
mode_is /etc/ptibus/keys "750 root:ptibus"
mode_is /var/lib/ptibus-adapter "700 ptibus:ptibus"
mode_is /etc/ptibus/adapters/keys "750 root:ptibus"
grep -q /etc/ptibus/broker.yaml <<<"$(dpkg-query -W -f='${Conffiles}\n' ptibus-broker)" ||
    die "conffile not registered"
[ "$(dpkg-query -W -f='${Conffiles}\n' ptibus-adapter | grep -c '^ /etc/ptibus/adapters/')" -eq 7 ] ||
    die "the adapter's conffiles are not registered"
/usr/bin/ptibusd --version
if command -v systemd-analyze >/dev/null; then
    man_opt=--man=no
    command -v man >/dev/null && man_opt=--man=yes
    systemd-analyze verify "$man_opt" /lib/systemd/system/ptibusd.service
    # The template through an instance of the installed file (its command exists now).
    units=$(mktemp -d /tmp/ptibus-package-units.XXXXXX)
    ln -s /lib/systemd/system/ptibus-adapter@.service "$units/ptibus-adapter@caf.service"
    systemd-analyze verify "$man_opt" "$units/ptibus-adapter@caf.service"
    rm -rf "$units"
    echo "  systemd-analyze verify: OK"
fi

echo "== adapter-exec: the instance id chooses the program"
aexec=/usr/lib/ptibus/adapter-exec
for pair in departement:departement pole_emploi:pole-emploi caf:caf msa:msa region:region \
    ml_nord:mission-locale ml_sud:mission-locale; do
    out=$("$aexec" "${pair%%:*}" --version)
    [ "$out" = "ptibus-adapter-${pair#*:} $(dpkg-query -W -f='${Version}' ptibus-adapter)" ] ||
        die "adapter-exec ${pair%%:*} ran: $out"
done
[ "$(PTIBUS_ADAPTER=caf "$aexec" caf_nord --version)" = "ptibus-adapter-caf $(dpkg-query -W -f='${Version}' ptibus-adapter)" ] ||
    die "adapter-exec caf_nord with PTIBUS_ADAPTER=caf did not run ptibus-adapter-caf"
for bad in unknown CAF ../caf 'caf;id' "" x123456789012345678901234567890123; do
    st=0
    "$aexec" "$bad" --version >/dev/null 2>&1 || st=$?
    [ $st -eq 2 ] || die "adapter-exec '$bad' exited $st, not 2"
done
st=0
PTIBUS_ADAPTER=../../bin/sh "$aexec" caf --version >/dev/null 2>&1 || st=$?
[ $st -eq 2 ] || die "adapter-exec with PTIBUS_ADAPTER=../../bin/sh exited $st, not 2"

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

echo "== ptibus-adapter-caf --check-config on the installed example, keys made at its 'site'"
# What a partner does (docs/operations.md): its own CURVE pair, the broker's public key
# received from the broker's administrators, the webhook secret agreed with its back
# office; its public key goes to the broker's keys folder.
akeys=/etc/ptibus/adapters/keys
aconf=/etc/ptibus/adapters/caf.yaml
/usr/bin/ptibusctl keygen --dir "$akeys" --kind curve caf >/dev/null
chown ptibus: "$akeys/caf.key"
install -m 0644 "$keys/broker.pub" "$akeys/broker.pub"
install -m 0644 "$akeys/caf.pub" "$keys/caf.pub"
(umask 077 && python3 -c 'import secrets; print(secrets.token_hex(32))' >"$akeys/caf.webhook")
chown ptibus: "$akeys/caf.webhook"
# Without its secret key the check must fail (and say which file).
mv "$akeys/caf.key" "$tmp/caf.key"
if as_ptibus "$aexec" caf --config "$aconf" --check-config >/dev/null 2>"$tmp/err"; then
    die "ptibus-adapter-caf --check-config passed without caf.key"
fi
grep -q caf.key "$tmp/err" || die "--check-config did not name caf.key: $(cat "$tmp/err")"
mv "$tmp/caf.key" "$akeys/caf.key"
as_ptibus "$aexec" caf --config "$aconf" --check-config
as_ptibus "$aexec" caf --config "$aconf" --fingerprint
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
    -e "s|^      public_key: \"R2zk.*\"|      public_key: \"$admin_key\"|" \
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

echo "== the installed adapter runs, as ptibus, connects to that broker, and stops cleanly"
# The installed caf.yaml with the test broker's port and an HTTP API for /readyz; its
# folders are the package's (/var/lib/ptibus-adapter/caf, made as StateDirectory does).
hport=$(free_port)
(umask 077 && python3 -c 'import secrets; print(secrets.token_hex(32))' >"$akeys/caf.tokens")
chown ptibus: "$akeys/caf.tokens"
sed -e "s|^  endpoint: .*|  endpoint: \"tcp://127.0.0.1:$port\"|" "$aconf" >"$tmp/caf-run.yaml"
printf 'http:\n  listen: "127.0.0.1:%s"\n  tokens_file: %s/caf.tokens\n' "$hport" "$akeys" \
    >>"$tmp/caf-run.yaml"
install -d -m 0700 -o ptibus -g ptibus /var/lib/ptibus-adapter/caf
setpriv --reuid=ptibus --regid=ptibus --init-groups "$aexec" caf --config "$tmp/caf-run.yaml" \
    >"$tmp/adapter.log" 2>&1 &
apid=$!
code=""
for _ in $(seq 1 100); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$hport/readyz" || true)
    [ "$code" = 200 ] && break
    kill -0 $apid 2>/dev/null || { cat "$tmp/adapter.log"; die "the adapter exited"; }
    sleep 0.1
done
[ "$code" = 200 ] || { cat "$tmp/adapter.log"; die "the adapter's /readyz answered $code, not 200"; }
# adapter-exec exec'd the adapter: the PID systemd would watch is the adapter's own.
[ "$(readlink /proc/$apid/exe)" = /usr/bin/ptibus-adapter-caf ] ||
    die "PID $apid is $(readlink /proc/$apid/exe), not ptibus-adapter-caf"
[ "$(stat -c %U /proc/$apid)" = ptibus ] || die "the adapter does not run as ptibus"
echo "  /readyz 200 (in session with the installed broker)"
mode_is /var/lib/ptibus-adapter/caf/spool "700 ptibus:ptibus"
kill -TERM $apid
st=0
wait $apid || st=$?
apid=""
[ $st -eq 0 ] || { cat "$tmp/adapter.log"; die "the adapter exited with status $st on SIGTERM"; }

echo "== systemctl reload's SIGHUP: the installed broker re-reads its partners and routes"
kill -HUP $pid
for _ in $(seq 1 50); do
    grep -q "configuration reloaded" "$tmp/ptibusd.log" && break
    sleep 0.1
done
grep -q "configuration reloaded: 7 partners" "$tmp/ptibusd.log" ||
    { cat "$tmp/ptibusd.log"; die "no reload after SIGHUP"; }
kill -0 $pid || die "SIGHUP stopped the broker"
kill -TERM $pid
st=0
wait $pid || st=$?
pid=""
[ $st -eq 0 ] || { cat "$tmp/ptibusd.log"; die "ptibusd exited with status $st on SIGTERM"; }
/usr/bin/ptibusctl journal-verify --journal "$tmp/state/journal" --pubkey "$keys/broker.sign.pub"

echo "== an edited configuration survives a reinstall; remove keeps it and the state"
echo "# edited by package-check" >>/etc/ptibus/broker.yaml
echo "# edited by package-check" >>/etc/ptibus/adapters/caf.yaml
touch /var/lib/ptibus/marker /var/lib/ptibus-adapter/marker
dpkg -i --force-confold "$broker_deb" "$adapter_deb" >/dev/null
for f in /etc/ptibus/broker.yaml /etc/ptibus/adapters/caf.yaml; do
    tail -n 1 "$f" | grep -q "edited by package-check" || die "reinstall overwrote the edited $f"
done
apt-get remove -y -qq ptibus-broker ptibus-adapter >/dev/null
for f in /usr/bin/ptibusd /usr/bin/ptibus-adapter-caf /usr/lib/ptibus/adapter-exec; do
    [ ! -e "$f" ] || die "remove left $f"
done
grep -q "edited by package-check" /etc/ptibus/broker.yaml || die "remove lost the config"
grep -q "edited by package-check" /etc/ptibus/adapters/caf.yaml || die "remove lost caf.yaml"
[ -e /var/lib/ptibus/marker ] || die "remove lost /var/lib/ptibus"
[ -e /var/lib/ptibus-adapter/marker ] || die "remove lost /var/lib/ptibus-adapter"

echo "== purge removes the configuration, keeps the journal, the spools and keys unless asked"
# An enabled instance's link (what systemctl enable ptibus-adapter@caf makes) goes too.
wants=/etc/systemd/system/multi-user.target.wants
link=""
if [ -d "$wants" ]; then
    link="$wants/ptibus-adapter@caf.service"
    ln -s /lib/systemd/system/ptibus-adapter@.service "$link"
fi
apt-get purge -y -qq ptibus-broker ptibus-adapter 2>&1 >/dev/null | grep -v '^dpkg: warning' || true
[ ! -e /etc/ptibus/broker.yaml ] || die "purge left /etc/ptibus/broker.yaml"
! ls /etc/ptibus/adapters/*.yaml 2>/dev/null || die "purge left the adapters' configurations"
[ -z "$link" ] || [ ! -L "$link" ] || die "purge left $link"
[ -e /var/lib/ptibus/marker ] && [ -d /etc/ptibus/keys ] || die "purge removed the state unasked"
[ -e /var/lib/ptibus-adapter/marker ] && [ -e /etc/ptibus/adapters/keys/caf.key ] ||
    die "purge removed the adapter's spools or keys unasked"
apt-get install -y -qq "$broker_deb" "$adapter_deb" >/dev/null
PTIBUS_PURGE_STATE=yes apt-get purge -y -qq ptibus-broker ptibus-adapter ptibus-tools \
    ptibus-doc >/dev/null
for f in /var/lib/ptibus /var/lib/ptibus-adapter /etc/ptibus /usr/lib/ptibus; do
    [ ! -e "$f" ] || die "PTIBUS_PURGE_STATE=yes purge left $f"
done
getent passwd ptibus >/dev/null || die "purge removed the ptibus user"
installed=no
rm -rf "$tmp"

echo "package-check: OK in $(( $(date +%s) - start ))s ($(for d in "${debs[@]}"; do basename "$d"; done | tr '\n' ' '))"
