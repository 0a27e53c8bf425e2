#!/usr/bin/env bash
# The ptibus partner network on localhost, with sample data, from a fresh Debian
# machine: installs dependencies, builds, generates keys for the broker and the seven
# partners of deploy/broker.yaml (the Meuse network), starts ptibusd on 127.0.0.1,
# has each partner publish its sample messages (deploy/demo/messages/), then shows
# the journal — accepted and refused messages alike — and verifies its signed chain.
#
#   deploy/demo.sh              run the demo in a new directory under /tmp
#   PTIBUS_DEMO_DIR=DIR deploy/demo.sh   keep the state in DIR (reused on the next run)
#   PTIBUS_DEMO_PORT=7400       broker port (default: a free port)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)

"$top/deploy/install-deps.sh"
build="$top/build-demo"
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target ptibusd ptibusctl >/dev/null
ptibusd="$build/broker/ptibusd"
ctl="$build/ctl/ptibusctl"

state=${PTIBUS_DEMO_DIR:-$(mktemp -d /tmp/ptibus-demo.XXXXXX)}
mkdir -p "$state/keys"
chmod 700 "$state" "$state/keys"
partners=(departement pole_emploi caf msa region ml_nord ml_sud)
gen() { [ -e "$state/keys/$2$3" ] || "$ctl" keygen --dir "$state/keys" --kind "$1" "$2" >/dev/null; }
gen curve broker .key
gen sign broker .sign
gen hmac person_index .hmac
gen curve admin .key
for p in "${partners[@]}"; do gen curve "$p" .key; done

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
port=${PTIBUS_DEMO_PORT:-$(free_port)}
mport=$(free_port)
# The annotated example configuration, pointed at this demo's directory and ports.
admin_key=$(cat "$state/keys/admin.pub")
admin_key=${admin_key//&/\\&} # Z85 may hold '&', special in a sed replacement
sed -e "s|^listen: .*|listen: \"tcp://127.0.0.1:$port\"|" \
    -e "s|ipc:///run/ptibus/admin.sock|ipc://$state/admin.sock|" \
    -e "s|^    - \"R2zk.*\"|    - \"$admin_key\"|" \
    -e "s|127.0.0.1:9400|127.0.0.1:$mport|" \
    -e "s|dir: /var/lib/ptibus/journal|dir: journal|" \
    -e "s|checkpoint_interval: 60s|checkpoint_interval: 2s|" \
    "$top/deploy/broker.yaml" >"$state/broker.yaml"
# ptibusctl's settings for this demo (docs/ptibusctl.md, "The config file").
cat >"$state/ptibusctl.yaml" <<EOF
broker:
  endpoint: "tcp://127.0.0.1:$port"
  admin: "ipc://$state/admin.sock"
  public_key: keys/broker.pub
journal:
  dir: journal
  sign_public_key: keys/broker.sign.pub
  person_index_key: keys/person_index.hmac
operator:
  name: demo-admin
  key: keys/admin.key
  public_key: keys/admin.pub
partners:
  keys_dir: keys
EOF
pctl() { "$ctl" --config "$state/ptibusctl.yaml" "$@"; }

"$ptibusd" --config "$state/broker.yaml" --check-config
"$ptibusd" --config "$state/broker.yaml" 2>"$state/ptibusd.log" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    kill -0 $pid 2>/dev/null || { cat "$state/ptibusd.log"; exit 1; }
    sleep 0.1
done
echo "== ptibusd (pid $pid) listening on tcp://127.0.0.1:$port, state in $state"

echo "== partners publish their sample messages"
for f in "$top"/deploy/demo/messages/*.json; do
    partner=$(basename "$f" .json | cut -d- -f2)
    printf '%-12s ' "$partner"
    # exit 4: the broker refused the message (some samples are meant to be refused)
    pctl publish --as "$partner" --format tsv "$f" | tail -n +2 || [ $? -eq 4 ]
done

echo "== every partner connects, receives what the routes sent it, and acknowledges it"
for p in "${partners[@]}"; do
    pctl receive --as "$p" --wait 2 >"$state/receive-$p.log" 2>&1 &
done
wait_receivers() { for j in $(jobs -p); do [ "$j" = "$pid" ] || wait "$j" || true; done; }
wait_receivers
for p in "${partners[@]}"; do
    sed "s/^/  $p: /" "$state/receive-$p.log"
done

echo "== live statistics from the admin socket"
pctl stats
echo "== Prometheus metrics (excerpt) from http://127.0.0.1:$mport/metrics"
sleep 1.2
python3 - "$mport" <<'PY'
import sys, urllib.request
text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode()
for line in text.splitlines():
    if line.startswith(("ptibus_messages_", "ptibus_queue_depth", "ptibus_partners_connected")):
        print("  " + line)
PY

sleep 1.5 # let a signed checkpoint pass
kill -TERM $pid
wait $pid || true
trap - EXIT

echo "== the journal (audit fields only: payloads are personal data)"
pctl journal list
echo "== tamper evidence"
pctl journal verify
echo "== broker log: $state/ptibusd.log"
