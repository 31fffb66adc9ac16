#!/usr/bin/env bash
# The one command for a machine with a GPU (default sm_90: H100/H200): builds everything with CUDA,
# runs every GPU test program (tests/gpu_*.cpp), every bench_gpu_* program
# (bench/bench_gpu_*.cpp), GPU vs CPU feature export of a synthetic set, and the PyTorch peers when
# torch sees a GPU, then prints one table. New GPU tests/benchmarks need no edit here: name them
# tests/gpu_*.cpp, bench/bench_gpu_*.cpp. The whole output also goes to bench/gpu-suite-<date>.txt
# (and $OUT/gpu-suite.txt when OUT is set). Budget: under 10 minutes.
#
# Usage:
#   scripts/gpu-suite.sh                 configure + build in BUILD_DIR, then run (needs the
#                                        project's dependencies installed: scripts/install-deps.sh)
#   scripts/gpu-suite.sh --pack DIR      build here (no GPU needed) and copy the GPU programs, the
#                                        apps and the non-system shared libraries they need into
#                                        DIR, for a GPU machine without the dependencies
#   scripts/gpu-suite.sh --prebuilt DIR  run what --pack put in DIR (no build)
# env: BUILD_DIR (build-gpu), CUDA_ARCH (90), JOBS (nproc), BENCH_MIN_TIME (s per benchmark, 0.5),
#      EXPORT_SCALE (synthetic set for the export timing: tiny|small|full|none, default small)
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-gpu}
CUDA_ARCH=${CUDA_ARCH:-90}
JOBS=${JOBS:-$(nproc)}
BENCH_MIN_TIME=${BENCH_MIN_TIME:-0.5}
EXPORT_SCALE=${EXPORT_SCALE:-small}
MODE=build
PACK_DIR=""
case "${1:-}" in
  --pack) MODE=pack; PACK_DIR=${2:?"--pack needs a directory"} ;;
  --prebuilt) MODE=prebuilt; PACK_DIR=${2:?"--prebuilt needs a directory"} ;;
  "") ;;
  *) echo "usage: scripts/gpu-suite.sh [--pack DIR | --prebuilt DIR]" >&2; exit 2 ;;
esac
APPS="fsl_synth fsl_features fsl_train fsl_eval"

build() {
  echo "== configure + build ($BUILD_DIR, sm_$CUDA_ARCH, -j$JOBS)"
  if ! cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DFSL_WITH_CUDA=ON \
      -DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCH" -DFSL_BUILD_BENCH=ON > "$WORK/cmake.log" 2>&1; then
    cat "$WORK/cmake.log"; echo "gpu-suite: configure failed"; exit 1
  fi
  grep "CUDA backend" "$WORK/cmake.log"
  if ! grep -q "CUDA backend ON" "$WORK/cmake.log"; then
    echo "gpu-suite: CMake did not enable CUDA (nvcc or cuDNN missing?)"; exit 1
  fi
  # Keep going past a target that fails (another part of the project may be mid-change): the GPU
  # tests and benchmarks that did build still run; the failure is reported, the exit is non-zero.
  local targets
  targets=$(ls tests/gpu_*.cpp bench/bench_gpu_*.cpp | xargs -n1 basename | sed 's/\.cpp$//')
  if ! cmake --build "$BUILD_DIR" -j"$JOBS" --target $targets $APPS -- -k \
      > "$WORK/build.log" 2>&1; then
    BUILD_RC=1
    grep -E "error|Error" "$WORK/build.log" | head -20
    echo "gpu-suite: some targets failed to build (targets listed in the summary's build row)"
  fi
}

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
BUILD_RC=0

if [ "$MODE" = pack ]; then
  build
  [ "$BUILD_RC" -eq 0 ] || exit 1
  rm -rf "$PACK_DIR"; mkdir -p "$PACK_DIR/lib"
  for p in $BUILD_DIR/gpu_* $BUILD_DIR/bench_gpu_* $(printf "$BUILD_DIR/%s " $APPS); do
    case "$p" in *.cmake) continue ;; esac
    [ -x "$p" ] && cp "$p" "$PACK_DIR/"
  done
  # Every shared library outside glibc/libstdc++/libgcc and outside CUDA (the GPU machine has its
  # own, matching its driver).
  for p in "$PACK_DIR"/*; do [ -f "$p" ] && ldd "$p"; done | awk '$3 ~ /^\// { print $3 }' | sort -u |
    grep -vE '/(libc|libm|libdl|libpthread|librt|libstdc\+\+|libgcc_s|ld-linux[^/]*)\.so|/usr/local/cuda' |
    while read -r lib; do cp -L "$lib" "$PACK_DIR/lib/"; done
  du -sh "$PACK_DIR"
  exit 0
fi

LOG="bench/gpu-suite-$(date +%Y%m%d-%H%M%S).txt"
if [ -n "${OUT:-}" ]; then exec > >(tee "$LOG" "$OUT/gpu-suite.txt") 2>&1
else exec > >(tee "$LOG") 2>&1; fi
START=$SECONDS

echo "== fsl gpu-suite $(date -Is) commit $(git rev-parse --short HEAD 2>/dev/null || echo '?') mode $MODE"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null ||
  echo "nvidia-smi: not available"

if [ "$MODE" = prebuilt ]; then
  BIN=$PACK_DIR
  . scripts/gpu-env.sh "$PACK_DIR"
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
else
  build
  BIN=$BUILD_DIR
fi
echo "ready in $((SECONDS - START)) s"

echo "== GPU tests"
TEST_RC=0
for t in "$BIN"/gpu_*; do
  case "$t" in *.cmake) continue ;; esac
  [ -x "$t" ] || continue
  echo "-- $(basename "$t")"
  timeout 240 "$t" --gtest_color=no 2>&1 | tee -a "$WORK/tests.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || TEST_RC=1
done

echo "== GPU benchmarks"
BENCH_RC=0
for b in "$BIN"/bench_gpu_*; do
  [ -x "$b" ] || continue
  echo "-- $(basename "$b")"
  timeout 180 "$b" --benchmark_min_time="$BENCH_MIN_TIME" 2>&1 | tee -a "$WORK/bench.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || BENCH_RC=1
done

echo "== feature export, GPU vs CPU ($EXPORT_SCALE synthetic set)"
EXPORT_RC=0
: > "$WORK/export.log"
if [ "$EXPORT_SCALE" != none ] && [ -x "$BIN/fsl_synth" ] && [ -x "$BIN/fsl_features" ]; then
  D=$WORK/synth
  t0=$SECONDS
  "$BIN/fsl_synth" --out "$D" --scale "$EXPORT_SCALE" --seed 1 > "$WORK/synth.log" 2>&1 ||
    { tail -3 "$WORK/synth.log"; EXPORT_RC=1; }
  echo "synthesised in $((SECONDS - t0)) s: $(du -sh "$D" | cut -f1)"
  OK_DEVS=""
  for dev in cpu cuda; do
    find "$D" -name '*.npy' -delete
    s=$(date +%s.%N)
    if "$BIN/fsl_features" export conf/config.yaml --split all --force runtime.device=$dev \
        path.train_dir="$D/Training_Set" path.eval_dir="$D/Validation_Set" \
        path.test_dir="$D/Validation_Set" features.feature_types=logmel@pcen \
        > "$WORK/export_$dev.log" 2>&1; then
      e=$(date +%s.%N)
      printf "export_%s_s: %s\n" "$dev" "$(awk "BEGIN { printf \"%.2f\", $e - $s }")" | tee -a "$WORK/export.log"
      OK_DEVS="$OK_DEVS $dev"
    else
      tail -3 "$WORK/export_$dev.log"; EXPORT_RC=1
      echo "export_${dev}_s: FAILED" | tee -a "$WORK/export.log"
    fi
    # keep this device's features for the comparison below
    mkdir -p "$WORK/feat_$dev"
    (cd "$D" && find . -name '*.npy' -exec cp --parents {} "$WORK/feat_$dev/" \;)
  done
  if [ "$OK_DEVS" = " cpu cuda" ] && python3 -c "import numpy" 2> /dev/null; then
    python3 - "$WORK/feat_cpu" "$WORK/feat_cuda" << 'EOF' | tee -a "$WORK/export.log"
import sys, pathlib, numpy as np
a, b = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
worst = {}
files = sorted(p.relative_to(a) for p in a.rglob("*.npy"))
for rel in files:
    x, y = np.load(a / rel).astype(np.float64), np.load(b / rel).astype(np.float64)
    kind = rel.stem.rsplit("_", 1)[-1]
    e = np.inf if x.shape != y.shape else np.linalg.norm(x - y) / max(np.linalg.norm(x), 1e-30)
    worst[kind] = max(worst.get(kind, 0.0), e)
print("export_files_compared: %d" % len(files))
for k, e in sorted(worst.items()):
    print("export_max_rel_err_%s: %.3g" % (k, e))
EOF
  fi
else
  echo "skipped (EXPORT_SCALE=$EXPORT_SCALE or apps missing)" | tee -a "$WORK/export.log"
fi

echo "== PyTorch peers"
PEER=""
for py in python3 /usr/bin/python3; do
  if command -v "$py" > /dev/null &&
     "$py" -c "import torch, torchaudio, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
       2> /dev/null; then
    PEER=$py; break
  fi
done
if [ -n "$PEER" ]; then
  timeout 180 "$PEER" bench/peer/frontend_torchaudio.py 2>&1 | tee "$WORK/peer.log"
  for tf in "" --tf32; do
    timeout 120 "$PEER" bench/peer/train_step_torch.py --device cuda --steps 20 $tf 2>&1 |
      tee -a "$WORK/peer.log"
  done
else
  echo "skipped: no python with torch + torchaudio + CUDA" | tee "$WORK/peer.log"
fi

echo
echo "== summary ($(( SECONDS - START )) s)"
{
  printf "%-6s | %-52s | %s\n" kind name result
  if [ "$BUILD_RC" -eq 0 ]; then r=ok; else
    r="FAILED: $(grep -oE "\*\*\* \[[^]]*\]" "$WORK/build.log" | sort -u | tr '\n' ' ')"; fi
  printf "%-6s | %-52s | %s\n" build "$BIN (sm_$CUDA_ARCH, $MODE)" "$r"
  # gtest: "[       OK ] GpuOps.X (12 ms)", "[  FAILED  ] GpuOps.X (3 ms)", "[  SKIPPED ] ..."
  grep -E '^\[ +(OK|FAILED|SKIPPED) +\] [A-Za-z0-9_/]+\.[A-Za-z0-9_/]+ \(' "$WORK/tests.log" 2> /dev/null |
    sed -E 's/^\[ +([A-Z]+) +\] ([^ ]+) \(([0-9]+ ms)\).*/\2 \1 \3/' |
    awk '{ printf "%-6s | %-52s | %s %s %s\n", "test", $1, $2, $3, $4 }'
  # benchmarks: "BM_x/y/real_time  12.3 ms  12.0 ms  40 audio_h_per_s=1.2k/s"
  awk '/^BM_/ { n = $1
         if ($2 == "ERROR") { sub(/^[^ ]+ +ERROR OCCURRED: /, ""); r = "error: " $0 }
         else { r = $2 " " $3; for (i = 5; i <= NF; ++i) if ($i ~ /=/) r = r "  " $i }
         printf "%-6s | %-52s | %s\n", "bench", n, r }' "$WORK/bench.log" 2> /dev/null
  awk -F': ' '/^export_/ { printf "%-6s | %-52s | %s\n", "export", $1, $2 }' "$WORK/export.log"
  grep -E "^torchaudio_|^torch |^skipped" "$WORK/peer.log" |
    awk -F': ' '{ printf "%-6s | %-52s | %s\n", "peer", $1, $2 }'
} | tee "$WORK/table.txt"
echo "written: $LOG"
[ "$BUILD_RC" -eq 0 ] && [ "$TEST_RC" -eq 0 ] && [ "$BENCH_RC" -eq 0 ] && [ "$EXPORT_RC" -eq 0 ]
