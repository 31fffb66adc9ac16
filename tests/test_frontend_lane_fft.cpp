// The float STFT's lane FFT (8 frames, one per vector lane; src/frontend_lane_fft.cpp) against
// FFTW in double on random frames: the complex DFTs, the frames' energies and the power spectra.
#include <fftw3.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <random>
#include <vector>

#include "../src/frontend_kernels.hpp"
#include "fsl/frontend.hpp"

namespace fk = fsl::fe_kernels;

namespace {

// Length-h forward DFT of z in double (FFTW).
std::vector<std::complex<double>> dft_double(const std::vector<std::complex<double>>& z) {
  const int h = int(z.size());
  std::vector<std::complex<double>> in(z), out(h);
  fftw_plan p =
      fftw_plan_dft_1d(h, reinterpret_cast<fftw_complex*>(in.data()),
                       reinterpret_cast<fftw_complex*>(out.data()), FFTW_FORWARD, FFTW_ESTIMATE);
  fftw_execute(p);
  fftw_destroy_plan(p);
  return out;
}

}  // namespace

TEST(FrontendLaneFft, MatchesDoubleFftOnRandomFrames) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> uniform(-1.f, 1.f);
  for (int h : {8, 16, 32, 64, 128, 256, 512, 1024}) {
    SCOPED_TRACE(h);
    const int n = 2 * h;
    fk::LaneFftPlan plan(h);
    ASSERT_TRUE(fk::LaneFftPlan::supports(h));
    // A window that is not all ones, and 8 frames of different loudness (1e-3 .. 1).
    std::vector<float> window(n), frames(size_t(8) * n);
    for (int i = 0; i < n; ++i) window[i] = 0.5f + 0.5f * uniform(rng);
    for (int j = 0; j < 8; ++j)
      for (int i = 0; i < n; ++i)
        frames[size_t(j) * n + i] = std::pow(10.f, -j / 2.5f) * uniform(rng);
    const float* rows[8];
    for (int j = 0; j < 8; ++j) rows[j] = frames.data() + size_t(j) * n;
    std::vector<float> lanes(size_t(h) * 16), energy(8), power(size_t(h + 1) * 8);
    fk::window_frames_8(rows, window.data(), n, plan.position.data(), lanes.data(), energy.data());
    fk::lane_fft(plan, lanes.data());
    std::vector<float> tw_re(h), tw_im(h);
    for (int k = 0; k < h; ++k) {
      tw_re[k] = float(std::cos(M_PI * k / h));
      tw_im[k] = float(-std::sin(M_PI * k / h));
    }
    fk::power_from_lane_fft(lanes.data(), h, tw_re.data(), tw_im.data(), power.data(), 8);
    for (int j = 0; j < 8; ++j) {
      // The windowed frame exactly as the kernel forms it (one float product per sample).
      std::vector<std::complex<double>> z(h);
      double sum_sq = 0;
      std::vector<double> f(n);
      for (int i = 0; i < n; ++i) {
        f[i] = double(rows[j][i] * window[i]);
        sum_sq += f[i] * f[i];
      }
      for (int i = 0; i < h; ++i) z[i] = {f[2 * i], f[2 * i + 1]};
      const auto want = dft_double(z);
      // Float rounding error of an FFT: a few 1e-7 of the transform's RMS value, in every bin.
      const double rms = std::sqrt(sum_sq);  // of Z (Parseval: sum |Z|^2 = h sum |z|^2)
      double err = 0;
      for (int k = 0; k < h; ++k) {
        const std::complex<double> got(lanes[size_t(k) * 16 + j], lanes[size_t(k) * 16 + 8 + j]);
        err = std::max(err, std::abs(got - want[k]));
      }
      EXPECT_LE(err, 2e-6 * rms) << "frame " << j;
      EXPECT_NEAR(energy[j], sum_sq, 1e-6 * sum_sq) << "frame " << j;
      // |X[k]|^2 of the real frame, X[k] = sum_i f[i] exp(-2 pi i k i' / n), in double.
      const double mean_power = sum_sq;  // of X (Parseval: sum |X|^2 over n bins = n sum f^2)
      for (int k = 0; k <= h; ++k) {
        std::complex<double> x = 0;
        for (int i = 0; i < n; ++i) x += f[i] * std::polar(1.0, -2 * M_PI * double(k) * i / n);
        ASSERT_NEAR(power[size_t(k) * 8 + j], std::norm(x), 2e-5 * mean_power)
            << "frame " << j << " bin " << k;
      }
    }
  }
}

TEST(FrontendLaneFft, PositionsAreAPermutationAndSizesOtherThanPowersOfTwoAreRefused) {
  for (int h : {8, 64, 256, 512, 4096}) {
    fk::LaneFftPlan plan(h);
    std::vector<int> seen(h, 0);
    for (int p : plan.position) ++seen[p];
    EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), h) << h;
  }
  for (int h : {1, 2, 4, 6, 12, 100, 500, 513}) EXPECT_FALSE(fk::LaneFftPlan::supports(h)) << h;
}

// The float STFT needs n_fft / 2 a power of two; other sizes take the double STFT for every
// frame, so the automatic path equals double_only there.
TEST(FrontendLaneFft, OtherFftSizesTakeTheDoubleStft) {
  std::mt19937 rng(9);
  std::normal_distribution<float> noise(0.f, 0.3f);
  std::vector<float> x(22050);
  for (auto& v : x) v = noise(rng);
  fsl::FrontendParams p;
  p.n_fft = 1000;
  fsl::Frontend fe(p);
  auto got = fe.compute(x.data(), x.size(), {"logmel", "pcen"});
  EXPECT_EQ(fe.double_frames(), fe.num_frames(x.size()));
  p.stft = fsl::StftPath::double_only;
  fsl::Frontend fe_double(p);
  auto want = fe_double.compute(x.data(), x.size(), {"logmel", "pcen"});
  EXPECT_EQ(got["logmel"], want["logmel"]);
  EXPECT_EQ(got["pcen"], want["pcen"]);
  // n_fft = 1024 on the same noise: no frame needs the double STFT.
  fsl::Frontend fe_1024(fsl::FrontendParams{});
  fe_1024.compute(x.data(), x.size(), {"logmel"});
  EXPECT_EQ(fe_1024.double_frames(), 0u);
}
