#!/usr/bin/env bash
# Runs the whole ptibus test suite on a fresh Debian machine: installs what is
# missing, configures, builds and runs ctest.
#   tests/run.sh                    gcc build in build/
#   tests/run.sh --sanitize         clang build with AddressSanitizer + UBSan and
#                                   libFuzzer targets, in build-asan/
#   tests/run.sh --tsan             clang build with ThreadSanitizer in build-tsan/: the
#                                   crash test's load (SIGKILLs, the read-ahead thread) and
#                                   the delivery tests, and the adapters' (the outbox's
#                                   flusher thread), failing on any report
#                                   (suppressions: tests/tsan.supp, third parties only)
#   tests/run.sh --fuzz-hours N     every libFuzzer target (tests/fuzz/) for N hours in
#                                   all (N may be fractional), shared among the targets, in
#                                   build-asan/: new coverage merged into tests/fuzz/corpus/,
#                                   findings copied into tests/fuzz/regressions/ (which ctest
#                                   replays); non-zero when anything was found
#   tests/run.sh --soak             the long versions of the fault tests (200 SIGKILLs,
#                                   200 power cuts), an hour of soak and 10 minutes of
#                                   randomized hostile clients, labels fault and soak only
# Extra arguments after -- go to ctest (e.g. tests/run.sh -- -L unit).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

"$top/deploy/install-deps.sh"

# The ThreadSanitizer run: only the broker, ptibusctl and the tests that drive threads (the
# broker's, the outbox's flusher, the XML reader thread of the codecs)
# are built. Every process writes its reports to tsan-reports/ (a SIGKILLed broker never
# reaches its exit code), and any report fails the run.
TSAN_TESTS=(fault_test_crash_loop integration_test_delivery integration_test_ingest
    integration_test_adapters test_xml_safe test_lheo test_cnaf)
tsan_run() {
    cmake --build "$build" -j"$(nproc)" --target ptibusd ptibusctl ptibus-adapter-departement \
        ptibus-adapter-pole-emploi ptibus-adapter-caf ptibus-adapter-msa "${TSAN_TESTS[@]}"
    local reports="$top/$build/tsan-reports"
    rm -rf "$reports" && mkdir -p "$reports"
    export TSAN_OPTIONS="log_path=$reports/tsan suppressions=$top/tests/tsan.supp ${TSAN_OPTIONS:-}"
    local rc=0
    (cd "$build" && ctest --output-on-failure \
        -R 'fault/test_crash_loop|integration/test_(delivery|ingest|adapters)$|unit/test_(xml_safe|lheo|cnaf)_threaded$' "$@") || rc=$?
    if compgen -G "$reports/tsan.*" >/dev/null; then
        grep -h -E '^(WARNING|SUMMARY): ThreadSanitizer' "$reports"/tsan.* | sort | uniq -c >&2
        echo "tsan: reports in $reports" >&2
        rc=1
    fi
    return $rc
}

build=${PTIBUS_BUILD_DIR:-build}
soak= tsan= fuzz_seconds=
cmake_args=(-DPTIBUS_WERROR="${PTIBUS_WERROR:-OFF}")
export CC=${CC:-gcc}
while [ $# -gt 0 ]; do
    case "$1" in
    --sanitize)
        build=${PTIBUS_BUILD_DIR:-build-asan}
        export CC=clang
        cmake_args+=(-DPTIBUS_SANITIZE="address;undefined" -DPTIBUS_FUZZ=ON)
        ;;
    --tsan)
        build=${PTIBUS_BUILD_DIR:-build-tsan}
        export CC=clang
        cmake_args+=(-DPTIBUS_SANITIZE=thread -DPTIBUS_BENCH=OFF)
        tsan=1
        ;;
    --fuzz-hours)
        fuzz_seconds=$(awk -v h="${2:-}" 'BEGIN { if (h + 0 <= 0) exit 1; printf "%d", h * 3600 }') || {
            echo "tests/run.sh: --fuzz-hours needs a positive number of hours" >&2
            exit 2
        }
        shift
        build=${PTIBUS_BUILD_DIR:-build-asan}
        export CC=clang
        cmake_args+=(-DPTIBUS_SANITIZE="address;undefined" -DPTIBUS_FUZZ=ON)
        ;;
    --soak)
        export PT_CRASH_KILLS=${PT_CRASH_KILLS:-200} PT_POWERCUT_CUTS=${PT_POWERCUT_CUTS:-200}
        export PT_SOAK_SECONDS=${PT_SOAK_SECONDS:-3600} PT_HOSTILE_SECONDS=${PT_HOSTILE_SECONDS:-600}
        soak=1
        ;;
    --) shift; break ;;
    *) echo "usage: tests/run.sh [--sanitize] [--tsan] [--fuzz-hours N] [--soak] [-- ctest args]" >&2; exit 2 ;;
    esac
    shift
done

cmake -S "$top" -B "$build" "${cmake_args[@]}" >/dev/null
if [ -n "$tsan" ]; then
    tsan_run "$@"
    exit
fi
if [ -n "$fuzz_seconds" ]; then
    fuzzers=()
    for src in "$top"/tests/fuzz/fuzz_*.c; do fuzzers+=("$(basename "$src" .c)"); done
    cmake --build "$build" -j"$(nproc)" --target "${fuzzers[@]}"
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
    exec bash "$top/tests/fuzz/campaign.sh" "$build" "$fuzz_seconds"
fi
cmake --build "$build" -j"$(nproc)"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
cd "$build"
if [ -n "${soak:-}" ]; then
    ctest --output-on-failure -L 'fault|soak' --timeout 7200 "$@"
else
    ctest --output-on-failure -j2 "$@"
fi
