// batchnorm2d, one fused kernel per direction: one block per channel reduces its N*HW values in
// double (two passes, as the CPU op), then normalises them. C blocks only (64..128), but every
// value is read from memory two or three times at most and nothing needs a scratch buffer.
#include "fsl/cuda_ops.hpp"
#include "fsl/op_math.hpp"
#include "ops_common.hpp"

namespace fsl::cuda {

namespace {

__device__ inline int64_t bn_index(int64_t m, int c, int C, int HW) {
  const int64_t n = m / HW, i = m % HW;
  return (n * C + c) * HW + i;
}

// grid (C), block (kThreads). x, y (N, C, HW).
__global__ void bn_forward_kernel(float* y, float* mean, float* invstd, const float* x,
                                  const float* gamma, const float* beta, float* running_mean,
                                  float* running_var, int N, int C, int HW, bool training,
                                  double momentum, double eps) {
  __shared__ double shared[kThreads];
  const int c = blockIdx.x;
  const int64_t M = int64_t(N) * HW;
  float mu, inv;
  if (training) {
    double s = 0;
    for (int64_t m = threadIdx.x; m < M; m += kThreads) s += x[bn_index(m, c, C, HW)];
    const double mean_d = block_sum(s, shared) / double(M);
    double ss = 0;
    for (int64_t m = threadIdx.x; m < M; m += kThreads) {
      const double d = x[bn_index(m, c, C, HW)] - mean_d;
      ss += d * d;
    }
    const double sum_sq = block_sum(ss, shared);
    const double var = sum_sq / double(M);
    mu = float(mean_d);
    inv = float(1.0 / sqrt(var + eps));
    if (threadIdx.x == 0) {
      const double unbiased = M > 1 ? sum_sq / double(M - 1) : var;
      running_mean[c] = float((1 - momentum) * running_mean[c] + momentum * mean_d);
      running_var[c] = float((1 - momentum) * running_var[c] + momentum * unbiased);
    }
  } else {
    mu = running_mean[c];
    inv = float(1.0 / sqrt(double(running_var[c]) + eps));
  }
  if (threadIdx.x == 0) mean[c] = mu, invstd[c] = inv;
  const float g = gamma[c], b = beta[c];
  for (int64_t m = threadIdx.x; m < M; m += kThreads) {
    const int64_t i = bn_index(m, c, C, HW);
    y[i] = om::bn_normalise(x[i], mu, inv, g, b);
  }
}

// dx = gamma invstd (dy - mean(dy) - xhat mean(dy xhat)) in training, gamma invstd dy in eval.
__global__ void bn_backward_kernel(float* dx, float* dgamma, float* dbeta, const float* dy,
                                   const float* x, const float* gamma, const float* mean,
                                   const float* invstd, int N, int C, int HW, bool training) {
  __shared__ double shared[kThreads];
  const int c = blockIdx.x;
  const int64_t M = int64_t(N) * HW;
  const float mu = mean[c], inv = invstd[c];
  double s_dy = 0, s_dy_xhat = 0;
  for (int64_t m = threadIdx.x; m < M; m += kThreads) {
    const int64_t i = bn_index(m, c, C, HW);
    s_dy += dy[i];
    s_dy_xhat += double(dy[i]) * double((x[i] - mu) * inv);
  }
  const double sum_dy = block_sum(s_dy, shared);
  const double sum_dy_xhat = block_sum(s_dy_xhat, shared);
  if (threadIdx.x == 0) {
    dbeta[c] += float(sum_dy);
    dgamma[c] += float(sum_dy_xhat);
  }
  const float scale = gamma[c] * inv;
  const float a = float(sum_dy / double(M)), b = float(sum_dy_xhat / double(M));
  for (int64_t m = threadIdx.x; m < M; m += kThreads) {
    const int64_t i = bn_index(m, c, C, HW);
    if (training) {
      const float xhat = (x[i] - mu) * inv;
      dx[i] = scale * (dy[i] - a - xhat * b);
    } else {
      dx[i] = scale * dy[i];
    }
  }
}

}  // namespace

void batchnorm2d_forward(CudaContext& ctx, float* y, float* mean, float* invstd, const float* x,
                         const float* gamma, const float* beta, float* running_mean,
                         float* running_var, int N, int C, int HW, bool training,
                         const BatchNormParams& bn) {
  bn_forward_kernel<<<C, kThreads, 0, ctx.stream()>>>(y, mean, invstd, x, gamma, beta, running_mean,
                                                      running_var, N, C, HW, training, bn.momentum,
                                                      bn.eps);
  FSL_CUDA_CHECK_LAUNCH();
}

void batchnorm2d_backward(CudaContext& ctx, float* dx, float* dgamma, float* dbeta, const float* dy,
                          const float* x, const float* gamma, const float* mean,
                          const float* invstd, int N, int C, int HW, bool training) {
  bn_backward_kernel<<<C, kThreads, 0, ctx.stream()>>>(dx, dgamma, dbeta, dy, x, gamma, mean,
                                                       invstd, N, C, HW, training);
  FSL_CUDA_CHECK_LAUNCH();
}

}  // namespace fsl::cuda
