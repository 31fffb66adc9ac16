#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/fuzz_*.cpp, clang + ASan + UBSan) and runs each for N seconds
# (default 30), one after another, starting from the committed seeds in fuzz/corpus/<target>/.
# New corpus entries go to <build>/corpus/<target>/; a crash, leak, timeout (>10 s) or
# out-of-memory input is written to <build>/artifacts/<target>/ and makes the script exit 1.
# Usage: scripts/fuzz.sh [seconds] [target...]   env: FUZZ_BUILD_DIR (default build-fuzz), JOBS
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${1:-30}
shift || true
BUILD_DIR=${FUZZ_BUILD_DIR:-build-fuzz}
JOBS=${JOBS:-$(nproc)}
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
  for f in fuzz/fuzz_*.cpp; do TARGETS+=("$(basename "$f" .cpp)"); done
fi
mkdir -p "$BUILD_DIR"
cmake -S . -B "$BUILD_DIR" -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DFSL_FUZZ=ON \
  -DFSL_WITH_CUDA=OFF -DFSL_BUILD_TESTS=OFF -DFSL_BUILD_BENCH=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo > "$BUILD_DIR/cmake.log" 2>&1 || { cat "$BUILD_DIR/cmake.log"; exit 1; }
cmake --build "$BUILD_DIR" -j"$JOBS" --target "${TARGETS[@]}"
status=0
for t in "${TARGETS[@]}"; do
  mkdir -p "$BUILD_DIR/corpus/$t" "$BUILD_DIR/artifacts/$t"
  echo "== $t: ${SECONDS_PER_TARGET} s"
  if ! "$BUILD_DIR/fuzz/$t" "$BUILD_DIR/corpus/$t" "fuzz/corpus/$t" \
      -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
      -print_final_stats=1 -artifact_prefix="$BUILD_DIR/artifacts/$t/" \
      > "$BUILD_DIR/$t.log" 2>&1; then
    echo "FAIL $t (log: $BUILD_DIR/$t.log, inputs: $BUILD_DIR/artifacts/$t/)"
    grep -m3 -E "ERROR|SUMMARY|deadly" "$BUILD_DIR/$t.log" || true
    status=1
  else
    grep -E "stat::number_of_executed_units|cov:" "$BUILD_DIR/$t.log" | tail -n 2 || true
  fi
done
exit $status
