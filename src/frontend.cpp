#include "fsl/frontend.hpp"

#include <fftw3.h>  // double-precision API (fftw_*)

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cmath>
#include <cstring>
#include <mutex>

#include "fsl/error.hpp"
#include "fsl/frontend_math.hpp"

namespace fsl {

namespace {
// FFTW's planner is not thread-safe; execution of an existing plan is.
std::mutex& fftw_planner_mutex() {
  static std::mutex mu;
  return mu;
}

constexpr int kBlockFrames = 64;  // frames per batched FFTW call

template <typename T>
struct FftwFree {
  void operator()(T* p) const { fftw_free(p); }
};
template <typename T>
using FftwBuffer = std::unique_ptr<T[], FftwFree<T>>;

template <typename T>
FftwBuffer<T> fftw_alloc(size_t n) {
  auto* p = static_cast<T*>(fftw_malloc(sizeof(T) * std::max<size_t>(n, 1)));
  if (!p) throw std::bad_alloc();
  return FftwBuffer<T>(p);
}
}  // namespace

FrontendParams FrontendParams::from(const FeaturesConfig& f) {
  FrontendParams p;
  p.sr = f.sr;
  p.n_fft = f.n_fft;
  p.hop = f.hop_mel;
  p.n_mels = f.n_mels;
  p.fmin = f.fmin;
  p.fmax = f.fmax;
  p.reflect_pad = f.pad_mode == "reflect";
  p.log_eps = f.eps;
  p.pcen_gain = f.pcen_gain;
  p.pcen_bias = f.pcen_bias;
  p.pcen_power = f.pcen_power;
  p.pcen_time_constant = f.pcen_time_constant;
  p.pcen_eps = f.pcen_eps;
  p.pcen_hop = f.pcen_baseline_hop ? 512 : f.hop_mel;
  return p;
}

const std::vector<std::string>& frontend_types() {
  static const std::vector<std::string> t{"logmel", "pcen"};
  return t;
}

std::vector<float> mel_filterbank(const FrontendParams& p) {
  const int nb = p.n_bins();
  // n_mels + 2 band edges equally spaced on the mel scale between fmin and fmax.
  std::vector<double> edges(p.n_mels + 2);
  const double mlo = fm::hz_to_mel_slaney(p.fmin), mhi = fm::hz_to_mel_slaney(p.fmax);
  for (int i = 0; i < p.n_mels + 2; ++i)
    edges[i] = fm::mel_to_hz_slaney(mlo + (mhi - mlo) * i / double(p.n_mels + 1));
  std::vector<float> w(size_t(p.n_mels) * nb);  // (n_mels, n_bins)
  for (int m = 0; m < p.n_mels; ++m) {
    const double lo = edges[m], mid = edges[m + 1], hi = edges[m + 2];
    const double area_norm = 2.0 / (hi - lo);  // Slaney: each triangle has unit area in Hz
    for (int k = 0; k < nb; ++k) {
      const double f = double(k) * p.sr / p.n_fft;
      const double rise = (f - lo) / (mid - lo), fall = (hi - f) / (hi - mid);
      w[size_t(m) * nb + k] = float(std::max(0.0, std::min(rise, fall)) * area_norm);
    }
  }
  return w;
}

// The hot loops below are plain loops over __restrict pointers. The library is built at -O2,
// whose "very cheap" vectoriser leaves loops that need a scalar remainder unvectorised, and
// the binary must run on any x86-64 (no global -march). So these few functions are compiled
// at -O3 (the full vectoriser; no -ffast-math, so every value is the same as at -O2) and
// cloned for AVX2, chosen at load time where the CPU has it, SSE2 elsewhere.
#define FSL_HOT_LOOP __attribute__((target_clones("avx2", "default"), optimize("O3")))

// f[i] = x[i] * window[i], i < n: one frame, converted to double.
FSL_HOT_LOOP static void window_frame(const float* __restrict x, const double* __restrict window,
                                      int n, double* __restrict f) {
  for (int i = 0; i < n; ++i) f[i] = double(x[i]) * window[i];
}

// Power spectrum |X[k]|^2, k = 0..h, of one real frame x of length n = 2h, from the length-h
// complex FFT Z of z[j] = x[2j] + i x[2j+1] (the frame buffer itself, read as h complex numbers).
// The even and odd samples' spectra are E[k] = (Z[k] + conj(Z[h-k])) / 2 and
// O[k] = (Z[k] - conj(Z[h-k])) / 2i (Z[h] = Z[0]), and X[k] = E[k] + w^k O[k] with
// w = exp(-2 pi i / n): the textbook real-FFT split. Done here, not by FFTW's r2c, because
// FFTW_ESTIMATE (kept for run-to-run identical plans) plans the 1024-point r2c poorly (2.2 us
// per frame here) but the 512-point complex FFT well (0.8 us), and fused with |X|^2 it is one
// vectorised pass. z: (h, 2) interleaved; twiddle_re, twiddle_im: (h)
// cos and -sin of 2 pi k / n; scratch: (4, h); power: (h + 1) bins, bin k at power[k * stride]
// (one column of the block's (nb, kBlockFrames) power, the layout mel_project reads).
FSL_HOT_LOOP static void power_from_half_length_fft(const double* __restrict z, int h,
                                                    const double* __restrict twiddle_re,
                                                    const double* __restrict twiddle_im,
                                                    double* __restrict scratch,
                                                    float* __restrict power, int stride) {
  // Z[k] and conj(Z[h-k]) as four separate forward arrays: every loop then reads with stride 1
  // or -1 on one array, which the vectoriser handles (stride -2 on interleaved data it does not).
  double* __restrict zr = scratch;
  double* __restrict zi = scratch + h;
  double* __restrict rr = scratch + 2 * h;
  double* __restrict ri = scratch + 3 * h;
  for (int k = 0; k < h; ++k) {
    zr[k] = z[2 * k];
    zi[k] = z[2 * k + 1];
  }
  rr[0] = zr[0];
  ri[0] = -zi[0];
  for (int k = 1; k < h; ++k) {
    rr[k] = zr[h - k];
    ri[k] = -zi[h - k];
  }
  for (int k = 0; k < h; ++k) {
    const double er = 0.5 * (zr[k] + rr[k]), ei = 0.5 * (zi[k] + ri[k]);   // E[k]
    const double o_r = 0.5 * (zi[k] - ri[k]), o_i = -0.5 * (zr[k] - rr[k]);  // O[k]
    const double xr = er + twiddle_re[k] * o_r - twiddle_im[k] * o_i;
    const double xi = ei + twiddle_re[k] * o_i + twiddle_im[k] * o_r;
    power[size_t(k) * stride] = float(xr * xr + xi * xi);
  }
  power[size_t(h) * stride] = float((z[0] - z[1]) * (z[0] - z[1]));  // X[h] = E[0] - O[0]
}

// Natural log of a positive, normal float, written so that a loop of it vectorises (glibc's
// logf is a call per element; this takes 14% of the logmel time). x = m * 2^e with m in
// [sqrt(1/2), sqrt(2)); log(m) = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.172, by its odd
// series to s^9 (truncation < 1e-9); e ln 2 split into a part exact in float plus a
// correction. Error, measured exhaustively over every float in [1e-30, 1e30] against the
// double-precision log: at most 2 ulp of the result (3.9e-6 absolute); log(1e-8) is exact.
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
// [-87, 87] against the double-precision exp: at most 1.03e-7 relative (< 2 ulp).
[[gnu::always_inline]] inline float exp_small(float y) {
  constexpr float kLog2e = 1.44269504088896341f, kRound = 12582912.0f;  // 1.5 * 2^23
  constexpr float kLn2Hi = 0.693145751953125f, kLn2Lo = 1.42860682030941723212e-6f;
  const float n = (y * kLog2e + kRound) - kRound;
  const float r = (y - n * kLn2Hi) - n * kLn2Lo;
  const float poly =
      1.0f + r * (1.0f + r * (1.0f / 2 + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 +
                 r * (1.0f / 720 + r * (1.0f / 5040)))))));
  return poly * std::bit_cast<float>((int32_t(n) + 127) << 23);
}

// PCEN for `block` frames of mel (block, n_mels) with the default power 0.5 and bias > 0
// (fm::pcen_value's sqrt branch), carrying the smoother state (n_mels, double) across calls.
// The same formulas as fm::pcen_value with (eps + M)^-gain as exp_small(-gain log_positive(.)),
// vectorised over the bands (each band's smoother is independent). sqrt(1 + z) is also taken
// as exp(log(1 + z) / 2): GCC keeps sqrtf scalar (errno) without -fno-math-errno, which the
// optimize attribute does not pass on. The helpers are always_inline because GCC does not
// inline across differing optimize attributes (nor fm::pcen_smoother_step, written out below).
FSL_HOT_LOOP static void pcen_sqrt_rows(const float* __restrict mel, int block, int n_mels,
                                        float scale, double coef, const fm::PcenParams& pp,
                                        double* __restrict smooth, float* __restrict out) {
  const float sqrt_bias = std::sqrt(pp.bias), inv_bias = 1.0f / pp.bias;
  for (int b = 0; b < block; ++b)
    for (int m = 0; m < n_mels; ++m) {
      const float e = mel[size_t(b) * n_mels + m] * scale;
      smooth[m] = coef * e + (1.0 - coef) * smooth[m];  // fm::pcen_smoother_step, inlined
      const float agc = exp_small(-pp.gain * log_positive(pp.eps + float(smooth[m])));
      const float z = e * agc * inv_bias;
      const float root = exp_small(0.5f * log_positive(1.0f + z));  // sqrt(1 + z)
      out[size_t(b) * n_mels + m] = sqrt_bias * z / (root + 1.0f);
    }
}

// logmel = log(mel + eps) over n values.
FSL_HOT_LOOP static void log_mel_rows(const float* __restrict mel, size_t n, float eps,
                                      float* __restrict out) {
  for (size_t i = 0; i < n; ++i) out[i] = log_positive(mel[i] + eps);
}

// mel_t (n_mels, stride) = filterbank (n_mels, nb) x power_t (nb, stride) for the first `block`
// columns (frames), each band over its non-zero bins [lo[m], hi[m]) only (~2 MACs per bin; a
// dense sgemm measured 3.3 us/frame). Frames are the inner, contiguous loop: the bands are
// 1-40 bins long, too short to vectorise over, but every band does the same work for 64
// frames. The sum over k runs in the same order as a per-frame dot product would.
FSL_HOT_LOOP static void mel_project(const float* __restrict power_t, int block, int stride,
                                     const float* __restrict filterbank, int nb, const int* lo,
                                     const int* hi, int n_mels, float* __restrict mel_t) {
  for (int m = 0; m < n_mels; ++m) {
    float* __restrict acc = mel_t + size_t(m) * stride;
    for (int b = 0; b < block; ++b) acc[b] = 0.0f;
    for (int k = lo[m]; k < hi[m]; ++k) {
      const float w = filterbank[size_t(m) * nb + k];
      const float* __restrict pw = power_t + size_t(k) * stride;
      for (int b = 0; b < block; ++b) acc[b] += w * pw[b];
    }
  }
}

struct Frontend::Impl {
  int nb = 0;
  std::vector<double> window;     // (n_fft) periodic Hann
  std::vector<double> twiddle_re, twiddle_im;  // (n_fft/2) cos, -sin of 2 pi k / n_fft
  std::vector<float> filterbank;  // (n_mels, nb)
  // Each mel triangle is non-zero on bins [band_lo[m], band_hi[m]) only: projecting over that
  // range does ~2 MACs per bin instead of n_mels (a dense sgemm: 3.3 us/frame; see mel_project).
  std::vector<int> band_lo, band_hi;
  // The STFT runs in double as librosa's does: a float FFT's rounding noise (~1e-7 of the
  // frame's peak) would dominate the near-silent bands that PCEN's gain control amplifies.
  FftwBuffer<double> frames;      // (kBlockFrames, n_fft) windowed frames
  FftwBuffer<fftw_complex> spec;        // (kBlockFrames, n_fft/2) half-length complex FFTs
  std::vector<double> scratch;          // (4, n_fft/2) of power_from_half_length_fft
  std::vector<float> power_t;     // (nb, kBlockFrames): frames are columns
  std::vector<float> mel_t;       // (n_mels, kBlockFrames)
  std::vector<float> mel;         // (kBlockFrames, n_mels)
  fftw_plan plan = nullptr;
};

Frontend::Frontend(const FrontendParams& p) : p_(p), impl_(std::make_unique<Impl>()) {
  if (p.n_fft < 2 || p.n_fft % 2 || p.hop <= 0 || p.n_mels <= 0 || p.sr <= 0)
    fail("front end: invalid parameters (n_fft ", p.n_fft, ", hop ", p.hop, ", n_mels ", p.n_mels,
         ")");
  Impl& s = *impl_;
  s.nb = p.n_bins();
  s.window.resize(p.n_fft);
  for (int i = 0; i < p.n_fft; ++i) s.window[i] = fm::hann_periodic(i, p.n_fft);
  const int h = p.n_fft / 2;
  s.twiddle_re.resize(h);
  s.twiddle_im.resize(h);
  for (int k = 0; k < h; ++k) {
    const double a = 2.0 * 3.14159265358979323846 * k / p.n_fft;
    s.twiddle_re[k] = std::cos(a);
    s.twiddle_im[k] = -std::sin(a);
  }
  s.filterbank = mel_filterbank(p);
  s.band_lo.assign(p.n_mels, 0);
  s.band_hi.assign(p.n_mels, 0);
  for (int m = 0; m < p.n_mels; ++m) {
    const float* w = s.filterbank.data() + size_t(m) * s.nb;
    int lo = 0, hi = s.nb;
    while (lo < hi && w[lo] == 0.0f) ++lo;
    while (hi > lo && w[hi - 1] == 0.0f) --hi;
    s.band_lo[m] = lo;
    s.band_hi[m] = hi;
  }
  s.frames = fftw_alloc<double>(size_t(kBlockFrames) * p.n_fft);
  s.spec = fftw_alloc<fftw_complex>(size_t(kBlockFrames) * h);
  s.scratch.resize(4 * size_t(h));
  s.power_t.resize(size_t(kBlockFrames) * s.nb);
  s.mel_t.resize(size_t(kBlockFrames) * p.n_mels);
  s.mel.resize(size_t(kBlockFrames) * p.n_mels);
  std::lock_guard<std::mutex> lock(fftw_planner_mutex());
  // FFTW_ESTIMATE: deterministic plan choice, so features are bit-identical run to run.
  // Complex FFTs of length h over the frame buffer read as (kBlockFrames, h) complex numbers
  // (fftw_complex is double[2]): real parts = even samples, imaginary parts = odd samples.
  s.plan = fftw_plan_many_dft(1, &h, kBlockFrames, reinterpret_cast<fftw_complex*>(s.frames.get()),
                              nullptr, 1, h, s.spec.get(), nullptr, 1, h, FFTW_FORWARD,
                              FFTW_ESTIMATE);
  if (!s.plan) fail("front end: FFTW could not plan a complex FFT of size ", h);
}

Frontend::~Frontend() {
  if (impl_ && impl_->plan) {
    std::lock_guard<std::mutex> lock(fftw_planner_mutex());
    fftw_destroy_plan(impl_->plan);
  }
}

RequestedTypes parse_requested_types(const std::vector<std::string>& types, const char* who) {
  RequestedTypes r;
  for (const auto& t : types) {
    if (t == "logmel")
      r.logmel = true;
    else if (t == "pcen")
      r.pcen = true;
    else
      fail(who, ": unknown feature type '", t, "' (supported: logmel, pcen)");
  }
  return r;
}

std::map<std::string, std::vector<float>> Frontend::compute(const float* x, size_t n,
                                                            const std::vector<std::string>& types) {
  if (n == 0) fail("front end: empty signal");
  const auto req = parse_requested_types(types, "front end");
  const bool want_log = req.logmel, want_pcen = req.pcen;
  Impl& s = *impl_;
  const int n_fft = p_.n_fft, nb = s.nb, n_mels = p_.n_mels;
  const size_t n_frames = num_frames(n);
  std::map<std::string, std::vector<float>> out;
  float* logmel = nullptr;
  float* pcen = nullptr;
  if (want_log) logmel = (out["logmel"] = std::vector<float>(n_frames * n_mels)).data();
  if (want_pcen) pcen = (out["pcen"] = std::vector<float>(n_frames * n_mels)).data();

  // PCEN smoother state per mel band, in double as scipy.signal.lfilter runs it.
  const double smoother = fm::pcen_smoother_coef(p_.pcen_time_constant, p_.sr, double(p_.pcen_hop));
  std::vector<double> smooth(n_mels, fm::pcen_smoother_init());
  const fm::PcenParams pp{float(p_.pcen_gain), float(p_.pcen_bias), float(p_.pcen_power),
                          float(p_.pcen_eps)};
  // PCEN reads the mel of x * 2^32: the power spectrum scales by exactly 2^64.
  const float pcen_scale = std::ldexp(1.0f, 64);
  const float log_eps = float(p_.log_eps);
  const long long half = n_fft / 2, len = static_cast<long long>(n);

  for (size_t t0 = 0; t0 < n_frames; t0 += kBlockFrames) {
    const int block = int(std::min<size_t>(kBlockFrames, n_frames - t0));
    // Windowed frames: frame t starts at sample t*hop - n_fft/2 of the signal.
    for (int b = 0; b < block; ++b) {
      double* f = s.frames.get() + size_t(b) * n_fft;
      const long long start = static_cast<long long>(t0 + b) * p_.hop - half;
      if (start >= 0 && start + n_fft <= len) {
        window_frame(x + start, s.window.data(), n_fft, f);
      } else {
        for (int i = 0; i < n_fft; ++i) {
          long long j = fm::pad_source_index(start + i, len, p_.reflect_pad);
          f[i] = j < 0 ? 0.0 : x[j] * s.window[i];
        }
      }
    }
    fftw_execute(s.plan);  // all kBlockFrames rows; rows past `block` are ignored below
    for (int b = 0; b < block; ++b)
      power_from_half_length_fft(&s.spec[size_t(b) * (n_fft / 2)][0], n_fft / 2,
                                 s.twiddle_re.data(), s.twiddle_im.data(), s.scratch.data(),
                                 s.power_t.data() + b, kBlockFrames);
    mel_project(s.power_t.data(), block, kBlockFrames, s.filterbank.data(), nb, s.band_lo.data(),
                s.band_hi.data(), n_mels, s.mel_t.data());
    for (int b = 0; b < block; ++b)  // (n_mels, block) -> (block, n_mels)
      for (int m = 0; m < n_mels; ++m)
        s.mel[size_t(b) * n_mels + m] = s.mel_t[size_t(m) * kBlockFrames + b];
    // Same values as fm::log_mel (the GPU's formula) to about 1 ulp, for the whole block.
    if (logmel)
      log_mel_rows(s.mel.data(), size_t(block) * n_mels, log_eps, logmel + t0 * size_t(n_mels));
    if (pcen && pp.power == 0.5f && pp.bias > 0.0f) {
      pcen_sqrt_rows(s.mel.data(), block, n_mels, pcen_scale, smoother, pp, smooth.data(),
                     pcen + t0 * size_t(n_mels));
    } else if (pcen) {  // other PCEN parameters: the per-element formula as written
      for (int b = 0; b < block; ++b) {
        const float* mel = s.mel.data() + size_t(b) * n_mels;
        const size_t row = (t0 + b) * size_t(n_mels);
        for (int m = 0; m < n_mels; ++m) {
          const float e = mel[m] * pcen_scale;
          smooth[m] = fm::pcen_smoother_step(smooth[m], e, smoother);
          pcen[row + m] = fm::pcen_value(e, float(smooth[m]), pp);
        }
      }
    }
  }
  return out;
}

}  // namespace fsl
