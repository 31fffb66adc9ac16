// batchnorm2d on the device, PyTorch semantics, double accumulators as the CPU op.
// A channel's M = N * HW values are split into S slices (om::reduction_slices): one block per
// (slice, channel) reduces its slice (two passes: mean, then squared deviations; or the backward
// sums), writing one partial per block into the context's reduction scratch; one thread per
// channel then merges the S partials in slice order (om::merge_moments: deterministic, equal to
// the two-pass statistics up to rounding); an element-wise kernel over all N * C * HW values
// normalises (or forms dx). C * S blocks, because one block per channel (64..128) cannot fill a
// GPU of 132 SMs, and BN runs on every activation of the training step.
#include "fsl/cuda_ops.hpp"
#include "fsl/op_math.hpp"
#include "ops_common.hpp"

namespace fsl::cuda {
namespace {

// Index of value m (0..M) of channel c in an (N, C, HW) tensor.
__device__ inline int64_t bn_index(int64_t m, int c, int C, int HW) {
  const int64_t n = m / HW, i = m % HW;
  return (n * C + c) * HW + i;
}

// grid (S, C): the Moments of slice blockIdx.x of channel blockIdx.y -> part[c * S + s].
__global__ void bn_moments_kernel(om::Moments* part, const float* x, int N, int C, int HW) {
  __shared__ double shared[kThreads];
  const int s = blockIdx.x, S = gridDim.x, c = blockIdx.y;
  const int64_t M = int64_t(N) * HW;
  const int64_t m0 = om::slice_begin(M, S, s), m1 = om::slice_begin(M, S, s + 1);
  double sum = 0;
  for (int64_t m = m0 + threadIdx.x; m < m1; m += kThreads) sum += x[bn_index(m, c, C, HW)];
  const double n = double(m1 - m0);
  const double mean = n > 0 ? block_sum(sum, shared) / n : 0.0;
  double ss = 0;
  for (int64_t m = m0 + threadIdx.x; m < m1; m += kThreads) {
    const double d = x[bn_index(m, c, C, HW)] - mean;
    ss += d * d;
  }
  const double m2 = block_sum(ss, shared);
  if (threadIdx.x == 0) part[int64_t(c) * S + s] = om::Moments{n, mean, m2};
}

// One thread per channel: merge the slices, then mean/invstd and the running statistics
// (training), or mean/invstd from the running statistics (eval, part unused).
__global__ void bn_stats_kernel(float* mean, float* invstd, float* running_mean, float* running_var,
                                const om::Moments* part, int S, int C, bool training,
                                double momentum, double eps) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  if (!training) {
    mean[c] = running_mean[c];
    invstd[c] = float(1.0 / sqrt(double(running_var[c]) + eps));
    return;
  }
  om::Moments t;
  for (int s = 0; s < S; ++s) t = om::merge_moments(t, part[int64_t(c) * S + s]);
  const double var = t.m2 / t.n;
  mean[c] = float(t.mean);
  invstd[c] = float(1.0 / sqrt(var + eps));
  const double unbiased = t.n > 1 ? t.m2 / (t.n - 1) : var;
  running_mean[c] = float((1 - momentum) * running_mean[c] + momentum * t.mean);
  running_var[c] = float((1 - momentum) * running_var[c] + momentum * unbiased);
}

__global__ void bn_normalise_kernel(float* y, const float* x, const float* mean,
                                    const float* invstd, const float* gamma, const float* beta,
                                    int64_t n, int C, int HW) {
  FSL_KERNEL_LOOP(i, n) {
    const int c = int((i / HW) % C);
    y[i] = om::bn_normalise(x[i], mean[c], invstd[c], gamma[c], beta[c]);
  }
}

// grid (S, C): sum(dy) and sum(dy * xhat) over slice s of channel c -> part[2 (c S + s) + 0/1].
__global__ void bn_backward_sums_kernel(double* part, const float* dy, const float* x,
                                        const float* mean, const float* invstd, int N, int C,
                                        int HW) {
  __shared__ double shared[kThreads];
  const int s = blockIdx.x, S = gridDim.x, c = blockIdx.y;
  const int64_t M = int64_t(N) * HW;
  const int64_t m0 = om::slice_begin(M, S, s), m1 = om::slice_begin(M, S, s + 1);
  const float mu = mean[c], inv = invstd[c];
  double s_dy = 0, s_dy_xhat = 0;
  for (int64_t m = m0 + threadIdx.x; m < m1; m += kThreads) {
    const int64_t i = bn_index(m, c, C, HW);
    s_dy += dy[i];
    s_dy_xhat += double(dy[i]) * double((x[i] - mu) * inv);
  }
  const double a = block_sum(s_dy, shared);
  const double b = block_sum(s_dy_xhat, shared);
  if (threadIdx.x == 0) {
    part[2 * (int64_t(c) * S + s)] = a;
    part[2 * (int64_t(c) * S + s) + 1] = b;
  }
}

// One thread per channel: the slices' sums in slice order; dgamma, dbeta accumulate; coef[c] =
// (mean(dy), mean(dy xhat)) as floats for the element-wise dx.
__global__ void bn_backward_reduce_kernel(float* dgamma, float* dbeta, float* coef,
                                          const double* part, int S, int C, int64_t M) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  double sum_dy = 0, sum_dy_xhat = 0;
  for (int s = 0; s < S; ++s) {
    sum_dy += part[2 * (int64_t(c) * S + s)];
    sum_dy_xhat += part[2 * (int64_t(c) * S + s) + 1];
  }
  dbeta[c] += float(sum_dy);
  dgamma[c] += float(sum_dy_xhat);
  coef[2 * c] = float(sum_dy / double(M));
  coef[2 * c + 1] = float(sum_dy_xhat / double(M));
}

// dx = gamma invstd (dy - mean(dy) - xhat mean(dy xhat)) in training, gamma invstd dy in eval.
__global__ void bn_dx_kernel(float* dx, const float* dy, const float* x, const float* gamma,
                             const float* mean, const float* invstd, const float* coef, int64_t n,
                             int C, int HW, bool training) {
  FSL_KERNEL_LOOP(i, n) {
    const int c = int((i / HW) % C);
    const float scale = gamma[c] * invstd[c];
    if (training) {
      const float xhat = (x[i] - mean[c]) * invstd[c];
      dx[i] = scale * (dy[i] - coef[2 * c] - xhat * coef[2 * c + 1]);
    } else {
      dx[i] = scale * dy[i];
    }
  }
}

unsigned channel_grid(int C) { return unsigned((C + kThreads - 1) / kThreads); }

}  // namespace

void batchnorm2d_forward(CudaContext& ctx, float* y, float* mean, float* invstd, const float* x,
                         const float* gamma, const float* beta, float* running_mean,
                         float* running_var, int N, int C, int HW, bool training,
                         const BatchNormParams& bn) {
  const int64_t M = int64_t(N) * HW, n = M * C;
  const int S = om::reduction_slices(M);
  static_assert(sizeof(om::Moments) == 3 * sizeof(double));
  auto* part = reinterpret_cast<om::Moments*>(ctx.reduction_scratch(size_t(3) * C * S));
  cudaStream_t st = ctx.stream();
  if (training) {
    bn_moments_kernel<<<dim3(S, C), kThreads, 0, st>>>(part, x, N, C, HW);
    FSL_CUDA_CHECK_LAUNCH();
  }
  bn_stats_kernel<<<channel_grid(C), kThreads, 0, st>>>(mean, invstd, running_mean, running_var,
                                                        part, S, C, training, bn.momentum, bn.eps);
  FSL_CUDA_CHECK_LAUNCH();
  bn_normalise_kernel<<<grid_for(n), kThreads, 0, st>>>(y, x, mean, invstd, gamma, beta, n, C, HW);
  FSL_CUDA_CHECK_LAUNCH();
}

void batchnorm2d_backward(CudaContext& ctx, float* dx, float* dgamma, float* dbeta, const float* dy,
                          const float* x, const float* gamma, const float* mean,
                          const float* invstd, int N, int C, int HW, bool training) {
  const int64_t M = int64_t(N) * HW, n = M * C;
  const int S = om::reduction_slices(M);
  // scratch: 2 C S partial sums, then 2 C float coefficients (C doubles' room)
  double* part = ctx.reduction_scratch(size_t(2) * C * S + size_t(C));
  auto* coef = reinterpret_cast<float*>(part + size_t(2) * C * S);
  cudaStream_t st = ctx.stream();
  bn_backward_sums_kernel<<<dim3(S, C), kThreads, 0, st>>>(part, dy, x, mean, invstd, N, C, HW);
  FSL_CUDA_CHECK_LAUNCH();
  bn_backward_reduce_kernel<<<channel_grid(C), kThreads, 0, st>>>(dgamma, dbeta, coef, part, S, C,
                                                                  M);
  FSL_CUDA_CHECK_LAUNCH();
  bn_dx_kernel<<<grid_for(n), kThreads, 0, st>>>(dx, dy, x, gamma, mean, invstd, coef, n, C, HW,
                                                 training);
  FSL_CUDA_CHECK_LAUNCH();
}

}  // namespace fsl::cuda
