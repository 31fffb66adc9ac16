// batchnorm2d as PyTorch's nn.BatchNorm2d: training normalises with the batch's biased variance
// and updates running statistics with the unbiased one; eval uses the running statistics.
#include <cmath>

#include "fsl/op_math.hpp"
#include "fsl/ops.hpp"

namespace fsl {

// x, y (N, C, HW); per channel c the M = N*HW values x[n][c][:].
template <typename T>
void batchnorm2d_forward(T* y, T* mean, T* invstd, const T* x, const T* gamma, const T* beta,
                         T* running_mean, T* running_var, int N, int C, int HW, bool training,
                         const BatchNormParams& bn) {
  const int64_t M = int64_t(N) * HW;
  for (int c = 0; c < C; ++c) {
    T mu, inv;
    if (training) {
      double sum = 0;  // double accumulators: M is up to ~450k values per channel
      for (int n = 0; n < N; ++n) {
        const T* xc = x + (int64_t(n) * C + c) * HW;
        for (int i = 0; i < HW; ++i) sum += xc[i];
      }
      const double m = sum / double(M);
      double ss = 0;
      for (int n = 0; n < N; ++n) {
        const T* xc = x + (int64_t(n) * C + c) * HW;
        for (int i = 0; i < HW; ++i) {
          const double d = xc[i] - m;
          ss += d * d;
        }
      }
      const double var = ss / double(M);
      mu = T(m);
      inv = T(1.0 / std::sqrt(var + bn.eps));
      const double unbiased = M > 1 ? ss / double(M - 1) : var;
      running_mean[c] = T((1 - bn.momentum) * running_mean[c] + bn.momentum * m);
      running_var[c] = T((1 - bn.momentum) * running_var[c] + bn.momentum * unbiased);
    } else {
      mu = running_mean[c];
      inv = T(1.0 / std::sqrt(double(running_var[c]) + bn.eps));
    }
    mean[c] = mu;
    invstd[c] = inv;
    for (int n = 0; n < N; ++n) {
      const T* xc = x + (int64_t(n) * C + c) * HW;
      T* yc = y + (int64_t(n) * C + c) * HW;
      for (int i = 0; i < HW; ++i) yc[i] = om::bn_normalise(xc[i], mu, inv, gamma[c], beta[c]);
    }
  }
}

// xhat = (x - mean) * invstd. Training: the batch statistics depend on x, so
// dx = gamma * invstd / M * (M dy - sum(dy) - xhat * sum(dy xhat)); eval: dx = gamma invstd dy.
template <typename T>
void batchnorm2d_backward(T* dx, T* dgamma, T* dbeta, const T* dy, const T* x, const T* gamma,
                          const T* mean, const T* invstd, int N, int C, int HW, bool training) {
  const int64_t M = int64_t(N) * HW;
  for (int c = 0; c < C; ++c) {
    const T mu = mean[c], inv = invstd[c];
    double sum_dy = 0, sum_dy_xhat = 0;
    for (int n = 0; n < N; ++n) {
      const int64_t off = (int64_t(n) * C + c) * HW;
      for (int i = 0; i < HW; ++i) {
        sum_dy += dy[off + i];
        sum_dy_xhat += double(dy[off + i]) * double((x[off + i] - mu) * inv);
      }
    }
    dbeta[c] += T(sum_dy);
    dgamma[c] += T(sum_dy_xhat);
    const T scale = gamma[c] * inv;
    const T a = T(sum_dy / double(M)), b = T(sum_dy_xhat / double(M));
    for (int n = 0; n < N; ++n) {
      const int64_t off = (int64_t(n) * C + c) * HW;
      for (int i = 0; i < HW; ++i) {
        if (training) {
          const T xhat = (x[off + i] - mu) * inv;
          dx[off + i] = scale * (dy[off + i] - a - xhat * b);
        } else {
          dx[off + i] = scale * dy[off + i];
        }
      }
    }
  }
}

#define FSL_INSTANTIATE(T)                                                                       \
  template void batchnorm2d_forward<T>(T*, T*, T*, const T*, const T*, const T*, T*, T*, int,   \
                                       int, int, bool, const BatchNormParams&);                  \
  template void batchnorm2d_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*,     \
                                        const T*, int, int, int, bool);
FSL_INSTANTIATE(float)
FSL_INSTANTIATE(double)
#undef FSL_INSTANTIATE

}  // namespace fsl
