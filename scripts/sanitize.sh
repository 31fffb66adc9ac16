#!/usr/bin/env bash
# Builds the CPU code with ASan + UBSan (-DFSL_SANITIZE=ON, no CUDA, no benchmarks) and runs the
# cpu-labelled tests; the apps the tests start are sanitized too. Any sanitizer report fails.
# Usage: scripts/sanitize.sh [extra ctest args, e.g. -E 'Train|Faults']
#   env: SAN_BUILD_DIR (default build-asan), JOBS
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${SAN_BUILD_DIR:-build-asan}
JOBS=${JOBS:-$(nproc)}
mkdir -p "$BUILD_DIR"
cmake -S . -B "$BUILD_DIR" -DFSL_SANITIZE=ON -DFSL_WITH_CUDA=OFF -DFSL_BUILD_BENCH=OFF \
  -DCMAKE_BUILD_TYPE=Release > "$BUILD_DIR/cmake.log" 2>&1 || { cat "$BUILD_DIR/cmake.log"; exit 1; }
cmake --build "$BUILD_DIR" -j"$JOBS"
# halt_on_error: a UBSan report aborts the test (by default UBSan only prints and goes on).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
ctest --test-dir "$BUILD_DIR" -L cpu --output-on-failure -j"$JOBS" --timeout 900 "$@"
