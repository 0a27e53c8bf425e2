#!/usr/bin/env bash
# A long fuzzing campaign (tests/run.sh --fuzz-hours N runs it after building the
# libFuzzer targets): every fuzz target of BUILD/tests/fuzz/ runs for its share of the
# total time (TOTAL_SECONDS / number of targets), starting from its committed corpus
# (tests/fuzz/corpus/<target>/) and regression inputs (tests/fuzz/regressions/<target>/).
# Afterwards:
#   - the inputs that add coverage are merged into the committed corpus (libFuzzer
#     -merge=1: only those that reach new edges, named by their SHA-1);
#   - every crash, leak, timeout or out-of-memory input found is copied into
#     tests/fuzz/regressions/<target>/, which ctest's fuzz-replay/<target> replays, so
#     that it fails until the bug is fixed; a target that crashes is restarted for the
#     rest of its time (at most PT_FUZZ_RESTARTS times, default 20).
# Exits 1 when anything was found. Review and commit the corpus and regressions folders.
#   tests/fuzz/campaign.sh BUILD TOTAL_SECONDS
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$1 total=$2
restarts_max=${PT_FUZZ_RESTARTS:-20}

targets=()
for f in "$build"/tests/fuzz/fuzz_*; do
    [ -x "$f" ] && targets+=("$f")
done
[ ${#targets[@]} -gt 0 ] || { echo "fuzz: no fuzz target in $build/tests/fuzz" >&2; exit 2; }
share=$((total / ${#targets[@]}))
[ "$share" -ge 1 ] || share=1
echo "fuzz: ${#targets[@]} targets, ${share}s each (${total}s in all)" >&2

logs="$build/fuzz-campaign"
mkdir -p "$logs"
found=0

# fuzz_one TARGET: fuzzes for its share into a scratch corpus, restarting after a crash.
fuzz_one() {
    local f=$1 name work art corpus reg end left tries=0 rc
    name=$(basename "$f")
    corpus="$top/tests/fuzz/corpus/$name" reg="$top/tests/fuzz/regressions/$name"
    work=$(mktemp -d) art=$(mktemp -d)
    local seeds=()
    [ -d "$corpus" ] && seeds+=("$corpus")
    [ -d "$reg" ] && seeds+=("$reg")
    end=$(($(date +%s) + share))
    while left=$((end - $(date +%s))) && [ "$left" -gt 0 ] && [ "$tries" -le "$restarts_max" ]; do
        rc=0
        "$f" -max_total_time="$left" -rss_limit_mb=2048 -timeout=25 -artifact_prefix="$art/" \
            -print_final_stats=1 "$work" "${seeds[@]}" >>"$logs/$name.log" 2>&1 || rc=$?
        [ "$rc" -eq 0 ] && break
        tries=$((tries + 1))
    done
    mkdir -p "$corpus"
    local before after
    before=$(find "$corpus" -type f | wc -l)
    "$f" -merge=1 -rss_limit_mb=2048 -timeout=25 "$corpus" "$work" >>"$logs/$name.log" 2>&1 || true
    after=$(find "$corpus" -type f | wc -l)
    local crashes=0 a
    for a in "$art"/*; do
        [ -f "$a" ] || continue
        mkdir -p "$reg"
        cp "$a" "$reg/$(basename "$a")"
        crashes=$((crashes + 1))
    done
    echo "fuzz: $name: $((after - before)) new corpus inputs, $crashes findings" \
        "$([ "$crashes" -gt 0 ] && echo "(copied into tests/fuzz/regressions/$name/)")" >&2
    [ "$crashes" -eq 0 ] || found=1
    rm -rf "$work" "$art"
}

for f in "${targets[@]}"; do
    fuzz_one "$f"
done
echo "fuzz: logs in $logs" >&2
if [ "$found" -ne 0 ]; then
    echo "fuzz: findings were copied into tests/fuzz/regressions/: ctest's fuzz-replay tests" \
        "now fail on them until the bugs are fixed" >&2
    exit 1
fi
