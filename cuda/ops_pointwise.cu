// Element-wise ops (activations, dropout, residual add) and pooling (maxpool2d(2), adaptive
// average pooling with PyTorch's bins): one thread per output element, no atomics, no scratch.
#include "fsl/cuda_ops.hpp"
#include "fsl/op_math.hpp"
#include "ops_common.hpp"

namespace fsl::cuda {

namespace {

__global__ void activation_forward_kernel(float* y, const float* x, int64_t n, bool leaky) {
  FSL_KERNEL_LOOP(i, n) y[i] = leaky ? om::leaky_relu(x[i]) : om::relu(x[i]);
}
__global__ void activation_backward_kernel(float* dx, const float* dy, const float* y, int64_t n,
                                           bool leaky) {
  FSL_KERNEL_LOOP(i, n) {
    dx[i] =
        dy[i] * (leaky ? om::leaky_relu_grad_from_output(y[i]) : om::relu_grad_from_output(y[i]));
  }
}
__global__ void dropout_forward_kernel(float* y, float* mask, const float* x, int64_t n, float p,
                                       uint64_t seed, bool active) {
  const float scale = 1.0f / (1.0f - p);  // the CPU's T(1) / (T(1) - T(p)) in float
  FSL_KERNEL_LOOP(i, n) {
    const float m = !active ? 1.0f : (om::dropout_keep(seed, uint64_t(i), p) ? scale : 0.0f);
    mask[i] = m;
    y[i] = x[i] * m;
  }
}
__global__ void multiply_kernel(float* y, const float* a, const float* b, int64_t n) {
  FSL_KERNEL_LOOP(i, n) y[i] = a[i] * b[i];
}
__global__ void add_kernel(float* y, const float* a, const float* b, int64_t n) {
  FSL_KERNEL_LOOP(i, n) y[i] = a[i] + b[i];
}

// The first maximum of the 2x2 window in row-major order (the CPU op's tie rule). Returns the
// offset in the (H, W) plane.
__device__ inline int window_argmax(const float* xp, int i, int j, int W) {
  const int base = (2 * i) * W + 2 * j;
  const int cand[4] = {base, base + 1, base + W, base + W + 1};
  int best = cand[0];
  for (int q = 1; q < 4; ++q)
    if (xp[cand[q]] > xp[best]) best = cand[q];
  return best;
}
__global__ void maxpool_forward_kernel(float* y, const float* x, int64_t NC, int H, int W) {
  const int Ho = H / 2, Wo = W / 2;
  FSL_KERNEL_LOOP(o, NC * Ho * Wo) {
    const int64_t p = o / (Ho * Wo);
    const int i = int(o % (Ho * Wo)) / Wo, j = int(o % Wo);
    const float* xp = x + p * H * W;
    y[o] = xp[window_argmax(xp, i, j, W)];
  }
}
// One thread per INPUT element: it receives dy when it is its window's argmax, else 0 (the odd
// last row/column belongs to no window).
__global__ void maxpool_backward_kernel(float* dx, const float* dy, const float* x, int64_t NC,
                                        int H, int W) {
  const int Ho = H / 2, Wo = W / 2;
  FSL_KERNEL_LOOP(e, NC * H * W) {
    const int64_t p = e / (H * W);
    const int h = int(e % (H * W)) / W, w = int(e % W);
    float g = 0.0f;
    if (h / 2 < Ho && w / 2 < Wo) {
      const float* xp = x + p * H * W;
      if (window_argmax(xp, h / 2, w / 2, W) == h * W + w)
        g = dy[p * Ho * Wo + (h / 2) * Wo + w / 2];
    }
    dx[e] = g;
  }
}

__global__ void adaptive_avgpool_forward_kernel(float* y, const float* x, int64_t NC, int H, int W,
                                                int Ho, int Wo) {
  FSL_KERNEL_LOOP(o, NC * Ho * Wo) {
    const int64_t p = o / (Ho * Wo);
    const int i = int(o % (Ho * Wo)) / Wo, j = int(o % Wo);
    const int h0 = om::adaptive_bin_start(i, H, Ho), h1 = om::adaptive_bin_end(i, H, Ho);
    const int w0 = om::adaptive_bin_start(j, W, Wo), w1 = om::adaptive_bin_end(j, W, Wo);
    const float* xp = x + p * H * W;
    float s = 0;
    for (int h = h0; h < h1; ++h)
      for (int w = w0; w < w1; ++w) s += xp[h * W + w];
    y[o] = s / float((h1 - h0) * (w1 - w0));
  }
}
// One thread per input element: the sum over every bin that covers it (bins overlap when the
// output is larger than the input, e.g. time 2 -> 4).
__global__ void adaptive_avgpool_backward_kernel(float* dx, const float* dy, int64_t NC, int H,
                                                 int W, int Ho, int Wo) {
  FSL_KERNEL_LOOP(e, NC * H * W) {
    const int64_t p = e / (H * W);
    const int h = int(e % (H * W)) / W, w = int(e % W);
    const float* dyp = dy + p * Ho * Wo;
    float g = 0;
    for (int i = 0; i < Ho; ++i) {
      const int h0 = om::adaptive_bin_start(i, H, Ho), h1 = om::adaptive_bin_end(i, H, Ho);
      if (h < h0 || h >= h1) continue;
      for (int j = 0; j < Wo; ++j) {
        const int w0 = om::adaptive_bin_start(j, W, Wo), w1 = om::adaptive_bin_end(j, W, Wo);
        if (w >= w0 && w < w1) g += dyp[i * Wo + j] / float((h1 - h0) * (w1 - w0));
      }
    }
    dx[e] = g;
  }
}

}  // namespace

#define FSL_LAUNCH(kernel, n, ...)                                   \
  do {                                                               \
    kernel<<<grid_for(n), kThreads, 0, ctx.stream()>>>(__VA_ARGS__); \
    FSL_CUDA_CHECK_LAUNCH();                                         \
  } while (0)

void activation_forward(CudaContext& ctx, float* y, const float* x, int64_t n, Activation act) {
  FSL_LAUNCH(activation_forward_kernel, n, y, x, n, act == Activation::leaky_relu);
}
void activation_backward(CudaContext& ctx, float* dx, const float* dy, const float* y, int64_t n,
                         Activation act) {
  FSL_LAUNCH(activation_backward_kernel, n, dx, dy, y, n, act == Activation::leaky_relu);
}
void dropout_forward(CudaContext& ctx, float* y, float* mask, const float* x, int64_t n, float p,
                     uint64_t seed, bool training) {
  FSL_LAUNCH(dropout_forward_kernel, n, y, mask, x, n, p, seed, training && p > 0.0f);
}
void dropout_backward(CudaContext& ctx, float* dx, const float* dy, const float* mask, int64_t n) {
  FSL_LAUNCH(multiply_kernel, n, dx, dy, mask, n);
}
void add_forward(CudaContext& ctx, float* y, const float* a, const float* b, int64_t n) {
  FSL_LAUNCH(add_kernel, n, y, a, b, n);
}
void maxpool2d_forward(CudaContext& ctx, float* y, const float* x, int NC, int H, int W) {
  FSL_LAUNCH(maxpool_forward_kernel, int64_t(NC) * (H / 2) * (W / 2), y, x, NC, H, W);
}
void maxpool2d_backward(CudaContext& ctx, float* dx, const float* dy, const float* x, int NC, int H,
                        int W) {
  FSL_LAUNCH(maxpool_backward_kernel, int64_t(NC) * H * W, dx, dy, x, NC, H, W);
}
void adaptive_avgpool2d_forward(CudaContext& ctx, float* y, const float* x, int NC, int H, int W,
                                int Ho, int Wo) {
  FSL_LAUNCH(adaptive_avgpool_forward_kernel, int64_t(NC) * Ho * Wo, y, x, NC, H, W, Ho, Wo);
}
void adaptive_avgpool2d_backward(CudaContext& ctx, float* dx, const float* dy, int NC, int H, int W,
                                 int Ho, int Wo) {
  FSL_LAUNCH(adaptive_avgpool_backward_kernel, int64_t(NC) * H * W, dx, dy, NC, H, W, Ho, Wo);
}

}  // namespace fsl::cuda
