// The float STFT's FFT, 8 frames at a time, one frame per vector lane (contracts in
// frontend_kernels.hpp). With frames in lanes every butterfly is the same element-wise
// arithmetic on 8-float vectors: no shuffles inside the transform (FFTW's SIMD codelets
// vectorise along the transform and shuffle for every complex product; its plans for
// 8 transforms interleaved by frame loop over the frames instead, frame by frame).
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#include "frontend_kernels.hpp"

namespace fsl::fe_kernels {

// The helpers below pass 8-float vectors by value; they are always inlined, so the ABI note
// GCC gives for the SSE2 clone (a 32-byte vector argument without AVX) never applies.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace {

struct Complex8 {  // 8 lanes of complex numbers (one per frame)
  Float8 re, im;
};

// Clang 14 refuses a 32-byte vector passed or returned by value in the SSE2 clone, even always
// inlined ("changes the ABI"), so a load is a statement expression and a store takes a reference.
#define FSL_LOAD8(p) (__extension__({ Float8 v_; std::memcpy(&v_, (p), sizeof(v_)); v_; }))
[[gnu::always_inline]] inline void store8(float* p, const Float8& v) {
  std::memcpy(p, &v, sizeof(v));
}
// A point of the (h, 2, 8) lane layout: 8 real parts, then 8 imaginary parts.
[[gnu::always_inline]] inline Complex8 load_point(const float* lanes, int p) {
  return {FSL_LOAD8(lanes + 16 * size_t(p)), FSL_LOAD8(lanes + 16 * size_t(p) + 8)};
}
[[gnu::always_inline]] inline void store_point(float* lanes, int p, Complex8 c) {
  store8(lanes + 16 * size_t(p), c.re);
  store8(lanes + 16 * size_t(p) + 8, c.im);
}

// Input point p of the 8 lanes' frames at ring rows [start, start + n): samples 2p and 2p + 1
// (real and imaginary part), times the window. mask = ring_rows - 1.
[[gnu::always_inline]] inline Complex8 ring_point(const float* ring, long long mask,
                                                  long long start, const float* window, int p) {
  const long long i = start + 2 * p;
  return {FSL_LOAD8(ring + (i & mask) * 8) * window[2 * p],
          FSL_LOAD8(ring + ((i + 1) & mask) * 8) * window[2 * p + 1]};
}

[[gnu::always_inline]] inline Complex8 operator+(Complex8 a, Complex8 b) {
  return {a.re + b.re, a.im + b.im};
}
[[gnu::always_inline]] inline Complex8 operator-(Complex8 a, Complex8 b) {
  return {a.re - b.re, a.im - b.im};
}
// a * (wr + i wi), the same twiddle for every lane.
[[gnu::always_inline]] inline Complex8 times(Complex8 a, float wr, float wi) {
  return {a.re * wr - a.im * wi, a.re * wi + a.im * wr};
}
[[gnu::always_inline]] inline Complex8 times_minus_i(Complex8 a) { return {a.im, -a.re}; }

constexpr float kSqrtHalf = 0.70710678118654752440f;
// a * exp(-i pi / 4) = a (1 - i) / sqrt(2)
[[gnu::always_inline]] inline Complex8 times_w8(Complex8 a) {
  return {(a.re + a.im) * kSqrtHalf, (a.im - a.re) * kSqrtHalf};
}
// a * exp(-3 i pi / 4) = a (-1 - i) / sqrt(2)
[[gnu::always_inline]] inline Complex8 times_w8_cubed(Complex8 a) {
  return {(a.im - a.re) * kSqrtHalf, (a.re + a.im) * -kSqrtHalf};
}

// In-place forward DFTs of 2, 4 and 8 points: y[r] = sum_q a[q] exp(-2 pi i q r / n).
[[gnu::always_inline]] inline void dft2(Complex8* a) {
  const Complex8 s = a[0] + a[1], d = a[0] - a[1];
  a[0] = s;
  a[1] = d;
}
[[gnu::always_inline]] inline void dft4(Complex8& a0, Complex8& a1, Complex8& a2, Complex8& a3) {
  const Complex8 s02 = a0 + a2, d02 = a0 - a2, s13 = a1 + a3, d13 = times_minus_i(a1 - a3);
  a0 = s02 + s13;
  a1 = d02 + d13;
  a2 = s02 - s13;
  a3 = d02 - d13;
}
// One radix-8 butterfly: the 8 points load(q), q < 8 (twiddled, if at all, by load), to their
// 8-point DFT y[r] = sum_q a[q] exp(-2 pi i q r / 8), stored in lanes at base + r m. Even
// outputs are the 4-point DFT of b[q] = a[q] + a[q+4], odd outputs that of w8^q c[q],
// c[q] = a[q] - a[q+4], w8 = exp(-2 pi i / 8). Written in the order that keeps the fewest
// vectors live (16 registers hold only 8 complex vectors): the q = 0, 2 half first, reduced to
// 4 complex values, then the q = 1, 3 half, then the outputs.
template <typename Load>
[[gnu::always_inline]] inline void radix8_from(Load&& load, float* lanes, int base, int m) {
  auto store = [&](int r, Complex8 y) { store_point(lanes, base + r * m, y); };
  Complex8 even_s, even_d, odd_s, odd_d;  // from q = 0, 2: b0 +- b2, c0 +- (-i c2)
  {
    const Complex8 a0 = load(0), a4 = load(4);
    const Complex8 b0 = a0 + a4, c0 = a0 - a4;
    const Complex8 a2 = load(2), a6 = load(6);
    const Complex8 b2 = a2 + a6, c2 = times_minus_i(a2 - a6);
    even_s = b0 + b2;
    even_d = b0 - b2;
    odd_s = c0 + c2;
    odd_d = c0 - c2;
  }
  Complex8 c1, c3;
  {
    const Complex8 a1 = load(1), a5 = load(5);
    const Complex8 b1 = a1 + a5;
    c1 = times_w8(a1 - a5);
    const Complex8 a3 = load(3), a7 = load(7);
    const Complex8 b3 = a3 + a7;
    c3 = times_w8_cubed(a3 - a7);
    const Complex8 s13 = b1 + b3, d13 = times_minus_i(b1 - b3);
    store(0, even_s + s13);
    store(4, even_s - s13);
    store(2, even_d + d13);
    store(6, even_d - d13);
  }
  const Complex8 s13 = c1 + c3, d13 = times_minus_i(c1 - c3);
  store(1, odd_s + s13);
  store(5, odd_s - s13);
  store(3, odd_d + d13);
  store(7, odd_d - d13);
}

// radix8_from in place on points of lanes: the points at base + q m, q < 8, times the
// twiddles w[q - 1] (q >= 1; none where Twiddled is false).
template <bool Twiddled>
[[gnu::always_inline]] inline void radix8(float* lanes, int base, int m, const float* wr,
                                          const float* wi) {
  radix8_from(
      [&](int q) {
        const Complex8 a = load_point(lanes, base + q * m);
        if (!Twiddled || q == 0) return a;
        return times(a, wr[q - 1], wi[q - 1]);
      },
      lanes, base, m);
}

// Radix-8 pass s of plan (combining sub-DFTs of length m), over all of lanes.
[[gnu::always_inline]] inline void radix8_pass(const LaneFftPlan& plan, size_t s, int m,
                                               float* lanes) {
  const float* tw_re = plan.twiddle_re.data() + plan.pass_twiddle_offset[s];
  const float* tw_im = plan.twiddle_im.data() + plan.pass_twiddle_offset[s];
  for (int g = 0; g < plan.h; g += 8 * m)
    for (int j = 0; j < m; ++j) {
      if (m == 1)
        radix8<false>(lanes, g + j, m, nullptr, nullptr);
      else
        radix8<true>(lanes, g + j, m, tw_re + 7 * j, tw_im + 7 * j);
    }
}

}  // namespace

LaneFftPlan::LaneFftPlan(int h_) : h(h_) {
  if (!supports(h)) return;
  // Radix-8 passes, after a first pass of radix 2 or 4 where h is not a power of 8.
  const int log2_h = std::countr_zero(unsigned(h));
  if (log2_h % 3) radices.push_back(1 << (log2_h % 3));
  for (int i = 0; i < log2_h / 3; ++i) radices.push_back(8);
  // Decimation in time: the last pass combines r sub-DFTs of length h / r over x[q + r n],
  // each stored contiguously, recursively: position[n] is n with its mixed-radix digits
  // reversed.
  position.assign(h, 0);
  auto place = [&](auto&& self, int pos_base, int n_base, int stride, int passes) -> void {
    if (passes == 0) {
      position[n_base] = pos_base;
      return;
    }
    const int r = radices[passes - 1];
    int len = 1;
    for (int s = 0; s < passes - 1; ++s) len *= radices[s];
    for (int q = 0; q < r; ++q)
      self(self, pos_base + q * len, n_base + q * stride, stride * r, passes - 1);
  };
  place(place, 0, 0, 1, int(radices.size()));
  input.assign(h, 0);
  for (int n = 0; n < h; ++n) input[position[n]] = n;
  // Pass s (radix 8, combining sub-DFTs of length m into length 8m): twiddles
  // exp(-2 pi i r j / (8m)), r = 1..7, j < m, in double rounded to float.
  int m = 1;
  for (int r : radices) {
    pass_twiddle_offset.push_back(int(twiddle_re.size()));
    if (r == 8 && m > 1)
      for (int j = 0; j < m; ++j)
        for (int q = 1; q < 8; ++q) {
          const double a = -2.0 * 3.14159265358979323846 * q * j / (8.0 * m);
          twiddle_re.push_back(float(std::cos(a)));
          twiddle_im.push_back(float(std::sin(a)));
        }
    m *= r;
  }
}

bool LaneFftPlan::supports(int h) { return h >= 8 && (h & (h - 1)) == 0; }

constexpr long long kAhead = 1024;  // samples: 4 KiB, 4 groups at hop 256

FSL_HOT_LOOP void fill_ring_rows(const float* __restrict x, long long len, long long pad,
                                 bool reflect, long long lane_offset, long long r0, long long r1,
                                 float* __restrict ring, int ring_rows) {
  const long long mask = ring_rows - 1;
  for (long long r = r0; r < r1; r += 8) {
    float* __restrict out = ring + size_t(r & mask) * 8;  // rows r .. r + 7
    const long long first = r - pad, last = r + 7 * lane_offset - pad;  // lanes 0 and 7
    if (first >= 0 && last + 8 <= len) {
      Float8 v[8], t[8];
      for (int j = 0; j < 8; ++j) v[j] = FSL_LOAD8(x + (first + j * lane_offset));
      // 8 streams far apart: each lane's samples a few groups ahead are fetched meanwhile
      // (prefetching never faults, even past the end of x).
      for (int j = 0; j < 8; ++j) __builtin_prefetch(x + (first + j * lane_offset + kAhead));
      transpose8x8(v, t);
      store8(out, t[0]);
      store8(out + 8, t[1]);
      store8(out + 16, t[2]);
      store8(out + 24, t[3]);
      store8(out + 32, t[4]);
      store8(out + 40, t[5]);
      store8(out + 48, t[6]);
      store8(out + 56, t[7]);
      continue;
    }
    for (int j = 0; j < 8; ++j)
      for (int k = 0; k < 8; ++k) {
        const long long i = fm::pad_source_index(r + k + j * lane_offset - pad, len, reflect);
        out[8 * k + j] = i < 0 ? 0.0f : x[i];
      }
  }
}

FSL_HOT_LOOP void window_ring_8(const float* __restrict ring, int ring_rows, long long start,
                                const float* __restrict window, int n,
                                const int* __restrict position, float* __restrict lanes) {
  for (int p = 0; p < n / 2; ++p)
    store_point(lanes, position[p], ring_point(ring, ring_rows - 1, start, window, p));
}

FSL_HOT_LOOP void scatter_8_columns(const float* __restrict mel_t, int stride, int n_mels,
                                    int col0, float* const* rows) {
  int m0 = 0;
  for (; m0 + 8 <= n_mels; m0 += 8) {
    Float8 r[8], c[8];
    for (int k = 0; k < 8; ++k) r[k] = FSL_LOAD8(mel_t + size_t(m0 + k) * stride + col0);
    transpose8x8(r, c);
    for (int j = 0; j < 8; ++j)
      if (rows[j]) store8(rows[j] + m0, c[j]);
  }
  for (; m0 < n_mels; ++m0)
    for (int j = 0; j < 8; ++j)
      if (rows[j]) rows[j][m0] = mel_t[size_t(m0) * stride + col0 + j];
}

FSL_HOT_LOOP void lane_fft(const LaneFftPlan& plan, float* __restrict lanes) {
  const int h = plan.h;
  int m = 1;
  for (size_t s = 0; s < plan.radices.size(); ++s) {
    const int r = plan.radices[s];
    if (r != 8) {  // the first pass (m = 1): no twiddles
      for (int g = 0; g < h; g += r) {
        Complex8 a[4];
        for (int q = 0; q < r; ++q) a[q] = load_point(lanes, g + q);
        if (r == 2)
          dft2(a);
        else
          dft4(a[0], a[1], a[2], a[3]);
        for (int q = 0; q < r; ++q) store_point(lanes, g + q, a[q]);
      }
    } else {
      radix8_pass(plan, s, m, lanes);
    }
    m *= r;
  }
}

// The first pass reads its points from the ring, windowed (as window_ring_8 would place them),
// and the first two passes run one 64-point sub-block (4 KiB of lanes) at a time, so the
// sub-block stays in L1 between them: the lanes are written once by the first two passes
// instead of by the window step, then read and written by each pass.
FSL_HOT_LOOP void lane_fft_from_ring(const LaneFftPlan& plan, const float* __restrict ring,
                                     int ring_rows, long long start,
                                     const float* __restrict window, float* __restrict lanes) {
  const int h = plan.h;
  const long long mask = ring_rows - 1;
  const int* __restrict input = plan.input.data();
  const int sub = std::min(h, 64);
  for (int k0 = 0; k0 < h; k0 += sub) {
    for (int g = k0; g < k0 + sub; g += 8)
      radix8_from(
          [&](int q) { return ring_point(ring, mask, start, window, input[g + q]); },
          lanes, g, 1);
    if (sub == 64) {
      const float* tw_re = plan.twiddle_re.data() + plan.pass_twiddle_offset[1];
      const float* tw_im = plan.twiddle_im.data() + plan.pass_twiddle_offset[1];
      for (int j = 0; j < 8; ++j) radix8<true>(lanes, k0 + j, 8, tw_re + 7 * j, tw_im + 7 * j);
    }
  }
  int m = 64;
  for (size_t s = 2; s < plan.radices.size(); ++s, m *= 8) radix8_pass(plan, s, m, lanes);
}

// The real-FFT split of split_power (frontend_kernels.cpp), on 8 frames at once: Z[k] and
// Z[h-k] give |X[k]|^2 and |X[h-k]|^2 from one twiddle product; no reversed reads are needed
// here since each point is a whole vector.
FSL_HOT_LOOP void power_from_lane_fft(const float* __restrict lanes, int h,
                                      const float* __restrict twiddle_re,
                                      const float* __restrict twiddle_im, float* __restrict power,
                                      int stride, float* __restrict energy) {
  Float8 sum_lo = {}, sum_hi = {};  // bins k and h - k, 0 < k < h / 2
  for (int k = 1; k < h - k; ++k) {
    const Complex8 z = load_point(lanes, k), zr = load_point(lanes, h - k);
    const Float8 e2r = z.re + zr.re, e2i = z.im - zr.im, o2r = z.im + zr.im, o2i = zr.re - z.re;
    const Float8 t2r = twiddle_re[k] * o2r - twiddle_im[k] * o2i;
    const Float8 t2i = twiddle_re[k] * o2i + twiddle_im[k] * o2r;
    const Float8 pr = e2r + t2r, pi = e2i + t2i, mr = e2r - t2r, mi = e2i - t2i;
    const Float8 p_lo = 0.25f * (pr * pr + pi * pi), p_hi = 0.25f * (mr * mr + mi * mi);
    store8(power + size_t(k) * stride, p_lo);
    store8(power + size_t(h - k) * stride, p_hi);
    sum_lo += p_lo;
    sum_hi += p_hi;
  }
  const Complex8 z0 = load_point(lanes, 0), zm = load_point(lanes, h / 2);
  const Float8 p_mid = zm.re * zm.re + zm.im * zm.im;
  const Float8 p_0 = (z0.re + z0.im) * (z0.re + z0.im), p_h = (z0.re - z0.im) * (z0.re - z0.im);
  store8(power + size_t(h / 2) * stride, p_mid);
  store8(power, p_0);
  store8(power + size_t(h) * stride, p_h);
  // Bins h + 1 .. n - 1 mirror bins h - 1 .. 1, so the n bins sum to these, each twice, plus
  // bins 0 and h.
  store8(energy,
         ((sum_lo + sum_hi) + p_mid + (sum_lo + sum_hi) + p_mid + p_0 + p_h) / float(2 * h));
}

}  // namespace fsl::fe_kernels
