// The encoder's layers on the CPU, each a `xxx_forward` / `xxx_backward` pair over raw pointers,
// shapes in the comment above each. Layout NCHW, row-major. Templated on the scalar: float is
// the real backend (OpenBLAS sgemm), double exists for the finite-difference gradient checks.
//
// Conventions (the CUDA backend follows them too):
// - Parameter gradients (dw, dbias, dgamma, dbeta) ACCUMULATE (+=): zero them once per step.
// - Input gradients dx are OVERWRITTEN, except conv2d_backward with accumulate_dx = true, which
//   adds (the residual block's input feeds two convs).
// - Activations may run in place (y == x, dx == dy).
#pragma once
#include <cstdint>

namespace fsl {

enum class Activation { leaky_relu, relu };

// ---- conv2d, stride 1, square kernel k in {1, 3}, padding k/2 -----------------------------
// x (N, Cin, H, W), w (Cout, Cin, k, k), bias (Cout) or nullptr -> y (N, Cout, H, W).
// col: scratch of conv2d_col_size(Cin, H, W, k) elements (unused when k == 1).
int64_t conv2d_col_size(int Cin, int H, int W, int k);
template <typename T>
void conv2d_forward(T* y, const T* x, const T* w, const T* bias, int N, int Cin, int H, int W,
                    int Cout, int k, T* col);
// dx may be nullptr (the first layer's input needs no gradient).
template <typename T>
void conv2d_backward(T* dx, T* dw, T* dbias, const T* dy, const T* x, const T* w, int N, int Cin,
                     int H, int W, int Cout, int k, T* col, bool accumulate_dx);

// ---- batchnorm2d ----------------------------------------------------------------------------
struct BatchNormParams {
  double momentum = 0.1;
  double eps = 1e-5;
};
// x (N, C, HW) -> y (N, C, HW). gamma, beta (C); running_mean, running_var (C), updated in
// training (momentum, unbiased running var as PyTorch); mean, invstd (C) are written for
// backward: batch statistics (biased var) in training, running statistics in eval.
template <typename T>
void batchnorm2d_forward(T* y, T* mean, T* invstd, const T* x, const T* gamma, const T* beta,
                         T* running_mean, T* running_var, int N, int C, int HW, bool training,
                         const BatchNormParams& bn = {});
template <typename T>
void batchnorm2d_backward(T* dx, T* dgamma, T* dbeta, const T* dy, const T* x, const T* gamma,
                          const T* mean, const T* invstd, int N, int C, int HW, bool training);

// ---- activations: y = act(x), n elements; backward uses the output y -------------------------
template <typename T>
void activation_forward(T* y, const T* x, int64_t n, Activation act);
template <typename T>
void activation_backward(T* dx, const T* dy, const T* y, int64_t n, Activation act);

// ---- maxpool2d(2), floor: x (NC, H, W) -> y (NC, H/2, W/2) --------------------------------
template <typename T>
void maxpool2d_forward(T* y, const T* x, int NC, int H, int W);
template <typename T>
void maxpool2d_backward(T* dx, const T* dy, const T* x, int NC, int H, int W);

// ---- dropout (inverted): mask[i] = 0 or 1/(1-p) from (seed, i); y = x * mask --------------
// p == 0 or !training: mask = 1.
template <typename T>
void dropout_forward(T* y, T* mask, const T* x, int64_t n, float p, uint64_t seed, bool training);
template <typename T>
void dropout_backward(T* dx, const T* dy, const T* mask, int64_t n);

// ---- residual add: y = a + b (backward: both inputs get dy) ---------------------------------
template <typename T>
void add_forward(T* y, const T* a, const T* b, int64_t n);

// ---- adaptive_avgpool2d (PyTorch bins, output may be larger than input) ---------------------
// x (NC, H, W) -> y (NC, Ho, Wo); bin i covers [floor(i*H/Ho), ceil((i+1)*H/Ho)).
template <typename T>
void adaptive_avgpool2d_forward(T* y, const T* x, int NC, int H, int W, int Ho, int Wo);
template <typename T>
void adaptive_avgpool2d_backward(T* dx, const T* dy, int NC, int H, int W, int Ho, int Wo);

// ---- channel attention (v2): y = x * sigmoid(MLP(avgpool(x)) + MLP(maxpool(x))) -------------
// MLP(v) = w2 relu(w1 v), w1 (Cr, C), w2 (C, Cr), no bias (two 1x1 convs). x, y (N, C, HW).
// `saved` holds what backward needs; each array is written by forward.
template <typename T>
struct ChannelAttentionSaved {
  T* avg;       // (N, C) spatial mean
  T* mx;        // (N, C) spatial max
  int32_t* argmax;  // (N, C) index in HW of the max (first one)
  T* h_avg;     // (N, Cr) w1 * avg, before relu
  T* h_max;     // (N, Cr)
  T* att;       // (N, C) sigmoid output
};
template <typename T>
void channel_attention_forward(T* y, const ChannelAttentionSaved<T>& s, const T* x, const T* w1,
                               const T* w2, int N, int C, int Cr, int HW);
template <typename T>
void channel_attention_backward(T* dx, T* dw1, T* dw2, const T* dy, const ChannelAttentionSaved<T>& s,
                                const T* x, const T* w1, const T* w2, int N, int C, int Cr, int HW);

// ---- gemm used by the ops: C (M, N) = alpha * op(A) op(B) + beta * C, row-major ------------
// float -> cblas_sgemm, double -> cblas_dgemm.
template <typename T>
void gemm(bool trans_a, bool trans_b, int M, int N, int K, T alpha, const T* A, int lda,
          const T* B, int ldb, T beta, T* C, int ldc);

}  // namespace fsl
