#!/usr/bin/env bash
# fsl_eval end to end on one long synthetic file, in hours of audio per second of wall time:
# feature export (fsl_features export --split val) and detection (fsl_eval, 128 mels, default
# detection) timed apart, on THREADS threads (runtime.num_workers).
#
#   bench/detect_e2e.sh [HOURS]     env: BUILD_DIR (build), WORK (/tmp/fsl_detect_e2e), THREADS (2),
#                                        CHECKPOINT (default: a 1-epoch encoder trained here)
#
# The long file repeats the `tiny` synthetic set's VA_001 (27 s, calls ~0.45 s: adaptive segment
# 20 frames, hop 6) until it lasts HOURS (default 1); its first 5 calls are the shots. The
# encoder's weights do not change the cost; a checkpoint of 128 mels is made once if none given.
set -euo pipefail
cd "$(dirname "$0")/.."
HOURS=${1:-1}
B=${BUILD_DIR:-build}
WORK=${WORK:-/tmp/fsl_detect_e2e}
THREADS=${THREADS:-2}
for app in fsl_synth fsl_features fsl_train fsl_eval; do
  [ -x "$B/$app" ] || { echo "detect_e2e.sh: $B/$app not built (cmake --build $B)" >&2; exit 1; }
done
mkdir -p "$WORK"
[ -f "$WORK/synth/synth_manifest.json" ] || "$B/fsl_synth" --out "$WORK/synth" --scale tiny --quiet
LONG="$WORK/long_${HOURS}h"
if [ ! -f "$LONG/LONG/long.wav" ]; then
  python3 tools/bench/make_long_file.py --wav "$WORK/synth/Validation_Set/VA/VA_001.wav" \
    --seconds "$(awk "BEGIN { print $HOURS * 3600 }")" --out "$LONG/LONG/long.wav"
fi
COMMON=(exp_name=e2e path.work_dir="$WORK/runs" features.n_mels=128
        path.train_dir="$WORK/synth/Training_Set" runtime.num_workers="$THREADS")
CKPT=${CHECKPOINT:-$WORK/runs/e2e/best.safetensors}
if [ ! -f "$CKPT" ]; then
  echo "== a 128-mel checkpoint (1 short epoch on the tiny set)"
  "$B/fsl_features" export conf/tiny.yaml --split all "${COMMON[@]}" \
    path.eval_dir="$WORK/synth/Validation_Set" 2>/dev/null
  "$B/fsl_train" conf/tiny.yaml "${COMMON[@]}" path.eval_dir="$WORK/synth/Validation_Set" \
    train_param.max_epochs=1 > "$WORK/train.log" 2>&1 || { tail -3 "$WORK/train.log"; exit 1; }
fi
rm -f "$LONG"/LONG/*.npy
secs() { date +%s.%N; }
t0=$(secs)
"$B/fsl_features" export conf/tiny.yaml --split val "${COMMON[@]}" path.eval_dir="$LONG" 2>/dev/null
t1=$(secs)
"$B/fsl_eval" conf/tiny.yaml "${COMMON[@]}" path.eval_dir="$LONG" --checkpoint "$CKPT" \
  eval.batch_size=256 > "$WORK/eval.log" 2>&1
t2=$(secs)
tail -3 "$WORK/eval.log"
awk -v h="$HOURS" -v a="$t0" -v b="$t1" -v c="$t2" -v th="$THREADS" 'BEGIN {
  printf "%s h of audio, %d threads: export %.1f s, detection %.1f s, end to end %.1f s = %.4f h audio/s (%.1fx real time)\n",
         h, th, b - a, c - b, c - a, h / (c - a), h * 3600 / (c - a) }'
