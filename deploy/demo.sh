#!/usr/bin/env bash
# The ptibus partner network on localhost, with sample data, from a fresh Debian
# machine: installs dependencies, builds, generates keys for the broker and the seven
# partners of deploy/broker.yaml (the Meuse network), starts ptibusd and the seven
# adapters (deploy/adapters/*.yaml) on 127.0.0.1, and makes the flows happen through
# the adapters: curl POSTs at the Département's and a Mission Locale's HTTP API, files
# dropped in the CAF's and the Région's inboxes (JSON, a CNAF XML flow, an LHEO
# catalogue), the CAF's deliveries posted to a signed webhook (a small local receiver),
# France Travail pulling its inbox over HTTP, the others writing outbox files. Then it
# shows the flows per partner pair, where each outbox is, the journal, and verifies its
# signed chain.
#
#   deploy/demo.sh              run the demo in a new directory under /tmp, then stop
#   deploy/demo.sh --keep       leave everything running until Ctrl-C
#   PTIBUS_DEMO_DIR=DIR deploy/demo.sh   keep the state in DIR (reused on the next run)
#   PTIBUS_DEMO_PORT=7400       broker port (default: a free port)
set -euo pipefail
keep=0
[ "${1:-}" = "--keep" ] && keep=1
top=$(cd "$(dirname "$0")/.." && pwd)

"$top/deploy/install-deps.sh"
build="$top/build-demo"
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target ptibusd ptibusctl ptibus-adapter-departement \
    ptibus-adapter-pole-emploi ptibus-adapter-caf ptibus-adapter-msa ptibus-adapter-region \
    ptibus-adapter-mission-locale >/dev/null
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
    -e "s|^    - name: exploitation|    - name: demo-admin|" \
    -e "s|^      public_key: \"R2zk.*\"|      public_key: \"$admin_key\"|" \
    -e "s|127.0.0.1:9400|127.0.0.1:$mport|" \
    -e "s|dir: /var/lib/ptibus/journal|dir: journal|" \
    -e "s|checkpoint_interval: 60s|checkpoint_interval: 2s|" \
    "$top/deploy/broker.yaml" >"$state/broker.yaml"
# ptibusctl's settings (docs/ptibusctl.md): every command below needs only its own
# arguments.
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
pids=()
stop_all() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    pids=()
    kill -TERM $pid 2>/dev/null || true
    wait $pid 2>/dev/null || true
}
trap stop_all EXIT
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    kill -0 $pid 2>/dev/null || { cat "$state/ptibusd.log"; exit 1; }
    sleep 0.1
done
echo "== ptibusd (pid $pid) listening on tcp://127.0.0.1:$port, state in $state"

# ---- the seven adapters ----
# Each partner's config is the annotated example of deploy/adapters/, pointed at this
# demo's directory and ports; relative paths in it are taken from its folder ($state).
mkdir -p "$state/state"
for p in "${partners[@]}"; do mkdir -p "$state/state/$p" && chmod 700 "$state/state/$p"; done
declare -A http_port
for p in "${partners[@]}"; do
    [ -e "$state/keys/$p.tokens" ] || (umask 077 && head -c 24 /dev/urandom | base64 >"$state/keys/$p.tokens")
done
[ -e "$state/keys/caf.webhook" ] || (umask 077 && head -c 32 /dev/urandom | base64 >"$state/keys/caf.webhook")
whport=$(free_port)
for p in "${partners[@]}"; do
    http_port[$p]=$(free_port)
    sed -e "s|tcp://127.0.0.1:7400|tcp://127.0.0.1:$port|" \
        -e "s|listen: \"127.0.0.1:[0-9]*\"|listen: \"127.0.0.1:${http_port[$p]}\"|" \
        -e "s|stable_for: 30s|stable_for: 1s|" \
        -e "s|scan_interval: [0-9]*s|scan_interval: 1s|" \
        -e "s|^  complete: stable$|  complete: stable\n  scan_interval: 1s|" \
        -e "s|https://caf-backoffice.example/ptibus|http://127.0.0.1:$whport/ptibus|" \
        "$top/deploy/adapters/$p.yaml" >"$state/$p.yaml"
done
adapter_bin() { case $1 in ml_*) echo mission-locale ;; *) echo "${1//_/-}" ;; esac; }
python3 "$top/deploy/demo/webhook_receiver.py" "$whport" "$state/keys/caf.webhook" \
    "$state/webhook-received" 2>"$state/webhook.log" &
pids+=($!)
for p in "${partners[@]}"; do
    bin="$build/adapters/ptibus-adapter-$(adapter_bin "$p")"
    "$bin" --config "$state/$p.yaml" --check-config >/dev/null
    "$bin" --config "$state/$p.yaml" 2>"$state/adapter-$p.log" &
    pids+=($!)
done
api() { echo "http://127.0.0.1:${http_port[$1]}"; }
token() { cat "$state/keys/$1.tokens"; }
ready() { curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(token "$1")" "$(api "$1")/readyz" || true; }
for p in departement ml_nord pole_emploi; do
    for _ in $(seq 1 100); do [ "$(ready "$p")" = 200 ] && break; sleep 0.1; done
done
for i in "${!partners[@]}"; do # pids: the receiver first, then the adapters in order
    if ! kill -0 "${pids[$((i + 1))]}" 2>/dev/null; then
        echo "the adapter of ${partners[$i]} stopped:" >&2
        cat "$state/adapter-${partners[$i]}.log" >&2
        exit 1
    fi
done
echo "== ptibusd and seven adapters running; state in $state"

# ---- the flows ----
post() { # partner file
    printf '%-12s POST %-38s ' "$1" "$(basename "$2")"
    curl -s -w ' -> HTTP %{http_code}\n' -H "Authorization: Bearer $(token "$1")" \
        -H 'Content-Type: application/json' --data-binary "@$2" "$(api "$1")/v1/messages"
}
drop() { # partner file: written as NAME.tmp, then renamed (the documented way)
    local inbox="$state/state/$1/inbox" name
    name=$(basename "$2")
    mkdir -p "$inbox"
    cp "$2" "$inbox/$name.tmp" && mv "$inbox/$name.tmp" "$inbox/$name"
    printf '%-12s drop %s into %s\n' "$1" "$name" "${inbox#"$state"/}"
}
msgs="$top/deploy/demo/messages"
echo "== the Département and a Mission Locale post to their adapter's HTTP API"
post departement "$msgs/01-departement-orientation.json"
post departement "$msgs/05-departement-sanction.json"
post departement "$msgs/06-departement-invalid-sanction.json"
post ml_nord "$msgs/04-ml_nord-referral.json"
echo "== the CAF and the Région drop files in their adapter's inbox"
drop caf "$msgs/02-caf-beneficiary-event.json"
drop caf "$top/tests/fixtures/cnaf/flux-1252.xml"
drop caf "$msgs/07-caf-not-allowed-sanction.json"
drop region "$top/tests/fixtures/lheo/catalogue-v1.xml"
for f in "$msgs"/*.json; do # any other sample, from the partner its name says
    case $(basename "$f") in 0[1-7]-*) continue ;; esac
    partner=$(basename "$f" .json | cut -d- -f2)
    if [ -n "${http_port[$partner]:-}" ] && grep -q 'listen:' "$state/$partner.yaml"; then
        post "$partner" "$f"
    else
        drop "$partner" "$f"
    fi
done

# France Travail's system pulls its inbox and acknowledges what it took.
pull_once() {
    curl -s -H "Authorization: Bearer $(token pole_emploi)" "$(api pole_emploi)/v1/inbox?after=0&limit=100" |
        python3 -c '
import json, os, sys
try:
    doc = json.load(sys.stdin)
except ValueError:
    sys.exit(0)
os.makedirs(sys.argv[1], exist_ok=True)
for m in doc.get("messages", []):  # kept by France Travail system, then acknowledged
    seq = m["delivery"]["seq"]
    with open(os.path.join(sys.argv[1], "%020d.json" % int(seq)), "w") as f:
        json.dump(m, f)
    print(seq)' "$state/pulled" |
        while read -r seq; do
            curl -s -o /dev/null -X POST -H "Authorization: Bearer $(token pole_emploi)" \
                "$(api pole_emploi)/v1/inbox/$seq/ack"
        done
}
count_handed() {
    local n=0
    for p in "${partners[@]}"; do
        d="$state/state/$p/outbox"
        [ -d "$d" ] && n=$((n + $(find "$d" -maxdepth 1 -name '*.json' | wc -l)))
    done
    n=$((n + $(find "$state/webhook-received" "$state/pulled" -maxdepth 1 -type f 2>/dev/null | wc -l)))
    echo $n
}
echo "== waiting for every delivery to be handed over"
last=-1 stable=0
for _ in $(seq 1 120); do
    pull_once
    n=$(count_handed)
    if [ "$n" = "$last" ] && [ "$n" -gt 0 ]; then stable=$((stable + 1)); else stable=0; fi
    last=$n
    [ $stable -ge 6 ] && break
    sleep 0.5
done
echo "   $last deliveries handed over"

echo "== what became of each message the Département posted (GET /v1/messages/{id})"
for id in cd55-ori-2026-000101 cd55-san-2026-000017; do
    curl -s -H "Authorization: Bearer $(token departement)" "$(api departement)/v1/messages/$id" |
        python3 -c 'import json,sys; d=json.load(sys.stdin); print("  %s: %s, seq %s, recipients %s" % (d.get("messageId"), d.get("state"), d.get("accepted", {}).get("seq", "-"), ", ".join("%s (%s)" % (r.get("partner"), "acknowledged" if r.get("acknowledgedAt") else "delivered" if r.get("deliveredAt") else "dead letter" if r.get("deadLetteredAt") else "pending") for r in d.get("recipients", []))))' || true
done

echo "== flows per partner pair (sender -> recipient: messages handed over)"
python3 - "$state" "${partners[@]}" <<'PY'
import collections, glob, json, os, sys
state, partners = sys.argv[1], sys.argv[2:]
flows = collections.Counter()
def count(path, recipient):
    try:
        doc = json.load(open(path))
    except (OSError, ValueError):
        return
    flows[(doc.get("delivery", {}).get("sender", "?"), recipient)] += 1
for p in partners:
    for f in glob.glob(f"{state}/state/{p}/outbox/*.json"):
        count(f, p)
for f in glob.glob(f"{state}/webhook-received/*.json"):
    count(f, "caf")
for f in glob.glob(f"{state}/pulled/*.json"):
    count(f, "pole_emploi")
for (s, r), n in sorted(flows.items()):
    print(f"  {s:>12} -> {r:<12} {n}")
print("  (caf: by its webhook; pole_emploi: pulled over HTTP; the others: outbox files)")
PY
echo "== where things are"
for p in "${partners[@]}"; do
    case $p in
    caf) where="webhook receiver: $state/webhook-received/" ;;
    pole_emploi) where="pull: $(api pole_emploi)/v1/inbox" ;;
    *) where="outbox: $state/state/$p/outbox/" ;;
    esac
    printf '  %-12s %s (log %s)\n' "$p" "$where" "$state/adapter-$p.log"
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

if [ $keep = 1 ]; then
    echo "== running; try:"
    echo "   curl -H \"Authorization: Bearer \$(cat $state/keys/departement.tokens)\" $(api departement)/v1/messages/cd55-ori-2026-000101"
    echo "   $ctl --config $state/ptibusctl.yaml journal list"
    echo "   $ctl --config $state/ptibusctl.yaml trace cd55-ori-2026-000101"
    echo "   Ctrl-C stops everything"
    trap 'echo; echo "== stopping"' INT
    wait $pid || true
fi
sleep 1.5 # let a signed checkpoint pass
stop_all
trap - EXIT

echo "== the journal (audit fields only: payloads are personal data)"
pctl journal list | tail -n 30
echo "   (the last 30 records)"
echo "== tamper evidence"
pctl journal verify
echo "== logs: $state/ptibusd.log, $state/adapter-*.log"
echo "   look further: $ctl --config $state/ptibusctl.yaml journal list | trace MESSAGE_ID | report"
