// The front end's float STFT against its double STFT (StftPath::double_only, itself checked
// against librosa in test_frontend.cpp), and the per-frame fallback from float to double.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "fsl/frontend.hpp"
#include "testutil.hpp"

using fsl::test::relative_frobenius;

namespace {

std::map<std::string, std::vector<float>> features(const std::vector<float>& x, fsl::StftPath path,
                                                   size_t* double_frames = nullptr) {
  fsl::FrontendParams p;
  p.stft = path;
  fsl::Frontend fe(p);
  auto out = fe.compute(x.data(), x.size(), {"logmel", "pcen"});
  if (double_frames) *double_frames = fe.double_frames();
  return out;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(double(a[i]) - double(b[i])));
  return m;
}

// Ordinary audio: a chirp in noise (the benchmark's signal, 3 s), white noise, and a
// 200 Hz harmonic series under a syllable-rate envelope, each at 22050 Hz.
std::vector<std::vector<float>> ordinary_signals() {
  std::mt19937 rng(11);
  std::normal_distribution<float> noise(0.f, 1.f);
  const size_t n = 3 * 22050;
  std::vector<float> chirp(n), white(n), voiced(n);
  for (size_t i = 0; i < n; ++i) {
    const double t = double(i) / 22050;
    chirp[i] = float(0.5 * std::sin(2 * M_PI * (300 + 0.01 * double(i)) * t)) + 0.05f * noise(rng);
    white[i] = 0.3f * noise(rng);
    double v = 0;
    for (int k = 1; k <= 20; ++k) v += std::sin(2 * M_PI * 200 * k * t) / k;
    voiced[i] = float(0.2 * v * (0.6 + 0.4 * std::sin(2 * M_PI * 4 * t))) + 0.01f * noise(rng);
  }
  return {chirp, white, voiced};
}

}  // namespace

TEST(FrontendStft, FloatPathMatchesDoublePathOnOrdinaryAudio) {
  for (const auto& x : ordinary_signals()) {
    size_t fallback = 0;
    auto got = features(x, fsl::StftPath::automatic, &fallback);
    auto want = features(x, fsl::StftPath::double_only);
    auto float_only = features(x, fsl::StftPath::float_only);
    // No frame of ordinary audio needs the double STFT, so this compares float with double.
    EXPECT_EQ(fallback, 0u);
    EXPECT_EQ(got["logmel"], float_only["logmel"]);
    // logmel is log(power): an absolute error e is a relative power error e. PCEN outputs are
    // O(1); its relative error follows the bands' relative power errors.
    const double log_err = max_abs_diff(got["logmel"], want["logmel"]);
    const double pcen_rel = relative_frobenius(got["pcen"], want["pcen"]);
    EXPECT_LE(log_err, 2e-4);
    EXPECT_LE(relative_frobenius(got["logmel"], want["logmel"]), 1e-6);
    EXPECT_LE(pcen_rel, 1e-5);
    std::printf("float vs double: logmel max abs %.2e, pcen rel. Frobenius %.2e\n", log_err,
                pcen_rel);
  }
}

// Half a second of white noise, then a loud 1 kHz tone with a tone 120 dB weaker at 6 kHz:
// in the tones' frames the bands away from both tones hold only the Hann window's far
// side lobes, more than 100 dB below the frame's power, where float rounding noise (~1e-7 of
// the frame's norm per bin) would dominate. Those frames must take the double STFT.
TEST(FrontendStft, FramesWithHugeDynamicRangeFallBackToDouble) {
  const size_t n_noise = 11025, n = 3 * 22050;
  std::mt19937 rng(5);
  std::normal_distribution<float> noise(0.f, 0.3f);
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i) {
    const double t = double(i) / 22050;
    x[i] = i < n_noise ? noise(rng)
                       : float(std::sin(2 * M_PI * 1000 * t) + 1e-6 * std::sin(2 * M_PI * 6000 * t));
  }
  size_t fallback = 0;
  auto got = features(x, fsl::StftPath::automatic, &fallback);
  auto want = features(x, fsl::StftPath::double_only);
  auto float_only = features(x, fsl::StftPath::float_only);
  const size_t hop = 256, frames = 1 + n / hop;
  // Noise frames (entirely before the tones) stay float; tone frames (entirely after, and
  // before the signal's end, where the cut spreads the tone over every band) fall back.
  const size_t first_tone_frame = (n_noise + 512 + hop - 1) / hop;
  const size_t last_noise_frame = (n_noise - 512) / hop, last_tone_frame = (n - 512) / hop;
  EXPECT_GE(fallback, last_tone_frame + 1 - first_tone_frame);
  EXPECT_LE(fallback, frames - last_noise_frame - 1);
  // Fallback frames are the double STFT's, bit for bit; the other frames are within the float
  // tolerance of the test above.
  const int n_mels = 128;
  for (size_t t = first_tone_frame; t <= last_tone_frame; ++t)
    for (int m = 0; m < n_mels; ++m) {
      ASSERT_EQ(got["logmel"][t * n_mels + m], want["logmel"][t * n_mels + m]) << t << " " << m;
    }
  EXPECT_LE(max_abs_diff(got["logmel"], want["logmel"]), 2e-4);
  EXPECT_LE(relative_frobenius(got["pcen"], want["pcen"]), 1e-5);
  // Without the fallback the weak bands are wrong: PCEN (which normalises each band by its own
  // history, and has no log eps floor) passes the float STFT's error straight through.
  double float_err = 0, auto_err = 0;
  for (size_t i = 0; i < want["pcen"].size(); ++i) {
    const double w = want["pcen"][i];
    float_err = std::max(float_err, std::abs(float_only["pcen"][i] - w) / std::abs(w));
    auto_err = std::max(auto_err, std::abs(got["pcen"][i] - w) / std::abs(w));
  }
  EXPECT_GT(float_err, 1e-2);
  EXPECT_LE(auto_err, 1e-4);
  std::printf("fallback %zu of %zu frames; pcen max relative error: float-only %.3g, automatic "
              "%.3g\n", fallback, frames, float_err, auto_err);
  // The choice depends on the frame only: logmel alone equals logmel computed with pcen.
  fsl::Frontend fe(fsl::FrontendParams{});
  EXPECT_EQ(fe.compute(x.data(), x.size(), {"logmel"})["logmel"], got["logmel"]);
  EXPECT_EQ(fe.compute(x.data(), x.size(), {"pcen"})["pcen"], got["pcen"]);
}

// The float STFT puts 8 runs of consecutive frames in its 8 lanes and writes each frame's row
// back in order: every length (fewer frames than lanes, runs of unequal fill), both paddings,
// FFT sizes with the fused and the separate window step, and hops that do and do not divide
// n_fft or exceed it, against the double STFT frame by frame.
TEST(FrontendStft, EveryFrameLandsInItsRowAtEveryLength) {
  std::mt19937 rng(5);
  std::normal_distribution<float> noise(0.f, 1.f);
  for (int n_fft : {1024, 512, 128})
    for (int hop : {256, 100, 37, 1500})
      for (bool reflect : {false, true})
        for (size_t n : {size_t(1), size_t(100), size_t(1023), size_t(2047),
                         size_t(8 * 256 * 5 + 3), size_t(22050 + 17)}) {
          SCOPED_TRACE(testing::Message() << "n_fft " << n_fft << " hop " << hop << " reflect "
                                          << reflect << " n " << n);
          std::vector<float> x(n);
          for (size_t i = 0; i < n; ++i)  // a chirp in noise: every frame differs from the next
            x[i] = float(0.5 * std::sin(2 * M_PI * (300 + 0.05 * double(i)) * double(i) / 22050)) +
                   0.05f * noise(rng);
          fsl::FrontendParams p;
          p.n_fft = n_fft;
          p.hop = hop;
          p.pcen_hop = hop;
          p.n_mels = n_fft == 128 ? 20 : 64;
          p.reflect_pad = reflect;
          fsl::Frontend fe(p);
          auto got = fe.compute(x.data(), n, {"logmel", "pcen"});
          p.stft = fsl::StftPath::double_only;
          fsl::Frontend fe_double(p);
          auto want = fe_double.compute(x.data(), n, {"logmel", "pcen"});
          ASSERT_EQ(got["logmel"].size(), fe.num_frames(n) * p.n_mels);
          // A frame in another frame's row differs by whole units of log power.
          EXPECT_LT(max_abs_diff(got["logmel"], want["logmel"]), 2e-3);
          EXPECT_LT(relative_frobenius(got["pcen"], want["pcen"]), 1e-3);
        }
}
