#!/usr/bin/env bash
# GPU trainings for the accuracy tables (bench/LOG.md "GPU trainings"), run on a GPU machine
# after `scripts/gpu-suite.sh --pack .gpupack` made the programs on the dev machine:
#   tools/gpu/train_runs.sh .gpupack OUTDIR
# Makes the `small` synthetic set (seed 1) with 64-mel features (conf/demo.yaml), then trains:
#   gpu-demo     conf/demo.yaml as is (4 x 50 episodes): the CPU demo's training, on the GPU
#   gpu-demo10x  the same with 4 x 500 episodes (files of `small`: plain synthetic data)
#   gpu-online10x  4 x 500 episodes of train_param.source=synth_online (domain-randomised)
#   gpu-online10x-plainclasses  the same without the randomised class space (the CPU ablation's
#                  best on the real recordings at 200 episodes: bench/LOG.md "Ablation")
# and packs each run's best/last checkpoints, metrics.csv and feature_stats into OUTDIR/runs.tar
# (evaluate them anywhere with fsl_eval --checkpoint; see RESULTS). Each training's log: OUTDIR/train.log.
# Status: written 2026-11-27 after that session's device time was spent; not yet run on a GPU.
set -uo pipefail
P=${1:?"usage: tools/gpu/train_runs.sh PACK_DIR OUTDIR"}
OUTDIR=${2:?"usage: tools/gpu/train_runs.sh PACK_DIR OUTDIR"}
. scripts/gpu-env.sh "$P"
mkdir -p "$OUTDIR"
LOGF="$OUTDIR/train.log"
t0=$SECONDS
"$P/fsl_synth" --out data/synth/small --scale small --seed 1 > /dev/null 2>&1 || { echo "synth failed"; exit 1; }
"$P/fsl_features" export conf/demo.yaml --split all > /dev/null 2>&1 || { echo "export failed"; exit 1; }
echo "data ready in $((SECONDS - t0)) s" | tee -a "$LOGF"
train() {  # name, overrides...
  local name=$1; shift
  local s=$SECONDS
  echo "== $name $*" | tee -a "$LOGF"
  timeout 120 "$P/fsl_train" conf/demo.yaml runtime.device=cuda exp_name="$name" "$@" 2>&1 |
    grep -vE "^\s*$" | grep -v "\[=*" | tail -12 | tee -a "$LOGF"
  echo "$name: $((SECONDS - s)) s wall" | tee -a "$LOGF"
}
train gpu-demo
train gpu-demo10x train_param.num_episodes=500
train gpu-online10x train_param.num_episodes=500 train_param.source=synth_online runtime.num_workers=14
train gpu-online10x-plainclasses train_param.num_episodes=500 train_param.source=synth_online \
  train_param.synth_without=classes runtime.num_workers=14
tar cf "$OUTDIR/runs.tar" runs/gpu-* 2> /dev/null
ls -la "$OUTDIR"
