#!/usr/bin/env bash
# The main job on the embedded synthetic data: install dependencies, build, synthesise the
# `small` development set, export features, train the encoder, then evaluate it beside the
# no-training floor detector and print both F-measures.
# Usage: scripts/demo.sh [config]     (default conf/demo.yaml)   env: BUILD_DIR, DATA_DIR, SEED
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${1:-conf/demo.yaml}
BUILD_DIR=${BUILD_DIR:-build}
DATA_DIR=${DATA_DIR:-data/synth/small}
SEED=${SEED:-1}
t0=$(date +%s)
step() { echo; echo "== $* ($(( $(date +%s) - t0 )) s)"; }

step "install dependencies"
scripts/install-deps.sh
step "build"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release > /tmp/fsl-cmake.$$.log 2>&1 || {
  cat /tmp/fsl-cmake.$$.log; exit 1; }
cmake --build "$BUILD_DIR" -j"$(nproc)" --target fsl_synth fsl_features fsl_train fsl_eval fsl_score
B="$BUILD_DIR"
# The config's paths follow DATA_DIR (conf/demo.yaml names data/synth/small).
PATHS=(path.train_dir="$DATA_DIR/Training_Set" path.eval_dir="$DATA_DIR/Validation_Set")

if [ ! -f "$DATA_DIR/synth_manifest.json" ]; then
  step "synthesise the small development set into $DATA_DIR"
  "$B/fsl_synth" --out "$DATA_DIR" --scale small --seed "$SEED"
fi
step "export features"
"$B/fsl_features" export "$CONFIG" --split all "${PATHS[@]}"
step "train ($CONFIG)"
"$B/fsl_train" "$CONFIG" "${PATHS[@]}"
step "evaluate the trained encoder beside the no-training floor (frame prototypes)"
"$B/fsl_eval" "$CONFIG" eval.method=encoder --with-floor "${PATHS[@]}"
echo "demo took $(( $(date +%s) - t0 )) s"
