// Channel attention of the v2 encoder (CBAM's channel branch):
// att = sigmoid(w2 relu(w1 avg(x)) + w2 relu(w1 max(x))), y = x * att (broadcast over HW).
// The MLP is tiny (C <= 128, Cr = C/16), so plain loops.
#include <vector>

#include "fsl/op_math.hpp"
#include "fsl/ops.hpp"

namespace fsl {

namespace {
// h (Cr) = w1 (Cr, C) v (C); o (C) += w2 (C, Cr) relu(h)
template <typename T>
void mlp_forward(T* h, T* o, const T* v, const T* w1, const T* w2, int C, int Cr) {
  for (int r = 0; r < Cr; ++r) {
    T s = 0;
    for (int c = 0; c < C; ++c) s += w1[r * C + c] * v[c];
    h[r] = s;
  }
  for (int c = 0; c < C; ++c) {
    T s = 0;
    for (int r = 0; r < Cr; ++r) s += w2[c * Cr + r] * om::relu(h[r]);
    o[c] += s;
  }
}
// Given dout (C): dw2 += dout relu(h)^T, dw1 += dh v^T, dv (C) = w1^T dh.
template <typename T>
void mlp_backward(T* dv, T* dw1, T* dw2, const T* dout, const T* h, const T* v, const T* w1,
                  const T* w2, int C, int Cr) {
  for (int c = 0; c < C; ++c)
    for (int r = 0; r < Cr; ++r) dw2[c * Cr + r] += dout[c] * om::relu(h[r]);
  for (int c = 0; c < C; ++c) dv[c] = 0;
  for (int r = 0; r < Cr; ++r) {
    T dh = 0;
    for (int c = 0; c < C; ++c) dh += w2[c * Cr + r] * dout[c];
    dh *= om::relu_grad_from_output(h[r]);
    for (int c = 0; c < C; ++c) {
      dw1[r * C + c] += dh * v[c];
      dv[c] += w1[r * C + c] * dh;
    }
  }
}
}  // namespace

template <typename T>
void channel_attention_forward(T* y, const ChannelAttentionSaved<T>& s, const T* x, const T* w1,
                               const T* w2, int N, int C, int Cr, int HW) {
  for (int n = 0; n < N; ++n) {
    for (int c = 0; c < C; ++c) {
      const T* xc = x + (int64_t(n) * C + c) * HW;
      T sum = 0, mx = xc[0];
      int32_t arg = 0;
      for (int i = 0; i < HW; ++i) {
        sum += xc[i];
        if (xc[i] > mx) mx = xc[i], arg = i;
      }
      s.avg[n * C + c] = sum / T(HW);
      s.mx[n * C + c] = mx;
      s.argmax[n * C + c] = arg;
    }
    T* logit = s.att + n * C;
    for (int c = 0; c < C; ++c) logit[c] = 0;
    mlp_forward(s.h_avg + n * Cr, logit, s.avg + n * C, w1, w2, C, Cr);
    mlp_forward(s.h_max + n * Cr, logit, s.mx + n * C, w1, w2, C, Cr);
    for (int c = 0; c < C; ++c) {
      logit[c] = om::sigmoid(logit[c]);
      const T* xc = x + (int64_t(n) * C + c) * HW;
      T* yc = y + (int64_t(n) * C + c) * HW;
      for (int i = 0; i < HW; ++i) yc[i] = xc[i] * logit[c];
    }
  }
}

// dx = dy * att + (avg branch: dv/HW everywhere) + (max branch: dv at the argmax);
// dlogit = sum_hw(dy x) * att (1 - att).
template <typename T>
void channel_attention_backward(T* dx, T* dw1, T* dw2, const T* dy,
                                const ChannelAttentionSaved<T>& s, const T* x, const T* w1,
                                const T* w2, int N, int C, int Cr, int HW) {
  std::vector<T> dlogit(C), dv_avg(C), dv_max(C);
  for (int n = 0; n < N; ++n) {
    for (int c = 0; c < C; ++c) {
      const int64_t off = (int64_t(n) * C + c) * HW;
      T d = 0;
      for (int i = 0; i < HW; ++i) d += dy[off + i] * x[off + i];
      const T a = s.att[n * C + c];
      dlogit[c] = d * a * (T(1) - a);
    }
    mlp_backward(dv_avg.data(), dw1, dw2, dlogit.data(), s.h_avg + n * Cr, s.avg + n * C, w1, w2,
                 C, Cr);
    mlp_backward(dv_max.data(), dw1, dw2, dlogit.data(), s.h_max + n * Cr, s.mx + n * C, w1, w2,
                 C, Cr);
    for (int c = 0; c < C; ++c) {
      const int64_t off = (int64_t(n) * C + c) * HW;
      const T a = s.att[n * C + c], g_avg = dv_avg[c] / T(HW);
      for (int i = 0; i < HW; ++i) dx[off + i] = dy[off + i] * a + g_avg;
      dx[off + s.argmax[n * C + c]] += dv_max[c];
    }
  }
}

#define FSL_INSTANTIATE(T)                                                                       \
  template void channel_attention_forward<T>(T*, const ChannelAttentionSaved<T>&, const T*,     \
                                             const T*, const T*, int, int, int, int);            \
  template void channel_attention_backward<T>(T*, T*, T*, const T*, const ChannelAttentionSaved<T>&, \
                                              const T*, const T*, const T*, int, int, int, int);
FSL_INSTANTIATE(float)
FSL_INSTANTIATE(double)
#undef FSL_INSTANTIATE

}  // namespace fsl
