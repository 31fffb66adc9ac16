#!/usr/bin/env bash
# Installs the Debian 12 packages fsl needs to build and test. Idempotent: packages already
# present are skipped by apt. The CUDA toolkit (nvcc, cuFFT, cuBLAS, cuDNN) is expected at
# /usr/local/cuda; without it fsl builds the CPU backend only.
# Usage: scripts/install-deps.sh [--python]   (--python also installs librosa/torch for tools/)
set -euo pipefail
PKGS=(build-essential cmake pkg-config git
      libsndfile1-dev libsoxr-dev libfftw3-dev libopenblas-dev
      libcli11-dev libyaml-cpp-dev libgtest-dev libgmock-dev libbenchmark-dev
      clang libclang-rt-14-dev)  # clang + libFuzzer: scripts/fuzz.sh
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all Debian packages present"
fi
if [ "${1:-}" = "--python" ]; then
  # Only the tools/ scripts need these (golden data, peers); the build and tests never do.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-numpy python3-scipy python3-torch python3-pip
  python3 -m pip install --quiet librosa soundfile mir_eval
fi
