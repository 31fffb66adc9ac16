// The CPU front end's hot loops; declarations and contracts in frontend_kernels.hpp.
#include "frontend_kernels.hpp"

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>

namespace fsl::fe_kernels {

FSL_HOT_LOOP void window_frame(const float* __restrict x, const double* __restrict window, int n,
                               double* __restrict f) {
  for (int i = 0; i < n; ++i) f[i] = double(x[i]) * window[i];
}

// The real-FFT split. With a = Re Z[k], b = Im Z[k], c = Re Z[h-k], d = Im Z[h-k]
// (Z[h] = Z[0]), the even and odd samples' spectra are E[k] = (Z[k] + conj(Z[h-k])) / 2 and
// O[k] = (Z[k] - conj(Z[h-k])) / 2i, and X[k] = E[k] + w^k O[k], w = exp(-2 pi i / n). Since
// E[h-k] = conj(E[k]), O[h-k] = conj(O[k]) and w^(h-k) = -conj(w^k), X[h-k] = conj(E[k] -
// w^k O[k]): one twiddle product T = w^k O[k] gives both |X[k]|^2 = |E + T|^2 and
// |X[h-k]|^2 = |E - T|^2. Everything is computed doubled (2E, 2T; no halving) and the power
// scaled by 1/4 at the end, which is exact. Z[h-k] is first copied to a forward array so the
// main loop reads both operands forwards (the vectoriser handles a reversed single array, not
// reversed (re, im) pairs); it writes power[k] forwards and power[h-k] backwards (one permute).
// T: double (the float STFT's fallback; the lane FFT has its own float split in
// frontend_lane_fft.cpp); the power is rounded to float at the end.
template <typename T>
[[gnu::always_inline]] inline void split_power(const T* __restrict z, int h,
                                               const T* __restrict twiddle_re,
                                               const T* __restrict twiddle_im,
                                               T* __restrict scratch, float* __restrict power) {
  const int pairs = (h - 1) / 2;  // k = 1..pairs pairs with h - k > k
  T* __restrict zrev = scratch;   // (re, im) of Z[h-k] at 2k, 2k + 1
  for (int k = 1; k <= pairs; ++k) {
    zrev[2 * k] = z[2 * (h - k)];
    zrev[2 * k + 1] = z[2 * (h - k) + 1];
  }
  for (int k = 1; k <= pairs; ++k) {
    const T a = z[2 * k], b = z[2 * k + 1], c = zrev[2 * k], d = zrev[2 * k + 1];
    const T e2r = a + c, e2i = b - d, o2r = b + d, o2i = c - a;  // 2 E[k], 2 O[k]
    const T t2r = twiddle_re[k] * o2r - twiddle_im[k] * o2i;     // 2 w^k O[k]
    const T t2i = twiddle_re[k] * o2i + twiddle_im[k] * o2r;
    const T pr = e2r + t2r, pi = e2i + t2i, mr = e2r - t2r, mi = e2i - t2i;
    power[k] = float(T(0.25) * (pr * pr + pi * pi));
    power[h - k] = float(T(0.25) * (mr * mr + mi * mi));
  }
  if (h % 2 == 0) power[h / 2] = float(z[h] * z[h] + z[h + 1] * z[h + 1]);  // conj(Z[h/2])
  power[0] = float((z[0] + z[1]) * (z[0] + z[1]));                          // E[0] + O[0]
  power[h] = float((z[0] - z[1]) * (z[0] - z[1]));                          // E[0] - O[0]
}

FSL_HOT_LOOP void power_from_half_length_fft(const double* __restrict z, int h,
                                             const double* __restrict twiddle_re,
                                             const double* __restrict twiddle_im,
                                             double* __restrict scratch, float* __restrict power) {
  split_power(z, h, twiddle_re, twiddle_im, scratch, power);
}

// Frames are the inner, contiguous loop: the bands are 1-40 bins long, too short to vectorise
// over, but every band does the same work for all frames of the block. The sum over k runs in
// the same order for every column, and whole groups of 8 columns all take vector sums, so a
// column's result does not depend on `block` where block is a multiple of 8 (the front end's
// always are; a scalar remainder may round differently: contractions differ).
FSL_HOT_LOOP void mel_project(const float* __restrict power_g, int block, int stride,
                              const float* __restrict filterbank, int nb, const int* lo,
                              const int* hi, int n_mels, float* __restrict mel_t) {
  const size_t group_size = size_t(nb) * 8;  // one group's (nb, 8) spectra
  for (int m = 0; m < n_mels; ++m) {
    float* __restrict acc = mel_t + size_t(m) * stride;
    int b0 = 0;
    // 32 columns (4 groups) at a time in 4 vector accumulators that stay in registers over
    // the band's bins; the same sums as the loop below.
    for (; b0 + 32 <= block; b0 += 32) {
      Float8 sum[4] = {};
      // Bin k of group b0 / 8 + v at pk + v * group_size; one pointer walks the bins.
      const float* __restrict pk = power_g + size_t(b0 / 8) * group_size + size_t(lo[m]) * 8;
      for (int k = lo[m]; k < hi[m]; ++k, pk += 8) {
        const float w = filterbank[size_t(m) * nb + k];
        for (int v = 0; v < 4; ++v) {
          Float8 p;
          std::memcpy(&p, pk + v * group_size, sizeof(p));
          sum[v] += w * p;
        }
      }
      std::memcpy(acc + b0, sum, sizeof(sum));
    }
    for (; b0 + 8 <= block; b0 += 8) {  // a group: the same sums, one vector
      Float8 sum = {};
      const float* __restrict pk = power_g + size_t(b0 / 8) * group_size + size_t(lo[m]) * 8;
      for (int k = lo[m]; k < hi[m]; ++k, pk += 8) {
        Float8 p;
        std::memcpy(&p, pk, sizeof(p));
        sum += filterbank[size_t(m) * nb + k] * p;
      }
      std::memcpy(acc + b0, &sum, sizeof(sum));
    }
    for (int b = b0; b < block; ++b) {  // the last block's last columns
      const float* __restrict pb = power_g + size_t(b / 8) * group_size + b % 8;
      float sum = 0.0f;
      for (int k = lo[m]; k < hi[m]; ++k)
        sum += filterbank[size_t(m) * nb + k] * pb[size_t(k) * 8];
      acc[b] = sum;
    }
  }
}

std::optional<MelRuns> MelRuns::make(const float* filterbank, int n_mels, int nb) {
  MelRuns runs;
  runs.n_mels = n_mels;
  runs.weight_a.assign(nb, 0.0f);
  runs.weight_b.assign(nb, 0.0f);
  int last_band = -1;
  for (int k = 0; k < nb; ++k) {
    int lo = -1;  // the lowest band holding bin k
    for (int m = 0; m < n_mels; ++m)
      if (filterbank[size_t(m) * nb + k] != 0.0f) {
        if (lo < 0) lo = m;
        if (m > lo + 1) return std::nullopt;  // a bin in bands further apart than neighbours
      }
    if (lo < 0) continue;  // in no band
    if (lo < last_band) return std::nullopt;
    runs.weight_a[k] = filterbank[size_t(lo) * nb + k];
    runs.weight_b[k] = lo + 1 < n_mels ? filterbank[size_t(lo + 1) * nb + k] : 0.0f;
    if (!runs.band.empty() && runs.band.back() == lo && runs.end.back() == k) {
      ++runs.end.back();
    } else {
      runs.band.push_back(lo);
      runs.begin.push_back(k);
      runs.end.push_back(k + 1);
    }
    last_band = lo;
  }
  // Each band's bins must be one range: the runs of band m - 1 and m hold all of band m's.
  for (int m = 0; m < n_mels; ++m) {
    int first = -1, last = -1;
    for (int k = 0; k < nb; ++k)
      if (filterbank[size_t(m) * nb + k] != 0.0f) {
        if (first < 0) first = k;
        last = k;
      }
    for (int k = first; first >= 0 && k <= last; ++k)
      if (filterbank[size_t(m) * nb + k] == 0.0f) return std::nullopt;
  }
  return runs;
}

namespace {
// mel_project_runs over G groups (8 G columns) from column b0: the G x 2 accumulators stay in
// registers over each run; a band's sum is stored once its last run is done.
template <int G>
[[gnu::always_inline]] inline void project_runs(const float* __restrict power_g, int b0,
                                                size_t group_size, const MelRuns& runs,
                                                int stride, float* __restrict mel_t) {
  const Float8 zeros[G] = {};
  Float8 acc_a[G] = {}, acc_b[G] = {};  // bands m and m + 1 of the current run
  int band = -1;                        // the current run's m; -1 before the first run
  auto store_band = [&](int m, const Float8* acc) __attribute__((always_inline)) {
    std::memcpy(mel_t + size_t(m) * stride + b0, acc, sizeof(Float8) * G);
  };
  // Bands below m are complete: band (acc_a), band + 1 (acc_b) unless it goes on as m, and
  // the empty ones between.
  auto finish_below = [&](int m) __attribute__((always_inline)) {
    if (band >= 0) store_band(band, acc_a);
    if (band >= 0 && band + 1 < m) store_band(band + 1, acc_b);
    for (int e = band >= 0 ? band + 2 : 0; e < m; ++e) store_band(e, zeros);
  };
  for (size_t r = 0; r < runs.band.size(); ++r) {
    const int m = runs.band[r];
    if (m != band) {
      finish_below(m);
      for (int v = 0; v < G; ++v) acc_a[v] = m == band + 1 ? acc_b[v] : zeros[v];
      for (int v = 0; v < G; ++v) acc_b[v] = zeros[v];
      band = m;
    }
    const float* __restrict pk = power_g + size_t(b0 / 8) * group_size + size_t(runs.begin[r]) * 8;
    for (int k = runs.begin[r]; k < runs.end[r]; ++k, pk += 8) {
      const float wa = runs.weight_a[k], wb = runs.weight_b[k];
      for (int v = 0; v < G; ++v) {
        Float8 p;
        std::memcpy(&p, pk + v * group_size, sizeof(p));
        acc_a[v] += wa * p;
        acc_b[v] += wb * p;
      }
    }
  }
  finish_below(runs.n_mels);
}
}  // namespace

FSL_HOT_LOOP void mel_project_runs(const float* __restrict power_g, int block, int stride,
                                   const MelRuns& runs, int nb, float* __restrict mel_t) {
  const size_t group_size = size_t(nb) * 8;
  int b0 = 0;
  for (; b0 + 32 <= block; b0 += 32) project_runs<4>(power_g, b0, group_size, runs, stride, mel_t);
  for (; b0 + 16 <= block; b0 += 16) project_runs<2>(power_g, b0, group_size, runs, stride, mel_t);
  for (; b0 < block; b0 += 8) project_runs<1>(power_g, b0, group_size, runs, stride, mel_t);
}

FSL_HOT_LOOP void flag_imprecise_frames(const float* __restrict mel_t, int block, int stride,
                                        int n_mels, const float* __restrict band_weight,
                                        const float* __restrict energy, float floor_per_weight,
                                        int* __restrict needs_double) {
  for (int m = 0; m < n_mels; ++m) {
    const float* __restrict row = mel_t + size_t(m) * stride;
    const float floor = floor_per_weight * band_weight[m];
    for (int b = 0; b < block; ++b) needs_double[b] |= int(row[b] < floor * energy[b]);
  }
}

// Natural log of a positive, normal float, written so that a loop of it vectorises (glibc's
// logf is a call per element). x = m * 2^e with m in [sqrt(1/2), sqrt(2)); log(m) = 2 atanh(s),
// s = (m - 1) / (m + 1), |s| <= 0.172, by its odd series to s^9 (truncation < 1e-9); e ln 2
// split into a part exact in float plus a correction. Error, measured exhaustively over every
// float in [1e-30, 1e30] against the double-precision log: at most 2 ulp of the result
// (3.9e-6 absolute); log(1e-8) is exact. With the FMA clone's contractions (same sweep,
// compiled for avx2 + fma): at most 1.97 ulp.
[[gnu::always_inline]] inline float log_positive(float x) {
  const int32_t bits = std::bit_cast<int32_t>(x);
  const int32_t e = (bits - 0x3f3504f3) >> 23;  // 0x3f3504f3 = sqrt(1/2)
  const float m = std::bit_cast<float>(bits - (e << 23));
  const float s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
  const float series = s2 * (1.0f / 3 + s2 * (1.0f / 5 + s2 * (1.0f / 7 + s2 * (1.0f / 9))));
  constexpr float kLn2Hi = 0.693145751953125f;  // 12 significant bits: e * kLn2Hi is exact
  constexpr float kLn2Lo = 1.42860682030941723212e-6f;
  return float(e) * kLn2Hi + (float(e) * kLn2Lo + 2.0f * (s + s * series));
}

// e^y for |y| < 87 (a normal float result), written so that a loop of it vectorises:
// e^y = 2^n e^r with n = round(y / ln 2), r = y - n ln 2 (|r| <= 0.347, ln 2 split as in
// log_positive), e^r by its Taylor series to r^7 (truncation < 2e-9 relative), 2^n built in the
// exponent bits. The rounding uses the 1.5 * 2^23 trick (exact for |y / ln 2| < 2^22) because
// nearbyint does not vectorise on plain SSE2. Error, measured over every float y in
// [-87, 87] against the double-precision exp: at most 1.03e-7 relative (< 2 ulp); with the FMA
// clone's contractions 7.9e-8.
[[gnu::always_inline]] inline float exp_small(float y) {
  constexpr float kLog2e = 1.44269504088896341f, kRound = 12582912.0f;  // 1.5 * 2^23
  constexpr float kLn2Hi = 0.693145751953125f, kLn2Lo = 1.42860682030941723212e-6f;
  const float n = (y * kLog2e + kRound) - kRound;
  const float r = (y - n * kLn2Hi) - n * kLn2Lo;
  const float poly =
      1.0f +
      r * (1.0f +
           r * (1.0f / 2 +
                r * (1.0f / 6 +
                     r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720 + r * (1.0f / 5040)))))));
  return poly * std::bit_cast<float>((int32_t(n) + 127) << 23);
}

FSL_HOT_LOOP void log_mel_in_place(float* __restrict mel, size_t n, float eps) {
  for (size_t i = 0; i < n; ++i) mel[i] = log_positive(mel[i] + eps);
}

// sqrt(a) for a in [1, 1e38]: 1/sqrt(a) from an initial guess built in the exponent bits (the
// constant 0x5f375a86 keeps its relative error under 3.5e-2) and three Newton steps
// y <- y (3/2 - a y^2 / 2) (each squares the error: 1.8e-3, 4.7e-6, then float rounding), times
// a. Written out because GCC keeps sqrtf scalar (errno) without -fno-math-errno, which the
// optimize attribute does not pass on. Error, measured over every float in [1, 1e6] and a
// sample up to 1e38 against the double-precision sqrt: at most 2.6 ulp.
[[gnu::always_inline]] inline float sqrt_at_least_one(float a) {
  float y = std::bit_cast<float>(0x5f375a86 - (std::bit_cast<int32_t>(a) >> 1));
  const float half_a = 0.5f * a;
  for (int i = 0; i < 3; ++i) y = y * (1.5f - half_a * y * y);
  return a * y;
}

// The same formulas as fm::pcen_value with (eps + M)^-gain as exp_small(-gain log_positive(.)),
// vectorised over the bands (each band's smoother is independent). The smoother runs in double
// in a loop of its own, so that the float loop after it is vectorised 8 wide (a loop that mixes
// them runs 4 lanes). The helpers are always_inline because GCC does not inline across
// differing optimize attributes (nor fm::pcen_smoother_step, written out below).
FSL_HOT_LOOP void pcen_sqrt_rows(const float* __restrict mel, int block, int n_mels, float scale,
                                 double coef, const fm::PcenParams& pp, double* __restrict smooth,
                                 float* __restrict smooth_f, float* __restrict agc,
                                 float* __restrict out) {
  const float sqrt_bias = std::sqrt(pp.bias), inv_bias = 1.0f / pp.bias;
  for (int b = 0; b < block; ++b) {
    const float* __restrict row = mel + size_t(b) * n_mels;
    for (int m = 0; m < n_mels; ++m) {
      smooth[m] = coef * (row[m] * scale) + (1.0 - coef) * smooth[m];  // fm::pcen_smoother_step
      smooth_f[m] = float(smooth[m]);
    }
    // Three loops, each a shorter dependency chain per vector (log; exp; square root and
    // division): the CPU overlaps more vectors than with one ~150-cycle chain per vector.
    for (int m = 0; m < n_mels; ++m) agc[m] = -pp.gain * log_positive(pp.eps + smooth_f[m]);
    for (int m = 0; m < n_mels; ++m) agc[m] = exp_small(agc[m]);
    for (int m = 0; m < n_mels; ++m) {
      const float e = row[m] * scale;
      const float z = e * agc[m] * inv_bias;
      out[size_t(b) * n_mels + m] = sqrt_bias * z / (sqrt_at_least_one(1.0f + z) + 1.0f);
    }
  }
}

}  // namespace fsl::fe_kernels
