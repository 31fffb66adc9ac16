// Per-element math of the encoder's ops, shared by the CPU reference (src/ops_*.cpp) and the CUDA
// backend: activations and their derivatives, sigmoid, the dropout keep decision, BN normalise,
// one Adam element. Templated on the scalar so the double-precision gradient checks use the
// very same formulas.
#pragma once
#include <cmath>
#include <cstdint>

#ifndef FSL_HD
#ifdef __CUDACC__
#define FSL_HD __host__ __device__
#else
#define FSL_HD
#endif
#endif

namespace fsl::om {

constexpr double kLeakySlope = 0.1;  // nn.LeakyReLU(0.1) of the baseline

template <typename T>
FSL_HD inline T leaky_relu(T x) {
  return x > T(0) ? x : T(kLeakySlope) * x;
}
// Derivative from the OUTPUT: the slope is positive, so y > 0 exactly when x > 0 (PyTorch uses
// x > 0 ? 1 : slope, which gives the same value at x == 0).
template <typename T>
FSL_HD inline T leaky_relu_grad_from_output(T y) {
  return y > T(0) ? T(1) : T(kLeakySlope);
}
template <typename T>
FSL_HD inline T relu(T x) {
  return x > T(0) ? x : T(0);
}
template <typename T>
FSL_HD inline T relu_grad_from_output(T y) {
  return y > T(0) ? T(1) : T(0);
}

template <typename T>
FSL_HD inline T sigmoid(T x) {
  return T(1) / (T(1) + exp(-x));
}

// BN: (x - mean) * invstd * gamma + beta, invstd = 1 / sqrt(var + eps).
template <typename T>
FSL_HD inline T bn_normalise(T x, T mean, T invstd, T gamma, T beta) {
  return (x - mean) * invstd * gamma + beta;
}

// Moments of a set of values: count, mean and the sum of squared deviations from the mean (M2).
// The CUDA batch norm reduces each slice of a channel to Moments (two passes over the slice, as
// the CPU op does over the whole channel), then merges the slices in a fixed order with Chan et
// al.'s pairwise formula: the result equals the two-pass statistics up to rounding, whatever the
// split (tests/test_op_math.cpp).
struct Moments {
  double n = 0, mean = 0, m2 = 0;
};
FSL_HD inline Moments merge_moments(const Moments& a, const Moments& b) {
  if (a.n == 0) return b;
  if (b.n == 0) return a;
  const double n = a.n + b.n, delta = b.mean - a.mean;
  return {n, a.mean + delta * (b.n / n), a.m2 + b.m2 + delta * delta * (a.n * b.n / n)};
}

// A training segment of `seg` rows cut from an event of `len` rows (from its crop start): the
// event row that fills segment row t, or -1 for a zero row. Long events are cropped (row t),
// short ones tiled (t mod len) or, with `pad`, zero-padded past their end. Every backend's
// gather uses this rule.
FSL_HD inline int segment_row(int t, int len, int seg, bool pad) {
  if (len >= seg) return t;
  if (pad) return t < len ? t : -1;
  return t % len;
}

// Adaptive average pooling's bins (PyTorch): output i of `out` covers input [start, end) of `in`.
FSL_HD inline int adaptive_bin_start(int i, int in, int out) {
  return int((int64_t(i) * in) / out);
}
FSL_HD inline int adaptive_bin_end(int i, int in, int out) {
  return int((int64_t(i + 1) * in + out - 1) / out);  // ceil
}

// How the CUDA batch norm splits a channel's M = N * HW values: S slices (one block each, so
// C * S blocks fill the device), slice s = [M s / S, M (s + 1) / S). At least ~2048 values per
// slice, at most kMaxSlices slices.
constexpr int kMaxSlices = 32;
FSL_HD inline int reduction_slices(int64_t M) {
  const int64_t s = M / 2048;
  return int(s < 1 ? 1 : (s > kMaxSlices ? kMaxSlices : s));
}
FSL_HD inline int64_t slice_begin(int64_t M, int S, int s) { return M * s / S; }

// splitmix64's finaliser: every seed mixer of fsl (dropout masks, training streams, synthesis
// items) is this over some combination of its words.
FSL_HD inline uint64_t splitmix_finalise(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
// Dropout keep decision for element `index` of a draw seeded with `seed`: a counter-based hash,
// so any backend, any thread order, gives the same mask.
FSL_HD inline uint64_t mix64(uint64_t z) { return splitmix_finalise(z + 0x9E3779B97F4A7C15ull); }
FSL_HD inline bool dropout_keep(uint64_t seed, uint64_t index, float p) {
  uint64_t h = mix64(seed ^ mix64(index));
  float u = float(h >> 40) * (1.0f / 16777216.0f);  // 24 random bits -> [0, 1)
  return u >= p;
}

// One Adam element, PyTorch semantics (torch.optim.Adam, no weight decay, no amsgrad):
// m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= lr * (m / bc1) / (sqrt(v / bc2) + eps),
// with bc1 = 1 - b1^t, bc2 = 1 - b2^t (eps added outside the square root).
FSL_HD inline void adam_update(float& p, float g, float& m, float& v, float lr, float beta1,
                               float beta2, float eps, float bc1, float bc2) {
  m = beta1 * m + (1.0f - beta1) * g;
  v = beta2 * v + (1.0f - beta2) * g * g;
  float denom = sqrtf(v) / sqrtf(bc2) + eps;
  p -= lr / bc1 * m / denom;
}

// One query of the prototypical loss from its squared distances d (L) to the prototypes and its
// own label y: returns d_y - dmin + log sum_j exp(dmin - d_j) (-log softmax, shifted by the
// nearest distance so that no exp overflows); *correct = (the first nearest is y); when grad is
// given, grad[j] = d loss / d d_j of the mean over Q queries = (1[j == y] - softmax_j) / Q.
FSL_HD inline double proto_query(const double* d, int L, int y, int Q, double* grad,
                                 bool* correct) {
  int arg = 0;
  for (int j = 1; j < L; ++j)
    if (d[j] < d[arg]) arg = j;
  const double dmin = d[arg];
  double z = 0;
  for (int j = 0; j < L; ++j) z += exp(dmin - d[j]);
  *correct = arg == y;
  if (grad)
    for (int j = 0; j < L; ++j) grad[j] = ((j == y ? 1.0 : 0.0) - exp(dmin - d[j]) / z) / Q;
  return d[y] - dmin + log(z);
}

}  // namespace fsl::om
