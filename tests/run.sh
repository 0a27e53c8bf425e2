#!/usr/bin/env bash
# Runs the whole ptibus test suite on a fresh Debian machine: installs what is
# missing, configures, builds and runs ctest.
#   tests/run.sh                    gcc build in build/
#   tests/run.sh --sanitize         clang build with AddressSanitizer + UBSan and
#                                   libFuzzer targets, in build-asan/
#   tests/run.sh --soak             the long versions of the fault tests (200 SIGKILLs,
#                                   200 power cuts), an hour of soak and 10 minutes of
#                                   randomized hostile clients, labels fault and soak only
# Extra arguments after -- go to ctest (e.g. tests/run.sh -- -L unit).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

"$top/deploy/install-deps.sh"

build=${PTIBUS_BUILD_DIR:-build}
soak=
cmake_args=(-DPTIBUS_WERROR="${PTIBUS_WERROR:-OFF}")
export CC=${CC:-gcc}
while [ $# -gt 0 ]; do
    case "$1" in
    --sanitize)
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
    *) echo "usage: tests/run.sh [--sanitize] [--soak] [-- ctest args]" >&2; exit 2 ;;
    esac
    shift
done

cmake -S "$top" -B "$build" "${cmake_args[@]}" >/dev/null
cmake --build "$build" -j"$(nproc)"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
cd "$build"
if [ -n "${soak:-}" ]; then
    ctest --output-on-failure -L 'fault|soak' --timeout 7200 "$@"
else
    ctest --output-on-failure -j2 "$@"
fi
