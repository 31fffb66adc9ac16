# Source on a GPU machine to run programs packed by `scripts/gpu-suite.sh --pack DIR`:
#   . scripts/gpu-env.sh DIR
# Finds this machine's CUDA libraries (the toolkit's, else the ones PyTorch's wheels carry), puts
# them after DIR/lib on LD_LIBRARY_PATH, and points the test programs at this checkout's
# tests/data and at DIR for the apps.
PACK_DIR=$(cd "${1:?"usage: . scripts/gpu-env.sh PACK_DIR"}" && pwd)
_fsl_cuda_dirs=$(find /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/lib /opt -maxdepth 9 \
  \( -name 'libcudnn.so.9' -o -name 'libcufft.so.12' -o -name 'libcublas.so.13' \) \
  -printf '%h\n' 2> /dev/null | awk '!seen[$0]++' | tr '\n' ':')
export LD_LIBRARY_PATH="$PACK_DIR/lib:${_fsl_cuda_dirs}${LD_LIBRARY_PATH:-}"
export FSL_TEST_DATA="$PWD/tests/data" FSL_BIN_DIR="$PACK_DIR"
unset _fsl_cuda_dirs
