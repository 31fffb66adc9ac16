// Element-wise ops: activations, dropout, residual add.
#include "fsl/op_math.hpp"
#include "fsl/ops.hpp"

namespace fsl {

template <typename T>
void activation_forward(T* y, const T* x, int64_t n, Activation act) {
  if (act == Activation::leaky_relu)
    for (int64_t i = 0; i < n; ++i) y[i] = om::leaky_relu(x[i]);
  else
    for (int64_t i = 0; i < n; ++i) y[i] = om::relu(x[i]);
}

template <typename T>
void activation_backward(T* dx, const T* dy, const T* y, int64_t n, Activation act) {
  if (act == Activation::leaky_relu)
    for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * om::leaky_relu_grad_from_output(y[i]);
  else
    for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * om::relu_grad_from_output(y[i]);
}

template <typename T>
void dropout_forward(T* y, T* mask, const T* x, int64_t n, float p, uint64_t seed,
                     bool training) {
  if (!training || p <= 0.0f) {
    for (int64_t i = 0; i < n; ++i) {
      mask[i] = T(1);
      y[i] = x[i];
    }
    return;
  }
  const T scale = T(1) / (T(1) - T(p));
  for (int64_t i = 0; i < n; ++i) {
    mask[i] = om::dropout_keep(seed, uint64_t(i), p) ? scale : T(0);
    y[i] = x[i] * mask[i];
  }
}

template <typename T>
void dropout_backward(T* dx, const T* dy, const T* mask, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * mask[i];
}

template <typename T>
void add_forward(T* y, const T* a, const T* b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

#define FSL_INSTANTIATE(T)                                                                   \
  template void activation_forward<T>(T*, const T*, int64_t, Activation);                   \
  template void activation_backward<T>(T*, const T*, const T*, int64_t, Activation);        \
  template void dropout_forward<T>(T*, T*, const T*, int64_t, float, uint64_t, bool);       \
  template void dropout_backward<T>(T*, const T*, const T*, int64_t);                       \
  template void add_forward<T>(T*, const T*, const T*, int64_t);
FSL_INSTANTIATE(float)
FSL_INSTANTIATE(double)
#undef FSL_INSTANTIATE

}  // namespace fsl
