// Internal to the CUDA ops: launch geometry and the block reductions the kernels share.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "fsl/cuda_check.hpp"

namespace fsl::cuda {

constexpr int kThreads = 256;  // threads per block of every element-wise kernel

inline unsigned grid_for(int64_t n) {
  int64_t b = (n + kThreads - 1) / kThreads;
  if (b < 1) b = 1;
  return unsigned(b < (int64_t(1) << 30) ? b : (int64_t(1) << 30));
}

// Grid-stride loop over [0, n).
#define FSL_KERNEL_LOOP(i, n)                                               \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += int64_t(blockDim.x) * gridDim.x)

// Checks the launch itself (bad configuration); execution errors surface at the next sync.
#define FSL_CUDA_CHECK_LAUNCH() FSL_CUDA_CHECK(cudaGetLastError())

// Sum of one value per thread over a block of kThreads threads; every thread gets the total.
// `shared` holds kThreads elements. The order is fixed: results are deterministic.
template <typename T>
__device__ inline T block_sum(T v, T* shared) {
  shared[threadIdx.x] = v;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if (int(threadIdx.x) < s) shared[threadIdx.x] += shared[threadIdx.x + s];
    __syncthreads();
  }
  T total = shared[0];
  __syncthreads();  // shared may be reused right after
  return total;
}

}  // namespace fsl::cuda
