// conv2d (stride 1, k in {1, 3}, padding k/2) via im2col + gemm, one sample at a time: the
// per-sample gemm (Cout x Cin*k*k) * (Cin*k*k x H*W) is large enough for OpenBLAS to run well and
// keeps the column buffer small (Cin*9*H*W).
#include <cblas.h>

#include <algorithm>
#include <cstring>

#include "fsl/ops.hpp"

namespace fsl {

template <>
void gemm<float>(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
                 const float* B, int ldb, float beta, float* C, int ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N,
              K, alpha, A, lda, B, ldb, beta, C, ldc);
}
template <>
void gemm<double>(bool ta, bool tb, int M, int N, int K, double alpha, const double* A, int lda,
                  const double* B, int ldb, double beta, double* C, int ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N,
              K, alpha, A, lda, B, ldb, beta, C, ldc);
}

int64_t conv2d_col_size(int Cin, int H, int W, int k) { return int64_t(Cin) * k * k * H * W; }

namespace {

// Valid output columns [w0, w1) for kernel column offset dj (input column = w + dj).
inline void valid_range(int W, int dj, int& w0, int& w1) {
  w0 = std::max(0, -dj);
  w1 = std::min(W, W - dj);
}

// x (Cin, H, W) -> col (Cin*k*k, H*W); row (c, ki, kj) holds x[c][h+ki-p][w+kj-p], 0 outside.
template <typename T>
void im2col(T* col, const T* x, int Cin, int H, int W, int k) {
  const int pad = k / 2;
  for (int c = 0; c < Cin; ++c)
    for (int ki = 0; ki < k; ++ki)
      for (int kj = 0; kj < k; ++kj) {
        T* row = col + ((int64_t(c) * k + ki) * k + kj) * H * W;
        const int di = ki - pad, dj = kj - pad;
        int w0, w1;
        valid_range(W, dj, w0, w1);
        for (int h = 0; h < H; ++h) {
          T* out = row + int64_t(h) * W;
          const int hi = h + di;
          if (hi < 0 || hi >= H) {
            std::fill(out, out + W, T(0));
            continue;
          }
          const T* in = x + (int64_t(c) * H + hi) * W;
          std::fill(out, out + w0, T(0));
          std::memcpy(out + w0, in + w0 + dj, sizeof(T) * std::max(0, w1 - w0));
          std::fill(out + std::max(w0, w1), out + W, T(0));
        }
      }
}

// The adjoint of im2col: dx (Cin, H, W) += scatter of dcol (Cin*k*k, H*W).
template <typename T>
void col2im_add(T* dx, const T* dcol, int Cin, int H, int W, int k) {
  const int pad = k / 2;
  for (int c = 0; c < Cin; ++c)
    for (int ki = 0; ki < k; ++ki)
      for (int kj = 0; kj < k; ++kj) {
        const T* row = dcol + ((int64_t(c) * k + ki) * k + kj) * H * W;
        const int di = ki - pad, dj = kj - pad;
        int w0, w1;
        valid_range(W, dj, w0, w1);
        for (int h = 0; h < H; ++h) {
          const int hi = h + di;
          if (hi < 0 || hi >= H) continue;
          const T* g = row + int64_t(h) * W;
          T* out = dx + (int64_t(c) * H + hi) * W + dj;
          for (int w = w0; w < w1; ++w) out[w] += g[w];
        }
      }
}

}  // namespace

// y_n (Cout, HW) = w (Cout, Cin*k*k) * col_n (Cin*k*k, HW) [+ bias]
template <typename T>
void conv2d_forward(T* y, const T* x, const T* w, const T* bias, int N, int Cin, int H, int W,
                    int Cout, int k, T* col) {
  const int HW = H * W, K = Cin * k * k;
  for (int n = 0; n < N; ++n) {
    const T* xn = x + int64_t(n) * Cin * HW;
    T* yn = y + int64_t(n) * Cout * HW;
    const T* B = xn;
    if (k != 1) {
      im2col(col, xn, Cin, H, W, k);
      B = col;
    }
    gemm<T>(false, false, Cout, HW, K, T(1), w, K, B, HW, T(0), yn, HW);
    if (bias)
      for (int o = 0; o < Cout; ++o)
        for (int i = 0; i < HW; ++i) yn[int64_t(o) * HW + i] += bias[o];
  }
}

// dw += dy_n * col_n^T; dbias += sum dy_n; dx_n (+)= col2im(w^T * dy_n)
template <typename T>
void conv2d_backward(T* dx, T* dw, T* dbias, const T* dy, const T* x, const T* w, int N, int Cin,
                     int H, int W, int Cout, int k, T* col, bool accumulate_dx) {
  const int HW = H * W, K = Cin * k * k;
  for (int n = 0; n < N; ++n) {
    const T* xn = x + int64_t(n) * Cin * HW;
    const T* dyn = dy + int64_t(n) * Cout * HW;
    const T* B = xn;
    if (k != 1) {
      im2col(col, xn, Cin, H, W, k);
      B = col;
    }
    gemm<T>(false, true, Cout, K, HW, T(1), dyn, HW, B, HW, T(1), dw, K);
    if (dbias)
      for (int o = 0; o < Cout; ++o) {
        T s = 0;
        for (int i = 0; i < HW; ++i) s += dyn[int64_t(o) * HW + i];
        dbias[o] += s;
      }
    if (!dx) continue;
    T* dxn = dx + int64_t(n) * Cin * HW;
    if (k == 1) {
      gemm<T>(true, false, Cin, HW, Cout, T(1), w, Cin, dyn, HW, accumulate_dx ? T(1) : T(0), dxn,
              HW);
    } else {
      gemm<T>(true, false, K, HW, Cout, T(1), w, K, dyn, HW, T(0), col, HW);  // col := dcol
      if (!accumulate_dx) std::fill(dxn, dxn + int64_t(Cin) * HW, T(0));
      col2im_add(dxn, col, Cin, H, W, k);
    }
  }
}

#define FSL_INSTANTIATE(T)                                                                    \
  template void conv2d_forward<T>(T*, const T*, const T*, const T*, int, int, int, int, int, \
                                  int, T*);                                                   \
  template void conv2d_backward<T>(T*, T*, T*, const T*, const T*, const T*, int, int, int,   \
                                   int, int, int, T*, bool);
FSL_INSTANTIATE(float)
FSL_INSTANTIATE(double)
#undef FSL_INSTANTIATE

}  // namespace fsl
