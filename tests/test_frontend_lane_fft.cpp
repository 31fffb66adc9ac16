// The float STFT's lane FFT (8 frames, one per vector lane; src/frontend_lane_fft.cpp) against
// FFTW in double on random frames: the complex DFTs, the frames' energies and the power spectra.
#include <fftw3.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
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
    // The frames as ring rows (sample i of frame j in lane j of row start + i), starting near
    // the ring's end so that the frames wrap around it.
    const int ring_rows = int(std::bit_ceil(unsigned(n) + 8));
    const long long start = 3 * ring_rows - n / 2;
    std::vector<float> ring(size_t(ring_rows) * 8, std::nanf(""));
    for (int j = 0; j < 8; ++j)
      for (int i = 0; i < n; ++i)
        ring[size_t((start + i) & (ring_rows - 1)) * 8 + j] = frames[size_t(j) * n + i];
    std::vector<float> lanes(size_t(h) * 16), energy(8), power(size_t(h + 1) * 8);
    fk::window_ring_8(ring.data(), ring_rows, start, window.data(), n, plan.position.data(),
                      lanes.data());
    fk::lane_fft(plan, lanes.data());
    EXPECT_EQ(plan.fuses_window(), h == 8 || h == 64 || h == 512);
    // The fused first pass, where the plan has one (else the separate window step again).
    std::vector<float> fused = lanes;
    if (plan.fuses_window())
      fk::lane_fft_from_ring(plan, ring.data(), ring_rows, start, window.data(), fused.data());
    std::vector<float> tw_re(h), tw_im(h);
    for (int k = 0; k < h; ++k) {
      tw_re[k] = float(std::cos(M_PI * k / h));
      tw_im[k] = float(-std::sin(M_PI * k / h));
    }
    fk::power_from_lane_fft(lanes.data(), h, tw_re.data(), tw_im.data(), power.data(), 8,
                            energy.data());
    for (int j = 0; j < 8; ++j) {
      // The windowed frame exactly as the kernel forms it (one float product per sample).
      std::vector<std::complex<double>> z(h);
      double sum_sq = 0;
      std::vector<double> f(n);
      for (int i = 0; i < n; ++i) {
        f[i] = double(frames[size_t(j) * n + i] * window[i]);
        sum_sq += f[i] * f[i];
      }
      for (int i = 0; i < h; ++i) z[i] = {f[2 * i], f[2 * i + 1]};
      const auto want = dft_double(z);
      // Float rounding error of an FFT: a few 1e-7 of the transform's RMS value, in every bin.
      const double rms = std::sqrt(sum_sq);  // of Z (Parseval: sum |Z|^2 = h sum |z|^2)
      double err = 0, err_fused = 0;
      for (int k = 0; k < h; ++k) {
        const std::complex<double> got(lanes[size_t(k) * 16 + j], lanes[size_t(k) * 16 + 8 + j]);
        err = std::max(err, std::abs(got - want[k]));
        const std::complex<double> got_fused(fused[size_t(k) * 16 + j],
                                             fused[size_t(k) * 16 + 8 + j]);
        err_fused = std::max(err_fused, std::abs(got_fused - want[k]));
      }
      EXPECT_LE(err, 2e-6 * rms) << "frame " << j;
      EXPECT_LE(err_fused, 2e-6 * rms) << "frame " << j << ", fused window";
      // The mean power over the n bins (Parseval: the sum of squares), from the float spectra.
      EXPECT_NEAR(energy[j], sum_sq, 1e-5 * sum_sq) << "frame " << j;
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

// The ring rows against the padded signal written out: lane j of row r is padded sample
// r + j * lane_offset, for zero and reflect padding, rows inside x and across both ends.
TEST(FrontendLaneFft, RingRowsHoldThePaddedSignalByLanes) {
  std::vector<float> x(1000);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(i) + 0.5f;
  const long long len = 1000, pad = 64;
  for (bool reflect : {false, true})
    for (long long lane_offset : {0LL, 8LL, 120LL, 136LL}) {
      const int ring_rows = 256;
      std::vector<float> ring(size_t(ring_rows) * 8);
      const long long r0 = 0, r1 = len + 2 * pad - 7 * lane_offset + 8;  // past the end too
      for (long long a = r0; a < r1; a += 128) {  // 128 rows at a time: the ring holds 256
        const long long b = std::min(a + 128, (r1 + 7) / 8 * 8);
        fk::fill_ring_rows(x.data(), len, pad, reflect, lane_offset, a, b, ring.data(), ring_rows);
        for (long long r = a; r < b; ++r)
          for (int j = 0; j < 8; ++j) {
            const long long i = fsl::fm::pad_source_index(r + j * lane_offset - pad, len, reflect);
            ASSERT_EQ(ring[size_t(r & (ring_rows - 1)) * 8 + j], i < 0 ? 0.0f : x[i])
                << "reflect " << reflect << " offset " << lane_offset << " row " << r << " lane "
                << j;
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

// The mel projection by runs of bins (each bin's power read once, two bands at a time) against
// the band-by-band projection: the same sums in the same order, so equal bit for bit. A bin is a
// point inside at most two neighbouring triangles, so every Slaney filterbank has the runs'
// shape, even with bands narrower than a bin; a filterbank without it is refused.
TEST(FrontendLaneFft, MelRunsProjectExactlyAsBandByBand) {
  std::mt19937 rng(13);
  std::uniform_real_distribution<float> uniform(0.f, 1.f);
  struct Case {
    int n_fft, n_mels;
    double fmin, fmax;
  };
  for (const Case c : {Case{1024, 128, 50, 11025}, Case{2048, 128, 0, 8000},
                       Case{1024, 64, 300, 9000}, Case{512, 40, 50, 11025},
                       Case{256, 128, 50, 11025}}) {
    SCOPED_TRACE(testing::Message() << c.n_fft << " " << c.n_mels);
    fsl::FrontendParams p;
    p.n_fft = c.n_fft;
    p.n_mels = c.n_mels;
    p.fmin = c.fmin;
    p.fmax = c.fmax;
    const int nb = p.n_bins();
    const auto fb = fsl::mel_filterbank(p);
    const auto runs = fk::MelRuns::make(fb.data(), c.n_mels, nb);
    ASSERT_TRUE(runs.has_value());
    std::vector<int> lo(c.n_mels), hi(c.n_mels);
    for (int m = 0; m < c.n_mels; ++m) {
      int a = 0, b = nb;
      while (a < b && fb[size_t(m) * nb + a] == 0.0f) ++a;
      while (b > a && fb[size_t(m) * nb + b - 1] == 0.0f) --b;
      lo[m] = a;
      hi[m] = b;
    }
    for (int block : {32, 24, 8}) {
      std::vector<float> power(size_t(32) * nb);  // (4 groups, nb, 8), powers over 12 decades
      for (auto& v : power) v = std::pow(10.f, 12 * uniform(rng) - 6);
      std::vector<float> want(size_t(c.n_mels) * 32, -1.f), got(want);
      fk::mel_project(power.data(), block, 32, fb.data(), nb, lo.data(), hi.data(), c.n_mels,
                      want.data());
      fk::mel_project_runs(power.data(), block, 32, *runs, nb, got.data());
      for (int m = 0; m < c.n_mels; ++m)
        for (int b = 0; b < block; ++b)
          ASSERT_EQ(got[size_t(m) * 32 + b], want[size_t(m) * 32 + b])
              << "band " << m << " column " << b << " block " << block;
    }
  }
}

TEST(FrontendLaneFft, MelRunsRefuseOtherShapes) {
  const int nb = 6;
  // Bin 2 in bands 0, 1 and 2.
  std::vector<float> three(size_t(3) * nb, 0.f);
  for (int m = 0; m < 3; ++m) three[size_t(m) * nb + 2] = 1.f;
  EXPECT_FALSE(fk::MelRuns::make(three.data(), 3, nb).has_value());
  // Band 0 on bins 1 and 3 but not 2.
  std::vector<float> gap(size_t(2) * nb, 0.f);
  gap[1] = gap[3] = 1.f;
  gap[size_t(nb) + 2] = 1.f;
  EXPECT_FALSE(fk::MelRuns::make(gap.data(), 2, nb).has_value());
  // Band 1 below band 0.
  std::vector<float> order(size_t(2) * nb, 0.f);
  order[4] = 1.f;
  order[size_t(nb) + 1] = 1.f;
  EXPECT_FALSE(fk::MelRuns::make(order.data(), 2, nb).has_value());
  // Neighbouring triangles: accepted, runs by the lower band.
  std::vector<float> ok(size_t(2) * nb, 0.f);
  ok[1] = ok[2] = 1.f;
  ok[size_t(nb) + 2] = ok[size_t(nb) + 3] = 1.f;
  const auto runs = fk::MelRuns::make(ok.data(), 2, nb);
  ASSERT_TRUE(runs.has_value());
  EXPECT_EQ(runs->band, (std::vector<int>{0, 1}));
  EXPECT_EQ(runs->begin, (std::vector<int>{1, 3}));
  EXPECT_EQ(runs->end, (std::vector<int>{3, 4}));
}
