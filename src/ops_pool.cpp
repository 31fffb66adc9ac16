// Pooling: maxpool2d(2) with floor and PyTorch's adaptive average pooling bins.
#include <algorithm>

#include "fsl/op_math.hpp"
#include "fsl/ops.hpp"

namespace fsl {

// Each 2x2 window's first maximum in row-major order (PyTorch's CPU choice on ties).
template <typename T>
void maxpool2d_forward(T* y, const T* x, int NC, int H, int W) {
  const int Ho = H / 2, Wo = W / 2;
  for (int64_t p = 0; p < NC; ++p) {
    const T* xp = x + p * H * W;
    T* yp = y + p * Ho * Wo;
    for (int i = 0; i < Ho; ++i)
      for (int j = 0; j < Wo; ++j) {
        const T* r0 = xp + (2 * i) * W + 2 * j;
        const T* r1 = r0 + W;
        T m = r0[0];
        if (r0[1] > m) m = r0[1];
        if (r1[0] > m) m = r1[0];
        if (r1[1] > m) m = r1[1];
        yp[i * Wo + j] = m;
      }
  }
}

template <typename T>
void maxpool2d_backward(T* dx, const T* dy, const T* x, int NC, int H, int W) {
  const int Ho = H / 2, Wo = W / 2;
  std::fill(dx, dx + int64_t(NC) * H * W, T(0));  // odd last row/column gets no gradient
  for (int64_t p = 0; p < NC; ++p) {
    const T* xp = x + p * H * W;
    T* dxp = dx + p * H * W;
    const T* dyp = dy + p * Ho * Wo;
    for (int i = 0; i < Ho; ++i)
      for (int j = 0; j < Wo; ++j) {
        const int base = (2 * i) * W + 2 * j;
        const int cand[4] = {base, base + 1, base + W, base + W + 1};
        int best = cand[0];
        for (int q = 1; q < 4; ++q)
          if (xp[cand[q]] > xp[best]) best = cand[q];
        dxp[best] += dyp[i * Wo + j];
      }
  }
}

using om::adaptive_bin_end;
using om::adaptive_bin_start;

template <typename T>
void adaptive_avgpool2d_forward(T* y, const T* x, int NC, int H, int W, int Ho, int Wo) {
  for (int64_t p = 0; p < NC; ++p) {
    const T* xp = x + p * H * W;
    T* yp = y + p * Ho * Wo;
    for (int i = 0; i < Ho; ++i) {
      const int h0 = adaptive_bin_start(i, H, Ho), h1 = adaptive_bin_end(i, H, Ho);
      for (int j = 0; j < Wo; ++j) {
        const int w0 = adaptive_bin_start(j, W, Wo), w1 = adaptive_bin_end(j, W, Wo);
        T s = 0;
        for (int h = h0; h < h1; ++h)
          for (int w = w0; w < w1; ++w) s += xp[h * W + w];
        yp[i * Wo + j] = s / T((h1 - h0) * (w1 - w0));
      }
    }
  }
}

template <typename T>
void adaptive_avgpool2d_backward(T* dx, const T* dy, int NC, int H, int W, int Ho, int Wo) {
  std::fill(dx, dx + int64_t(NC) * H * W, T(0));
  for (int64_t p = 0; p < NC; ++p) {
    T* dxp = dx + p * H * W;
    const T* dyp = dy + p * Ho * Wo;
    for (int i = 0; i < Ho; ++i) {
      const int h0 = adaptive_bin_start(i, H, Ho), h1 = adaptive_bin_end(i, H, Ho);
      for (int j = 0; j < Wo; ++j) {
        const int w0 = adaptive_bin_start(j, W, Wo), w1 = adaptive_bin_end(j, W, Wo);
        const T g = dyp[i * Wo + j] / T((h1 - h0) * (w1 - w0));
        for (int h = h0; h < h1; ++h)
          for (int w = w0; w < w1; ++w) dxp[h * W + w] += g;
      }
    }
  }
}

#define FSL_INSTANTIATE(T)                                                                  \
  template void maxpool2d_forward<T>(T*, const T*, int, int, int);                         \
  template void maxpool2d_backward<T>(T*, const T*, const T*, int, int, int);              \
  template void adaptive_avgpool2d_forward<T>(T*, const T*, int, int, int, int, int);      \
  template void adaptive_avgpool2d_backward<T>(T*, const T*, int, int, int, int, int);
FSL_INSTANTIATE(float)
FSL_INSTANTIATE(double)
#undef FSL_INSTANTIATE

}  // namespace fsl
