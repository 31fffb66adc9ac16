#include "fsl/frontend.hpp"

#include <fftw3.h>  // double (fftw_*): the fallback STFT; the float path is frontend_lane_fft.cpp

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <mutex>
#include <new>
#include <optional>

#include "frontend_kernels.hpp"
#include "fsl/cuda_frontend.hpp"
#include "fsl/error.hpp"
#include "fsl/frontend_math.hpp"

namespace fsl {

namespace {
// FFTW's planner is not thread-safe; execution of an existing plan is.
std::mutex& fftw_planner_mutex() {
  static std::mutex mu;
  return mu;
}

// Frames per block, over which the mel projection is vectorised; a multiple of kGroupFrames.
// 32: the block's power spectra (n_bins, 32) take 66 KiB, small enough that the 8 frames' FFT
// buffer (32 KiB) stays in L1 beside them; 64 frames (131 KiB) pushes it out.
constexpr int kBlockFrames = 32;
// Frames per float FFT: one per lane of the lane FFT's 8-float vectors.
constexpr int kGroupFrames = 8;
static_assert(kBlockFrames % kGroupFrames == 0);

template <typename T>
struct FftwFree {
  void operator()(T* p) const { fftw_free(p); }
};
template <typename T>
using FftwBuffer = std::unique_ptr<T[], FftwFree<T>>;

// The hot buffers start on a cache line: an 8-float vector (32 bytes) then never straddles two
// lines (std::vector's 16-byte alignment splits every other one of a (p, 2, 8) point's loads).
template <typename T>
struct LineAligned {
  using value_type = T;
  LineAligned() = default;
  template <typename U>
  LineAligned(const LineAligned<U>&) {}
  T* allocate(size_t n) {
    return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(64)));
  }
  void deallocate(T* p, size_t) { ::operator delete(p, std::align_val_t(64)); }
  bool operator==(const LineAligned&) const { return true; }
};
using AlignedFloats = std::vector<float, LineAligned<float>>;

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

// A mel band of a float-STFT frame is trusted when its power is at least this fraction of the
// frame's mean bin power (energy, from power_from_lane_fft) times the band's filter weight sum;
// else the frame is redone in double. Why: the float FFT's rounding error in each bin is noise
// of about 1e-7 * sqrt(mean bin power) (relative to the frame's norm, not the bin's), so a band
// of mean power r * (mean bin power) has a relative error of about 2 * 3e-7 / sqrt(r): <= 2e-4
// here (measured: see tests/test_frontend_stft.cpp). PCEN divides each band by its own smoothed
// history, so it passes such relative errors of quiet bands straight to its output.
constexpr float kFloatFloor = 1e-5f;

struct Frontend::Impl {
  int nb = 0;
  AlignedFloats window_f;  // (n_fft) periodic Hann
  std::vector<double> window_d;
  std::vector<float> twiddle_re_f, twiddle_im_f;  // (n_fft/2) cos, -sin of 2 pi k / n_fft
  std::vector<double> twiddle_re_d, twiddle_im_d;
  std::vector<float> filterbank;  // (n_mels, nb)
  // Each mel triangle is non-zero on bins [band_lo[m], band_hi[m]) only: projecting over that
  // range does ~2 MACs per bin instead of n_mels (a dense sgemm: 3.3 us/frame; see mel_project).
  std::vector<int> band_lo, band_hi;
  std::vector<float> band_weight;               // (n_mels) sum of each band's filter weights
  std::optional<fe_kernels::MelRuns> mel_runs;  // where the filterbank has that shape
  // Float STFT of a group of 8 frames (fe_kernels::lane_fft): frames read as n_fft/2 complex
  // numbers (real parts = even samples, imaginary parts = odd samples), frame j in lane j.
  std::unique_ptr<fe_kernels::LaneFftPlan> lane_plan;
  AlignedFloats lanes;            // (n_fft/2, 2, 8)
  AlignedFloats ring;             // (ring_rows, 8): the lanes' input rows (fill_ring_rows)
  std::vector<float> edge_row;    // (n_fft): a double frame that reaches past the signal, padded
  std::vector<float> energy;      // (kBlockFrames) each frame's mean bin power
  std::vector<float> power_d;     // (nb): a fallback frame's spectrum
  std::vector<int> needs_double;  // (kBlockFrames)
  // Double STFT of one frame (n_fft), (n_fft/2).
  FftwBuffer<double> frame_d;
  FftwBuffer<fftw_complex> spec_d;
  std::vector<double> scratch_d;  // (2, n_fft/2)
  // (kBlockFrames / 8, nb, 8): each group's 8 spectra together, frames as columns within it,
  // so that a group's split writes 16 KiB of whole cache lines (a (nb, kBlockFrames) layout
  // touched 32 KiB of lines per group: with the 32 KiB FFT buffer, more than L1 holds).
  AlignedFloats power_g;
  AlignedFloats mel_t;     // (n_mels, kBlockFrames)
  std::vector<float> mel;  // (kBlockFrames, n_mels) PCEN's input rows
  fftw_plan plan_d = nullptr;
};

Frontend::Frontend(const FrontendParams& p) : FeatureExtractor(p), impl_(std::make_unique<Impl>()) {
  if (p.n_fft < 2 || p.n_fft % 2 || p.hop <= 0 || p.n_mels <= 0 || p.sr <= 0)
    fail("front end: invalid parameters (n_fft ", p.n_fft, ", hop ", p.hop, ", n_mels ", p.n_mels,
         ")");
  Impl& s = *impl_;
  s.nb = p.n_bins();
  s.window_d.resize(p.n_fft);
  s.window_f.resize(p.n_fft);
  for (int i = 0; i < p.n_fft; ++i) {
    s.window_d[i] = fm::hann_periodic(i, p.n_fft);
    s.window_f[i] = float(s.window_d[i]);
  }
  const int h = p.n_fft / 2;
  s.twiddle_re_d.resize(h);
  s.twiddle_im_d.resize(h);
  for (int k = 0; k < h; ++k) {
    const double a = 2.0 * 3.14159265358979323846 * k / p.n_fft;
    s.twiddle_re_d[k] = std::cos(a);
    s.twiddle_im_d[k] = -std::sin(a);
  }
  s.twiddle_re_f.assign(s.twiddle_re_d.begin(), s.twiddle_re_d.end());
  s.twiddle_im_f.assign(s.twiddle_im_d.begin(), s.twiddle_im_d.end());
  s.filterbank = mel_filterbank(p);
  s.band_lo.assign(p.n_mels, 0);
  s.band_hi.assign(p.n_mels, 0);
  s.band_weight.assign(p.n_mels, 0.0f);
  for (int m = 0; m < p.n_mels; ++m) {
    const float* w = s.filterbank.data() + size_t(m) * s.nb;
    int lo = 0, hi = s.nb;
    while (lo < hi && w[lo] == 0.0f) ++lo;
    while (hi > lo && w[hi - 1] == 0.0f) --hi;
    s.band_lo[m] = lo;
    s.band_hi[m] = hi;
    for (int k = lo; k < hi; ++k) s.band_weight[m] += w[k];
  }
  s.mel_runs = fe_kernels::MelRuns::make(s.filterbank.data(), p.n_mels, s.nb);
  if (fe_kernels::LaneFftPlan::supports(h))
    s.lane_plan = std::make_unique<fe_kernels::LaneFftPlan>(h);
  s.lanes.resize(size_t(h) * 2 * kGroupFrames);
  // A power of two > n_fft + 7 rows: a group's n_fft rows plus the 8 being written.
  s.ring.resize(std::bit_ceil(size_t(p.n_fft) + 8) * kGroupFrames);
  s.edge_row.resize(p.n_fft);
  s.energy.resize(kBlockFrames);
  s.needs_double.resize(kBlockFrames);
  s.power_d.resize(s.nb);
  s.frame_d = fftw_alloc<double>(p.n_fft);
  s.spec_d = fftw_alloc<fftw_complex>(h);
  s.scratch_d.resize(2 * size_t(h));
  s.power_g.resize(size_t(kBlockFrames) * s.nb);
  s.mel_t.assign(size_t(kBlockFrames) * p.n_mels, 0.0f);
  s.mel.resize(size_t(kBlockFrames) * p.n_mels);
  std::lock_guard<std::mutex> lock(fftw_planner_mutex());
  // FFTW_ESTIMATE: deterministic plan choice, so features are bit-identical run to run.
  s.plan_d = fftw_plan_dft_1d(h, reinterpret_cast<fftw_complex*>(s.frame_d.get()), s.spec_d.get(),
                              FFTW_FORWARD, FFTW_ESTIMATE);
  if (!s.plan_d) fail("front end: FFTW could not plan a complex FFT of size ", h);
}

Frontend::~Frontend() {
  if (!impl_) return;
  std::lock_guard<std::mutex> lock(fftw_planner_mutex());
  if (impl_->plan_d) fftw_destroy_plan(impl_->plan_d);
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

namespace {
// The n_fft samples of the frame that starts at x[start]: x + start itself where the frame lies
// inside the signal, else a padded copy in f (centre padding: zeros, or numpy's reflection).
const float* frame_at(const float* x, long long len, long long start, int n_fft, bool reflect,
                      float* f) {
  if (start >= 0 && start + n_fft <= len) return x + start;
  for (int i = 0; i < n_fft; ++i) {
    const long long j = fm::pad_source_index(start + i, len, reflect);
    f[i] = j < 0 ? 0.0f : x[j];
  }
  return f;
}

}  // namespace

std::map<std::string, std::vector<float>> FeatureExtractor::compute(
    const float* x, size_t n, const std::vector<std::string>& types) {
  const auto req = parse_requested_types(types, name());
  const size_t size = num_frames(n) * size_t(p_.n_mels);
  std::map<std::string, std::vector<float>> out;
  float* logmel = req.logmel ? (out["logmel"] = std::vector<float>(size)).data() : nullptr;
  float* pcen = req.pcen ? (out["pcen"] = std::vector<float>(size)).data() : nullptr;
  compute_into(x, n, types, logmel, pcen);
  return out;
}

void Frontend::compute_into(const float* x, size_t n, const std::vector<std::string>& types,
                            float* logmel, float* pcen) {
  if (n == 0) fail("front end: empty signal");
  const auto req = parse_requested_types(types, "front end");
  if ((req.logmel && !logmel) || (req.pcen && !pcen))
    fail("front end: no output for a requested type");
  if (!req.logmel) logmel = nullptr;
  if (!req.pcen) pcen = nullptr;
  Impl& s = *impl_;
  const int n_fft = p_.n_fft, h = n_fft / 2, nb = s.nb, n_mels = p_.n_mels;
  const size_t n_frames = num_frames(n);
  const float log_eps = float(p_.log_eps);
  const long long len = static_cast<long long>(n);
  double_frames_ = 0;

  // The frames are cut into 8 runs of frames_per_lane consecutive frames, run j in lane j: group
  // c holds frames c + j frames_per_lane, j < 8, read from rows [c hop, c hop + n_fft) of the
  // ring (fe_kernels::fill_ring_rows), so each group costs hop new rows, not 8 frames' transposes.
  // A block is kBlockFrames / 8 consecutive groups; column b of a block is lane b % 8 of its group
  // b / 8. Frames past n_frames (the last lanes' runs may be short) are computed and dropped.
  const long long frames_per_lane =
      (static_cast<long long>(n_frames) + kGroupFrames - 1) / kGroupFrames;
  const long long lane_offset = frames_per_lane * p_.hop;
  auto project_mel = [&](int block) {  // mel_t = the block's mel bands
    if (s.mel_runs)
      fe_kernels::mel_project_runs(s.power_g.data(), block, kBlockFrames, *s.mel_runs, nb,
                                   s.mel_t.data());
    else
      fe_kernels::mel_project(s.power_g.data(), block, kBlockFrames, s.filterbank.data(), nb,
                              s.band_lo.data(), s.band_hi.data(), n_mels, s.mel_t.data());
  };
  auto frame_of = [&](long long c0, int b) {
    return c0 + b / kGroupFrames + (b % kGroupFrames) * frames_per_lane;
  };
  auto in_signal = [&](long long c0, int b) {  // column b is a frame, not past the last
    return frame_of(c0, b) < static_cast<long long>(n_frames);
  };
  // The float STFT needs n_fft / 2 a power of two (the lane FFT); else every frame is double.
  const bool float_stft = p_.stft != StftPath::double_only && s.lane_plan;
  long long ring_filled = 0;  // rows [0, ring_filled) have been written to the ring
  const int ring_rows = int(s.ring.size() / kGroupFrames);

  for (long long c0 = 0; c0 < frames_per_lane; c0 += kBlockFrames / kGroupFrames) {
    const int block =
        int(std::min<long long>(kBlockFrames / kGroupFrames, frames_per_lane - c0)) * kGroupFrames;
    for (int b = 0; b < block; ++b) s.needs_double[b] = !float_stft && in_signal(c0, b);
    if (float_stft) {
      for (int g = 0; g < block; g += kGroupFrames) {
        const long long start = (c0 + g / kGroupFrames) * p_.hop;  // the group's first row
        if (ring_filled < start + n_fft) {  // the rows this group needs, 8 at a time
          // (rows between groups, where hop > n_fft, are skipped)
          const long long from = std::max(ring_filled, start / 8 * 8);
          const long long upto = (start + n_fft + 7) / 8 * 8;
          fe_kernels::fill_ring_rows(x, len, h, p_.reflect_pad, lane_offset, from, upto,
                                     s.ring.data(), ring_rows);
          ring_filled = upto;
        }
        if (s.lane_plan->fuses_window()) {
          fe_kernels::lane_fft_from_ring(*s.lane_plan, s.ring.data(), ring_rows, start,
                                         s.window_f.data(), s.lanes.data());
        } else {
          fe_kernels::window_ring_8(s.ring.data(), ring_rows, start, s.window_f.data(), n_fft,
                                    s.lane_plan->position.data(), s.lanes.data());
          fe_kernels::lane_fft(*s.lane_plan, s.lanes.data());
        }
        fe_kernels::power_from_lane_fft(s.lanes.data(), h, s.twiddle_re_f.data(),
                                        s.twiddle_im_f.data(), s.power_g.data() + size_t(g) * nb,
                                        kGroupFrames, s.energy.data() + g);
      }
      project_mel(block);
      if (p_.stft == StftPath::automatic) {
        fe_kernels::flag_imprecise_frames(s.mel_t.data(), block, kBlockFrames, n_mels,
                                          s.band_weight.data(), s.energy.data(), kFloatFloor,
                                          s.needs_double.data());
        for (int b = 0; b < block; ++b)  // frames past the end are never redone
          s.needs_double[b] &= in_signal(c0, b);
      }
    }
    bool any_double = false;
    for (int b = 0; b < block; ++b) {  // the double STFT, one frame (column b) at a time
      if (!s.needs_double[b]) continue;
      fe_kernels::window_frame(
          frame_at(x, len, frame_of(c0, b) * p_.hop - h, n_fft, p_.reflect_pad, s.edge_row.data()),
          s.window_d.data(), n_fft, s.frame_d.get());
      fftw_execute(s.plan_d);
      fe_kernels::power_from_half_length_fft(&s.spec_d[0][0], h, s.twiddle_re_d.data(),
                                             s.twiddle_im_d.data(), s.scratch_d.data(),
                                             s.power_d.data());
      float* column =  // frame b's spectrum: a column of its group's (nb, 8)
          s.power_g.data() + size_t(b / kGroupFrames) * nb * kGroupFrames + b % kGroupFrames;
      for (int k = 0; k < nb; ++k) column[size_t(k) * kGroupFrames] = s.power_d[k];
      any_double = true;
      ++double_frames_;
    }
    // Every column again: a column's sums do not depend on the others.
    if (any_double || !float_stft) project_mel(block);
    // Each group's 8 columns to their frames' rows: the mel itself to pcen, which the smoother
    // pass below turns into PCEN in frame order; then, in place, its log to logmel.
    auto scatter = [&](float* base) {
      for (int g = 0; g < block; g += kGroupFrames) {
        float* rows[kGroupFrames];
        for (int j = 0; j < kGroupFrames; ++j)
          rows[j] = in_signal(c0, g + j) ? base + size_t(frame_of(c0, g + j)) * n_mels : nullptr;
        fe_kernels::scatter_8_columns(s.mel_t.data(), kBlockFrames, n_mels, g, rows);
      }
    };
    if (pcen) scatter(pcen);
    if (logmel) {  // the same values as fm::log_mel (the GPU's formula) to about 1 ulp
      if (block == kBlockFrames)
        fe_kernels::log_mel_in_place(s.mel_t.data(), size_t(n_mels) * kBlockFrames, log_eps);
      else  // only the block's columns: the others hold an earlier block's logs (negative)
        for (int m = 0; m < n_mels; ++m)
          fe_kernels::log_mel_in_place(s.mel_t.data() + size_t(m) * kBlockFrames, block, log_eps);
      scatter(logmel);
    }
  }
  if (pcen) pcen_from_mel(pcen, n_frames);
}

// PCEN in place over (n_frames, n_mels) mel rows, in frame order: the smoother carries each
// band's state from frame to frame. Rows go through s.mel, kBlockFrames at a time.
void Frontend::pcen_from_mel(float* rows, size_t n_frames) {
  Impl& s = *impl_;
  const int n_mels = p_.n_mels;
  // PCEN smoother state per mel band, in double as scipy.signal.lfilter runs it.
  const double smoother = fm::pcen_smoother_coef(p_.pcen_time_constant, p_.sr, double(p_.pcen_hop));
  std::vector<double> smooth(n_mels, fm::pcen_smoother_init());
  std::vector<float> smooth_f(n_mels), agc(n_mels);
  const fm::PcenParams pp{float(p_.pcen_gain), float(p_.pcen_bias), float(p_.pcen_power),
                          float(p_.pcen_eps)};
  // PCEN reads the mel of x * 2^32: the power spectrum scales by exactly 2^64.
  const float pcen_scale = std::ldexp(1.0f, 64);
  for (size_t t0 = 0; t0 < n_frames; t0 += kBlockFrames) {
    const int block = int(std::min<size_t>(kBlockFrames, n_frames - t0));
    float* pcen = rows + t0 * size_t(n_mels);
    std::copy(pcen, pcen + size_t(block) * n_mels, s.mel.data());
    if (pp.power == 0.5f && pp.bias > 0.0f) {
      fe_kernels::pcen_sqrt_rows(s.mel.data(), block, n_mels, pcen_scale, smoother, pp,
                                 smooth.data(), smooth_f.data(), agc.data(), pcen);
    } else {  // other PCEN parameters: the per-element formula as written
      for (int b = 0; b < block; ++b) {
        const float* mel = s.mel.data() + size_t(b) * n_mels;
        for (int m = 0; m < n_mels; ++m) {
          const float e = mel[m] * pcen_scale;
          smooth[m] = fm::pcen_smoother_step(smooth[m], e, smoother);
          pcen[size_t(b) * n_mels + m] = fm::pcen_value(e, float(smooth[m]), pp);
        }
      }
    }
  }
}

std::unique_ptr<FeatureExtractor> make_feature_extractor(const std::string& device,
                                                         const FrontendParams& p) {
  if (device == "cuda") return std::make_unique<CudaFrontend>(p);
  if (device != "cpu") fail("front end device '", device, "': expected cpu or cuda");
  return std::make_unique<Frontend>(p);
}

}  // namespace fsl
