#!/usr/bin/env bash
# ptibus side by side with RabbitMQ, Redis and NATS JetStream, on this machine, in one
# run (issue 5). Installs the peers from Debian, builds the bench programs, starts every
# server on 127.0.0.1 with its state in a temporary directory, runs the scenarios one
# after another (never in parallel: the machine has 2 cores), stops every server by its
# PID at the end (even on failure), and prints one table, also written as JSON to
# bench/out/results.json. See docs/performance.md.
#
#   bench/run.sh                     full run (about 10-15 minutes)
#   bench/run.sh --smoke             ptibus only, small counts, < 30 s; non-zero on failure
#   bench/run.sh --seconds 10        time bound of each scenario (default 10)
#   bench/run.sh --journal-records N size of the journal for S3 and the memory figures
#                                    (default 1000000)
#   bench/run.sh --expiry-records N  expirable records of R1, S1 beside the background
#                                    expiry (default 10000000; about 12 GB of journal)
#   bench/run.sh --expiry-only       R1 only
#   bench/run.sh --no-peers          ptibus, LMDB and the journal only
#   bench/run.sh --keep              keep the temporary directory
#   bench/run.sh --codecs-only       the codec scenario (C1) only
#   bench/run.sh --perf              also profile ptibusd (perf, cpu-clock) during S1
#   bench/run.sh --ctl-records N     also the ptibusctl scenario (CTL, issue 14) on a journal
#                                    of N records (10000000 for the issue's figures; building
#                                    it takes minutes); --smoke runs it at 30000 (< 1 s)
#   bench/run.sh --ctl-only          the ptibusctl scenario only (default 1000000 records)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)

smoke=0 peers=1 keep=0 profile=0 secs=10 jrecords=1000000 codecs_only=0 ctlrecords=0 ctl_only=0
erecords=10000000 expiry_only=0
while [ $# -gt 0 ]; do
    case "$1" in
    --smoke) smoke=1 peers=0 secs=2 jrecords=20000 erecords=20000 ctlrecords=30000 ;;
    --expiry-records) erecords=$2; shift ;;
    --expiry-only) expiry_only=1 peers=0 ;;
    --no-peers) peers=0 ;;
    --codecs-only) codecs_only=1 peers=0 ;;
    --keep) keep=1 ;;
    --perf) profile=1 ;;
    --seconds) secs=$2; shift ;;
    --journal-records) jrecords=$2; shift ;;
    --ctl-records) ctlrecords=$2; shift ;;
    --ctl-only) ctl_only=1 peers=0 ;;
    *) echo "usage: bench/run.sh [--smoke] [--no-peers] [--codecs-only] [--ctl-only] [--keep] [--seconds S] [--journal-records N] [--ctl-records N] [--expiry-records N] [--expiry-only]" >&2
       exit 2 ;;
    esac
    shift
done
# Every client run is bounded by count and time; count is a ceiling, time the bound.
maxcount=$((smoke ? 20000 : 2000000))

tmp=$(mktemp -d /tmp/ptibus-bench.XXXXXX)
out="$top/bench/out"
mkdir -p "$out"
results="$tmp/results.jsonl"
: >"$results"
declare -A PIDS=() # name -> pid of every server started here

log() { printf '== %s\n' "$*" >&2; }

stop_pid() { # stop_pid NAME: SIGTERM, up to 10 s, then SIGKILL, by PID only
    local name=$1 pid=${PIDS[$1]:-}
    [ -n "$pid" ] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    unset "PIDS[$name]"
}

cleanup() {
    local rc=$?
    for name in "${!PIDS[@]}"; do stop_pid "$name"; done
    if [ "$keep" = 1 ] || [ "$rc" != 0 ]; then
        echo "bench: state and logs kept in $tmp" >&2
    else
        rm -rf "$tmp"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() { # wait_port PORT PID SECONDS
    local i
    for i in $(seq 1 $(($3 * 10))); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

install_peers() {
    install_pkgs rabbitmq-server redis-server nats-server librabbitmq-dev libhiredis-dev \
        libnats-dev strace
}

install_pkgs() { # install_pkgs PACKAGE...: those missing, from Debian
    local pkgs=("$@") missing=() p
    for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]}"
    # The packages must not start their system services (on 0.0.0.0, with state in
    # /var): forbid service starts during the installation when nothing else does.
    local policy=/usr/sbin/policy-rc.d made=0
    if [ ! -e $policy ]; then
        printf '#!/bin/sh\nexit 101\n' >$policy && chmod 755 $policy && made=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    local rc=$?
    [ $made = 1 ] && rm -f $policy
    return $rc
}

build() {
    "$top/deploy/install-deps.sh"
    local b="$top/build-bench" targets=(ptibusd ptibusctl bench_ptibus bench_journal bench_lmdb
        bench_floor bench_adapter bench_codecs bench_ctl)
    cmake -S "$top" -B "$b" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPTIBUS_BENCH=ON >/dev/null
    [ "$peers" = 1 ] && targets+=(bench_rabbitmq bench_redis bench_nats)
    [ "$codecs_only" = 1 ] && targets=(bench_codecs)
    [ "$ctl_only" = 1 ] && targets=(ptibusctl bench_ctl)
    cmake --build "$b" -j2 --target "${targets[@]}" >/dev/null
    bin="$b/bench"
    ptibusd="$b/broker/ptibusd"
    ctl="$b/ctl/ptibusctl"
}

cpu_of() { # user+system CPU seconds of a process (and its reaped children)
    python3 - "$1" <<'EOF'
import os, sys
s = open(f"/proc/{sys.argv[1]}/stat").read().rsplit(")", 1)[1].split()
print(sum(int(x) for x in s[11:15]) / os.sysconf("SC_CLK_TCK"))
EOF
}

mem_of() { # VmHWM and RssAnon of a process in KiB, as JSON fields
    awk '/^VmHWM:/{h=$2} /^RssAnon:/{a=$2} /^VmRSS:/{r=$2}
         END{printf "\"vm_hwm_kib\":%d,\"rss_anon_kib\":%d,\"vm_rss_kib\":%d", h, a, r}' \
        "/proc/$1/status"
}

# measure SERVER SCENARIO_NAME -- command...: runs a client, adds the server's CPU
# seconds to its JSON line. A failing client fails the run.
measure() {
    local server=$1 name=$2 pid=${PIDS[$1]} c0 c1 line
    shift 3
    c0=$(cpu_of "$pid")
    if ! line=$(timeout $((secs * 3 + 60)) "$@" 2>>"$tmp/clients.log"); then
        log "FAILED: $name on $server (see $tmp/clients.log)"
        tail -5 "$tmp/clients.log" >&2
        return 1
    fi
    c1=$(cpu_of "$pid")
    line=$(printf '%s\n' "$line" | tail -1)
    printf '%s,"server_cpu_s":%s}\n' "${line%\}}" "$(python3 -c "print(round($c1-$c0,2))")" |
        tee -a "$results" >&2
}

# strace_fsync SERVER LABEL -- command...: counts the server's sync system calls while
# a short synchronous run confirms messages.
strace_fsync() {
    local server=$1 label=$2 pid=${PIDS[$1]} f="$tmp/strace-$2.txt" line
    shift 3
    strace -c -f -p "$pid" -o "$f" 2>/dev/null &
    local spid=$!
    sleep 1
    line=$(timeout 60 "$@" 2>>"$tmp/clients.log" | tail -1) || true
    kill -INT "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
    python3 - "$f" "$label" "$line" <<'EOF' | tee -a "$results" >&2
import json, sys
path, label, line = sys.argv[1:4]
calls = {}
for l in open(path):
    p = l.split()
    if len(p) >= 5 and p[-1] in ("fsync", "fdatasync", "msync", "sync_file_range", "syncfs"):
        calls[p[-1]] = int(p[3])
msgs = json.loads(line)["msgs"] if line.strip() else 0
print(json.dumps({"scenario": "strace", "system": label, "msgs": msgs, "sync_calls": calls,
                  "syncs_per_msg": round(sum(calls.values()) / msgs, 3) if msgs else None}))
EOF
}

# ---------------------------------------------------------------- ptibus
ptibus_keys() { # ptibus_keys DIR: the broker's and the bench partners' keys in DIR/keys
    local d=$1 p
    mkdir -p "$d/keys"
    chmod 700 "$d" "$d/keys"
    "$ctl" keygen --dir "$d/keys" --kind curve broker >/dev/null
    "$ctl" keygen --dir "$d/keys" --kind sign broker >/dev/null
    "$ctl" keygen --dir "$d/keys" --kind hmac person_index >/dev/null
    for p in p1 p2 p3 p4 p5 p6 sink1 sink2; do
        "$ctl" keygen --dir "$d/keys" --kind curve "$p" >/dev/null
    done
}

# start_ptibus [DIR [EXTRA_YAML]]: ptibusd on DIR/journal (default $tmp/ptibus, keys made
# there when missing), EXTRA_YAML appended to its broker.yaml (e.g. a retention policy).
start_ptibus() {
    local d=${1:-$tmp/ptibus} extra=${2:-} p
    [ -d "$d/keys" ] || ptibus_keys "$d"
    ptibus_dir=$d
    ptibus_port=$(free_port)
    {
        printf 'listen: "tcp://127.0.0.1:%s"\n' "$ptibus_port"
        printf 'journal:\n  dir: journal\n  max_size: 64GiB\n  checkpoint_interval: 60s\n'
        printf 'keys:\n  server_secret: keys/broker.key\n  signing_secret: keys/broker.sign\n'
        printf '  person_index_hmac: keys/person_index.hmac\n'
        # Throughput is what is measured: the per-partner input quotas are off.
        printf 'limits:\n  partner_rate: 0\n  partner_bytes_per_hour: 0\n'
        printf 'partners:\n'
        for p in p1 p2 p3 p4 p5 p6 sink1 sink2; do
            printf '  - id: %s\n    public_key_file: keys/%s.pub\n' "$p" "$p"
            case $p in p*) printf '    may_send: [referral]\n' ;; esac
        done
        printf 'routes:\n  - type: referral\n    to_field: {field: target_org.partner_id, allow: [sink1, sink2]}\n'
        printf '%s' "$extra"
    } >"$d/broker.yaml"
    "$ptibusd" --config "$d/broker.yaml" 2>>"$d/ptibusd.log" &
    PIDS[ptibus]=$!
    wait_port "$ptibus_port" "${PIDS[ptibus]}" 60 || { cat "$d/ptibusd.log" >&2; return 1; }
    log "ptibusd pid ${PIDS[ptibus]} on 127.0.0.1:$ptibus_port"
}

pt() { # pt SCENARIO_NAME [options]: bench_ptibus against the running broker
    local name=$1
    shift
    measure ptibus "$name" -- "$bin/bench_ptibus" --endpoint "tcp://127.0.0.1:$ptibus_port" \
        --dir "$ptibus_dir/keys" --scenario "$name" --seconds "$secs" --count "$maxcount" "$@"
}

journal_records() { # records in the broker's journal (a read-only listing would be slower)
    python3 -c "import json,sys; print(sum(json.loads(l)['msgs'] for l in open(sys.argv[1]) \
if l.strip() and json.loads(l)['system']=='ptibus' and json.loads(l)['scenario'][:2] in ('S1','S4','S2')))" "$results"
}

memory_row() { # memory_row LABEL: the broker's memory now
    printf '{"scenario":"MEM","system":"ptibus","label":"%s","journal_messages":%s,%s}\n' \
        "$1" "$2" "$(mem_of "${PIDS[ptibus]}")" | tee -a "$results" >&2
}

# Publishes windowed until the broker's journal holds about N messages (bounded).
fill_broker() {
    local target=$1 have n i=0
    have=$(journal_records)
    while [ "$have" -lt "$target" ] && [ $i -lt 200 ]; do
        n=$((target - have))
        [ $n -gt 2000000 ] && n=2000000
        line=$("$bin/bench_ptibus" --endpoint "tcp://127.0.0.1:$ptibus_port" \
            --dir "$tmp/ptibus/keys" --scenario "FILL$i" --window 256 --count "$n" \
            --seconds 600 2>>"$tmp/clients.log" | tail -1) || return 1
        have=$((have + $(python3 -c "import json,sys; print(json.loads(sys.argv[1])['msgs'])" "$line")))
        i=$((i + 1))
    done
    filled=$have
}

# perf_top NAME -- command...: profiles ptibusd (cpu-clock samples, call graphs) while
# a client runs, and prints its top functions into $out/perf-NAME.txt.
perf_top() {
    local name=$1 data="$tmp/perf-$1.data"
    shift 2
    perf record -q -e cpu-clock -g -p "${PIDS[ptibus]}" -o "$data" 2>/dev/null &
    local ppid=$!
    sleep 0.5
    "$@" >/dev/null 2>>"$tmp/clients.log" || true
    kill -INT "$ppid" 2>/dev/null || true
    wait "$ppid" 2>/dev/null || true
    {
        perf report -i "$data" --stdio --no-children -g none --sort dso 2>/dev/null |
            grep -v '^#' | grep . | head -8
        echo
        perf report -i "$data" --stdio --no-children --percent-limit 0.7 -g none \
            --sort dso,symbol 2>/dev/null | grep -v '^#' | grep . | head -40
        echo
        echo "callers of vfprintf (who formats strings):"
        perf report -i "$data" --stdio --no-children -G --symbol-filter=__vfprintf_internal \
            --percent-limit 0.3 2>/dev/null | grep -v '^#' | grep . | head -40
    } >"$out/perf-$name.txt" || true
    log "perf profile of ptibusd during $name: $out/perf-$name.txt"
    head -25 "$out/perf-$name.txt" >&2
}

run_profiles() {
    local c=("$bin/bench_ptibus" --endpoint "tcp://127.0.0.1:$ptibus_port" --dir "$tmp/ptibus/keys"
        --seconds "$secs" --count "$maxcount")
    perf_top S1-sync -- "${c[@]}" --scenario PERF-sync --window 1
    perf_top S1-window -- "${c[@]}" --scenario PERF-window --window 256
    perf_top S1-multi6 -- "${c[@]}" --scenario PERF-multi6 --window 1 --threads 6
}

run_ptibus() {
    start_ptibus
    [ "$profile" = 1 ] && run_profiles
    strace_fsync ptibus ptibus -- "$bin/bench_ptibus" --endpoint "tcp://127.0.0.1:$ptibus_port" \
        --dir "$tmp/ptibus/keys" --scenario STRACE --seconds 3 --count 100000
    pt S1-sync --window 1
    pt S1-window --window 256
    pt S1-window-1person --window 256 --persons 1
    pt S1-multi6 --window 1 --threads 6
    pt S2-e2e --window 256 --target sink2
    pt S4-load10k --window 100000 --rate 10000 --count $((secs * 10000))
    memory_row "after S1/S2/S4" "$(journal_records)"
    if [ "$smoke" = 0 ]; then
        log "filling the broker's journal to $jrecords messages"
        fill_broker "$jrecords"
        memory_row "journal filled" "$filled"
        pt S1-window-big --window 256
        pt S2-e2e-big --window 256 --target sink2
        memory_row "after S1/S2 on the filled journal" "$filled"
    fi
    stop_pid ptibus
}

# R1 (issue 16): S1 beside the background expiry of N payloads. bench_journal builds a
# journal of N training offers two days old, signed with the broker's key; S1 runs on a
# broker over it with no retention policy (the baseline), then on a broker over the same
# journal with retention.payloads.training_offer: 1d, for which all N are due at once and
# are removed in the background (1024 a step, a step per 50 ms delivery tick). Then the
# run waits (bounded) for the last of them and reports how many went during S1 and how
# long the whole expiry took.
expired_count() { # expired_count METRICS_PORT: ptibus_journal_payloads_expired_total
    curl -s "http://127.0.0.1:$1/metrics" |
        awk '$1 == "ptibus_journal_payloads_expired_total" { v = int($2) } END { print v + 0 }'
}

run_expiry() {
    local d="$tmp/r1" n=$erecords mport t0 during got=0 deadline
    ptibus_keys "$d"
    log "R1: building a journal of $n expirable records"
    "$bin/bench_journal" --expirable "$d/journal" "$n" "$d/keys" 2>>"$tmp/clients.log" |
        tee -a "$results" >&2
    start_ptibus "$d"
    [ "$smoke" = 1 ] || pt R1-base-sync --window 1
    pt R1-base-window --window 256
    stop_pid ptibus
    mport=$(free_port)
    start_ptibus "$d" "$(printf 'metrics:\n  listen: "127.0.0.1:%s"\nretention:\n  payloads:\n    training_offer: 1d\n' "$mport")"
    t0=$(date +%s.%N)
    [ "$smoke" = 1 ] || pt R1-expiry-sync --window 1
    pt R1-expiry-window --window 256
    during=$(expired_count "$mport")
    deadline=$(($(date +%s) + n / 10000 + 120))
    while got=$(expired_count "$mport") && [ "$got" -lt "$n" ] && [ "$(date +%s)" -lt "$deadline" ]; do
        sleep 1
    done
    python3 - "$n" "$during" "$got" "$t0" "$(date +%s.%N)" <<'EOF' | tee -a "$results" >&2
import json, sys
n, during, got = (int(x) for x in sys.argv[1:4])
secs = float(sys.argv[5]) - float(sys.argv[4])
print(json.dumps({"scenario": "R1-expiry", "system": "ptibus", "records": n,
                  "expired_during_s1": during, "expired": got, "complete": got >= n,
                  "seconds": round(secs, 1), "rate": round(got / secs) if secs > 0 else 0}))
EOF
    stop_pid ptibus
    rm -rf "$d"
}

# The adapter scenarios (A1): bench_adapter starts its own broker and two adapters.
run_adapter() {
    log "adapters: A1 (POST -> adapter -> broker -> adapter -> outbox)"
    local spool=$((smoke ? 5000 : 100000))
    "$bin/bench_adapter" --seconds "$secs" --count "$maxcount" --rate 1000 --spool "$spool" |
        tee -a "$results" >&2
}

# The codec scenario (C1, issue 13): generated partner files (an LHEO catalogue, a CNAF
# flow) decoded, diffed and spooled by bench_codecs (two passes: the second one finds
# everything published), once as the runtime does it (one transaction per file) and once
# committing every 1000 records (a comparison), beside xmllint --stream --noout on the
# same file in the same run (the parsing floor: the best of two runs).
xmllint_row() { # xmllint_row CODEC FILE ITEMS
    python3 - "$@" <<'EOF' | tee -a "$results" >&2
import json, subprocess, sys, tempfile, time
codec, path, items = sys.argv[1], sys.argv[2], int(sys.argv[3])
runs, rss = [], 0
for _ in range(2):
    # GNU time for the peak RSS: a child of Python would count Python's own pages
    with tempfile.NamedTemporaryFile("r") as m:
        t = time.monotonic()
        subprocess.run(["/usr/bin/time", "-o", m.name, "-f", "%M", "xmllint", "--stream",
                        "--noout", path], check=True)
        runs.append(time.monotonic() - t)
        rss = max(rss, int(m.read().split()[-1]))
secs = min(runs)
print(json.dumps({"scenario": "C1-%s-xmllint" % codec, "system": "xmllint", "codec": codec,
                  "items": items, "seconds": round(secs, 3), "runs_s": [round(r, 3) for r in runs],
                  "items_per_s": round(items / secs), "peak_rss_kib": rss}))
EOF
}

run_codecs() {
    local d="$tmp/codecs" n codec f
    mkdir -p "$d"
    chmod 700 "$d"
    for codec in lheo cnaf_rsa; do
        case $codec in
        lheo) n=$((smoke ? 2000 : 100000)) f="$d/lheo.xml" ;;
        *) n=$((smoke ? 1000 : 50000)) f="$d/cnaf.xml" ;;
        esac
        log "codecs: C1 $codec ($n records, generated)"
        python3 "$top/bench/gen_codec_inputs.py" "${codec%_rsa}" "$f" "$n"
        xmllint_row "$codec" "$f" "$n"
        "$bin/bench_codecs" --codec "$codec" --file "$f" --items "$n" --dir "$d" \
            2>>"$tmp/clients.log" | tee -a "$results" >&2
        "$bin/bench_codecs" --codec "$codec" --file "$f" --items "$n" --dir "$d" \
            --commit-every 0 --passes 1 2>>"$tmp/clients.log" | tee -a "$results" >&2
        rm -f "$f"
    done
    # Peak RSS whatever the file size: the catalogue four times larger, one pass.
    n=$((smoke ? 8000 : 400000)) f="$d/lheo4.xml"
    log "codecs: C1 lheo x4 ($n records, generated)"
    python3 "$top/bench/gen_codec_inputs.py" lheo "$f" "$n"
    xmllint_row lheo4 "$f" "$n"
    "$bin/bench_codecs" --codec lheo --file "$f" --items "$n" --dir "$d" --passes 1 \
        2>>"$tmp/clients.log" | sed 's/C1-lheo-pass1/C1-lheo4-pass1/' | tee -a "$results" >&2
    rm -f "$f"
}

# The floor of the stack: bench_floor's minimal durable broker (ZeroMQ CURVE, one
# LMDB B-tree, one fsynced commit per drain, nothing else) through the same scenarios.
run_floor() {
    local d="$tmp/floor" port
    mkdir -p "$d"
    port=$(free_port)
    "$bin/bench_floor" serve --port "$port" --dir "$d" 2>"$d/floor.log" &
    PIDS[floor]=$!
    wait_port "$port" "${PIDS[floor]}" 20 || { cat "$d/floor.log" >&2; return 1; }
    log "bench_floor pid ${PIDS[floor]} on 127.0.0.1:$port"
    local c=("$bin/bench_floor" --port "$port" --dir "$d" --seconds "$secs" --count "$maxcount")
    measure floor S1-sync -- "${c[@]}" --scenario S1-sync --window 1
    measure floor S1-window -- "${c[@]}" --scenario S1-window --window 256
    measure floor S1-multi6 -- "${c[@]}" --scenario S1-multi6 --window 1 --threads 6
    measure floor S4-load10k -- "${c[@]}" --scenario S4-load10k --window 100000 --rate 10000 \
        --count $((secs * 10000))
    stop_pid floor
    rm -rf "$d"
}

run_reference() {
    log "LMDB commit rates on this disk"
    "$bin/bench_lmdb" "$tmp" $((smoke ? 1 : 5)) | tee -a "$results" >&2
    log "the journal's own commit rates (no network), 1, 6 and 256 records per commit"
    mkdir -p "$tmp/ref-journal"
    "$bin/bench_journal" --commits "$tmp/ref-journal" $((smoke ? 1 : 5)) 1 6 256 \
        2>>"$tmp/clients.log" | tee -a "$results" >&2
    rm -rf "$tmp/ref-journal"
    log "S3: journal of $jrecords records"
    "$bin/bench_journal" "$tmp/s3-journal" "$jrecords" 2>>"$tmp/clients.log" |
        tee -a "$results" >&2
    rm -rf "$tmp/s3-journal" "$tmp"/lmdb-*
}

# The ptibusctl scenario (CTL, issue 14): a journal of $ctlrecords records built through
# the journal API, then the real ptibusctl's list, export, trace, --message-id and
# report on it (and the person index in process).
run_ctl() {
    [ "$ctlrecords" -ge 3 ] || return 0
    log "CTL: ptibusctl on a journal of $ctlrecords records"
    "$bin/bench_ctl" --dir "$tmp/ctl-journal" --ctl "$ctl" --records "$ctlrecords" \
        --queries $((smoke ? 10 : 100)) 2>>"$tmp/clients.log" | tee -a "$results" >&2
    rm -rf "$tmp/ctl-journal"
}

# ---------------------------------------------------------------- peers
start_redis() {
    local d="$tmp/redis"
    mkdir -p "$d"
    redis_port=$(free_port)
    redis-server --bind 127.0.0.1 --port "$redis_port" --appendonly yes --appendfsync always \
        --dir "$d" --save "" --daemonize no --protected-mode yes >"$d/redis.log" 2>&1 &
    PIDS[redis]=$!
    wait_port "$redis_port" "${PIDS[redis]}" 20 || { cat "$d/redis.log" >&2; return 1; }
    log "redis-server pid ${PIDS[redis]} on 127.0.0.1:$redis_port"
}

start_nats() {
    local d="$tmp/nats"
    mkdir -p "$d"
    nats_port=$(free_port)
    nats-server -a 127.0.0.1 -p "$nats_port" -js -sd "$d" >"$d/nats.log" 2>&1 &
    PIDS[nats]=$!
    wait_port "$nats_port" "${PIDS[nats]}" 20 || { cat "$d/nats.log" >&2; return 1; }
    log "nats-server pid ${PIDS[nats]} on 127.0.0.1:$nats_port"
}

start_rabbitmq() {
    local d="$tmp/rabbitmq" epmd_port dist_port
    mkdir -p "$d/mnesia" "$d/log"
    rabbit_port=$(free_port) epmd_port=$(free_port) dist_port=$(free_port)
    echo "[]." >"$d/enabled_plugins"
    printf 'listeners.tcp.1 = 127.0.0.1:%s\nloopback_users = none\n' "$rabbit_port" \
        >"$d/rabbitmq.conf"
    # Our own epmd on loopback and a private port, so that it is ours to stop.
    ERL_EPMD_ADDRESS=127.0.0.1 epmd -port "$epmd_port" >"$d/epmd.log" 2>&1 &
    PIDS[epmd]=$!
    sleep 0.5
    HOME="$d" ERL_EPMD_ADDRESS=127.0.0.1 ERL_EPMD_PORT="$epmd_port" \
        RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$rabbit_port" \
        RABBITMQ_DIST_PORT="$dist_port" RABBITMQ_NODENAME="bench$$@localhost" \
        RABBITMQ_MNESIA_BASE="$d/mnesia" RABBITMQ_LOG_BASE="$d/log" \
        RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf" RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins" \
        RABBITMQ_SERVER_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
        /usr/lib/rabbitmq/bin/rabbitmq-server >"$d/rabbitmq.log" 2>&1 &
    PIDS[rabbitmq]=$!
    wait_port "$rabbit_port" "${PIDS[rabbitmq]}" 120 || { tail -30 "$d/rabbitmq.log" >&2; return 1; }
    # The server script runs the Erlang VM as its child: measure (and stop) beam.smp,
    # found by parent PID, never by name.
    PIDS[rabbitmq-script]=${PIDS[rabbitmq]}
    local pid=${PIDS[rabbitmq]} child
    for _ in 1 2 3 4; do
        [ "$(cat /proc/$pid/comm)" = beam.smp ] && break
        child=$(cat /proc/$pid/task/*/children 2>/dev/null | tr ' ' '\n' | grep . | head -1)
        [ -n "$child" ] || break
        pid=$child
    done
    PIDS[rabbitmq]=$pid
    log "rabbitmq-server: beam.smp pid $pid on 127.0.0.1:$rabbit_port"
}

peer() { # peer SERVER PROGRAM LABEL SCENARIO [options]
    local server=$1 prog=$2 label=$3 name=$4
    shift 4
    # A peer that fails a scenario is reported as failed; the run goes on.
    measure "$server" "$name" -- "$bin/$prog" --port "$port" --label "$label" \
        --scenario "$name" --seconds "$secs" --count "$maxcount" --run-id "$label-$name" "$@" ||
        printf '{"scenario":"%s","system":"%s","failed":true,"msgs":0,"seconds":0,"rate":0,"p50_us":0,"p99_us":0,"p999_us":0}\n' \
            "$name" "$label" | tee -a "$results" >&2
}

peer_scenarios() { # peer_scenarios SERVER PROGRAM LABEL [options]
    local server=$1 prog=$2 label=$3
    shift 3
    peer "$server" "$prog" "$label" S1-sync --window 1 "$@"
    peer "$server" "$prog" "$label" S1-window --window 256 "$@"
    peer "$server" "$prog" "$label" S1-multi6 --window 1 --threads 6 "$@"
    peer "$server" "$prog" "$label" S2-e2e --window 256 "$@"
    peer "$server" "$prog" "$label" S4-load10k --window 100000 --rate 10000 \
        --count $((secs * 10000)) "$@"
}

run_peers() {
    start_redis
    port=$redis_port
    strace_fsync redis redis -- "$bin/bench_redis" --port "$port" --scenario STRACE \
        --seconds 3 --count 100000 --run-id strace
    peer_scenarios redis bench_redis redis
    stop_pid redis

    start_rabbitmq
    port=$rabbit_port
    strace_fsync rabbitmq rabbitmq-quorum -- "$bin/bench_rabbitmq" --port "$port" \
        --scenario STRACE --seconds 3 --count 100000 --run-id strace-q --target quorum
    strace_fsync rabbitmq rabbitmq-classic -- "$bin/bench_rabbitmq" --port "$port" \
        --scenario STRACE --seconds 3 --count 100000 --run-id strace-c --target classic
    peer_scenarios rabbitmq bench_rabbitmq rabbitmq-classic --target classic
    peer_scenarios rabbitmq bench_rabbitmq rabbitmq-quorum --target quorum
    stop_pid rabbitmq
    stop_pid rabbitmq-script
    stop_pid epmd

    start_nats
    port=$nats_port
    strace_fsync nats nats-nondurable -- "$bin/bench_nats" --port "$port" --scenario STRACE \
        --seconds 3 --count 100000 --run-id strace
    peer_scenarios nats bench_nats nats-nondurable
    stop_pid nats
}

# ---------------------------------------------------------------- main
start_time=$(date +%s)
[ "$peers" = 1 ] && install_peers
install_pkgs libxml2-utils time # xmllint (the codec scenario's parsing floor), GNU time
log "building in $top/build-bench"
build
if [ "$ctl_only" = 1 ]; then
    [ "$ctlrecords" -ge 3 ] || ctlrecords=1000000
    run_ctl
elif [ "$expiry_only" = 1 ]; then
    run_expiry
else
    if [ "$codecs_only" = 0 ]; then
        run_ptibus
        run_expiry
        run_adapter
    fi
    run_codecs
    if [ "$codecs_only" = 0 ]; then
        run_floor
        run_reference
        run_ctl
        [ "$peers" = 1 ] && run_peers
    fi
fi
python3 "$top/bench/report.py" "$results" "$out/results.json" --codecs-only "$codecs_only" \
    --ctl-only "$ctl_only" --expiry-records "$erecords" --expiry-only "$expiry_only" \
    --smoke "$smoke" --seconds "$secs" --journal-records "$jrecords" \
    --elapsed $(($(date +%s) - start_time))
