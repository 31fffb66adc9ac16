// Detection options beyond the baseline, on hand-made feature matrices: positives as the k
// nearest shot windows (eval.pos_nearest_k) and per-file input normalisation (eval.normalise).
#include <gtest/gtest.h>

#include <cmath>

#include "detect_fixtures.hpp"
#include "fsl/detect.hpp"
#include "fsl/error.hpp"
#include "fsl/model.hpp"
#include "fsl/safetensors.hpp"
#include "testutil.hpp"

using namespace fsl::test;

TEST(DetectOptions, NearestPositiveWindowsFollowATwoShapeTarget) {
  // A target with two call shapes: shots 1-3 raise bins 0..3 (A), shots 4-5 bins 4..7 (B); the
  // later calls are A, 40 frames long. Shots are 20 frames = one window each (seg 20, hop 6), the
  // background is 0, so every negative window embeds to 0 and d_neg = |A|^2 = 4. A query wholly
  // inside a later call embeds to A:
  //   prototype (mean of 3 A + 2 B) = (.6 x4, .4 x4): d_pos = 8 * .16 = 1.28, p = 4 / 5.28;
  //   k = 1 or 2 nearest shot windows are A: d_pos = 0, p = 1;
  //   k = 4: (0 + 0 + 0 + |A - B|^2 = 8) / 4 = 2, p = 4 / 6.
  TempDir dir;
  auto x = bump_matrix(2500, {kShots[0], kShots[1], kShots[2], {1200, 1240}, {1600, 1640}}, 1.f, 0.f);
  for (int i = 3; i < 5; ++i)
    for (long t = kShots[size_t(i)].begin; t < kShots[size_t(i)].end; ++t)
      for (int m = 4; m < 8; ++m) x[size_t(t) * kMels + m] = 1.f;
  auto f = write_with_shots(dir, "two_shapes", x);
  MeanOverTime embedder;
  auto cfg = test_config();
  cfg.eval.negatives = "nearest";
  cfg.eval.neg_nearest_k = 5;
  const long q0 = 920, hop = 6, seg = 20;
  auto inside_p = [&](int pos_k) {
    cfg.eval.pos_nearest_k = pos_k;
    auto r = fsl::detect_with_embedder(f, cfg, embedder, 0);
    std::vector<float> p;
    for (size_t w = 0; w < r.scores.p.size(); ++w) {
      const long t0 = q0 + long(w) * hop;
      for (long b : {1200L, 1600L})
        if (t0 >= b && t0 + seg <= b + 40) p.push_back(r.scores.p[w]);
    }
    return p;
  };
  const std::pair<int, double> cases[] = {{0, 4 / 5.28}, {1, 1.0}, {2, 1.0}, {4, 4.0 / 6.0}};
  for (auto [k, want] : cases) {
    auto p = inside_p(k);
    ASSERT_GE(p.size(), 6u) << "k " << k;
    for (float v : p) EXPECT_NEAR(v, want, 1e-6) << "pos_nearest_k " << k;
  }
}

namespace {
// Records the per-file normalisation it is given; embeds as MeanOverTime.
struct RecordingEmbedder : MeanOverTime {
  std::vector<float> mean, inv_std;
  int calls = 0;
  void set_file_normalisation(const std::vector<float>& m, const std::vector<float>& s) override {
    mean = m;
    inv_std = s;
    ++calls;
  }
};
}  // namespace

TEST(DetectOptions, FileNormalisationIsTheFilesOwnStatistics) {
  // Band m alternates between m and m + (m + 1) frame by frame: mean m + (m + 1) / 2, std
  // (m + 1) / 2 per band; "file" pools every value of the file.
  TempDir dir;
  const long n = 1500;
  std::vector<float> x(size_t(n) * kMels);
  double sum = 0, sum_sq = 0;
  for (long t = 0; t < n; ++t)
    for (int m = 0; m < kMels; ++m) {
      const float v = float(m + (t % 2) * (m + 1));
      x[size_t(t) * kMels + m] = v;
      sum += v;
      sum_sq += double(v) * v;
    }
  auto f = write_with_shots(dir, "stats", x);
  auto cfg = test_config();
  RecordingEmbedder e;
  cfg.eval.normalise = "file_band";
  fsl::detect_with_embedder(f, cfg, e, 0);
  ASSERT_EQ(e.mean.size(), size_t(kMels));
  for (int m = 0; m < kMels; ++m) {
    EXPECT_NEAR(e.mean[size_t(m)], m + (m + 1) / 2.0, 1e-5) << "band " << m;
    EXPECT_NEAR(e.inv_std[size_t(m)], 2.0 / (m + 1), 1e-5) << "band " << m;
  }
  cfg.eval.normalise = "file";
  fsl::detect_with_embedder(f, cfg, e, 0);
  const double count = double(n) * kMels, mean = sum / count;
  const double sd = std::sqrt(sum_sq / count - mean * mean);
  ASSERT_EQ(e.mean.size(), size_t(kMels));
  for (int m = 0; m < kMels; ++m) {
    EXPECT_NEAR(e.mean[size_t(m)], mean, 1e-5);
    EXPECT_NEAR(e.inv_std[size_t(m)], 1.0 / sd, 1e-6);
  }
  cfg.eval.normalise = "train";  // the embedder's own statistics: told with empty vectors
  fsl::detect_with_embedder(f, cfg, e, 0);
  EXPECT_TRUE(e.mean.empty() && e.inv_std.empty());
  EXPECT_EQ(e.calls, 3);
}

TEST(DetectOptions, EncoderEmbedderAppliesAndClearsTheFileNormalisation) {
  TempDir dir;
  fsl::Config c;
  const int B = 2, T = 17, M = 16;
  c.features.n_mels = M;
  c.features.embedding_dim = 512;
  fsl::Encoder reference(c.features, B, T, 7);
  auto ckpt = (dir / "w.safetensors").string();
  fsl::save_checkpoint(ckpt, reference);
  fsl::EncoderEmbedder embedder(c, ckpt, 2.0, 4.0);
  std::vector<float> x(size_t(B) * T * M), mean(M), inv_std(M);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float((i * 7919) % 97) / 9.f - 4.f;
  for (int m = 0; m < M; ++m) {
    mean[size_t(m)] = 0.25f * float(m) - 1.f;
    inv_std[size_t(m)] = 1.f / (1.f + 0.1f * float(m));
  }
  auto expect_matches = [&](auto normalise) {
    std::vector<float> z(x.size()), got(size_t(B) * embedder.dim()), want(got.size());
    for (size_t i = 0; i < x.size(); ++i) z[i] = normalise(x[i], int(i % M));
    embedder.embed(x.data(), B, T, M, got.data());
    reference.forward(z.data(), B, T, false, want.data());
    for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-4) << "i " << i;
  };
  embedder.set_file_normalisation(mean, inv_std);
  expect_matches([&](float v, int m) { return (v - mean[size_t(m)]) * inv_std[size_t(m)]; });
  embedder.set_file_normalisation({}, {});
  expect_matches([](float v, int) { return (v - 2.f) / 4.f; });
}

TEST(DetectOptions, ShotCalibratedThresholdByHand) {
  // D = 1. Shots: 1.0 (shot 0), 0.8 (shot 1). Negatives (value @ start): 0 @ 0, 0.2 @ 100,
  // 0.4 @ 200, 0 @ 5 (overlaps the first with seg 20). neg_k = 1, pos_k = 0.
  // Shot windows, leave one shot out: 1.0 -> d_pos .04, nearest negative .4 -> d_neg .36, p .9;
  // 0.8 -> d_pos .04, d_neg .16, p .8. Mean .85.
  // Negatives against the prototype .9, nearest non-overlapping negative: 0 @ 0 -> .2 @ 100
  // (not 0 @ 5: it overlaps) d_neg .04, d_pos .81, p .04/.85; .2 -> .04/.53; .4 -> .04/.29;
  // 0 @ 5 -> .04/.85. Threshold = (.85 + mean of those) / 2.
  fsl::detail::CalibrationWindows w;
  w.pos_rows = {1.0f, 0.8f};
  w.pos_shot = {0, 1};
  w.neg_rows = {0.0f, 0.2f, 0.4f, 0.0f};
  w.neg_start = {0, 100, 200, 5};
  const double neg_mean = (0.04 / 0.85 + 0.04 / 0.53 + 0.04 / 0.29 + 0.04 / 0.85) / 4;
  EXPECT_NEAR(fsl::detail::shot_calibrated_threshold(w, 1, 20, 1, 0), (0.85 + neg_mean) / 2, 1e-6);
  // One distinct shot: nothing to leave out, the neutral 0.5.
  w.pos_shot = {0, 0};
  EXPECT_EQ(fsl::detail::shot_calibrated_threshold(w, 1, 20, 1, 0), 0.5);
  // Rows that do not match the counts are an error, not a read past the end.
  w.neg_start.pop_back();
  EXPECT_THROW(fsl::detail::shot_calibrated_threshold(w, 1, 20, 1, 0), fsl::Error);
}

TEST(DetectOptions, CalibrationShiftsEveryScoreOfAFileAlike) {
  // On the bump file, calibrate = shots moves each p by the same 0.5 - threshold (clamped to
  // [0, 1]); the config refuses it without nearest negatives.
  TempDir dir;
  auto x = bump_matrix(2500, all_bumps(), 1.f, 0.2f);
  auto f = write_with_shots(dir, "calibrate", x);
  MeanOverTime embedder;
  auto cfg = test_config();
  cfg.eval.negatives = "nearest";
  auto plain = fsl::detect_with_embedder(f, cfg, embedder, 0);
  cfg.eval.calibrate = "shots";
  auto shifted = fsl::detect_with_embedder(f, cfg, embedder, 0);
  ASSERT_EQ(plain.scores.p.size(), shifted.scores.p.size());
  double shift = 0;
  bool have = false;
  for (size_t i = 0; i < plain.scores.p.size(); ++i) {
    const double a = plain.scores.p[i], b = shifted.scores.p[i];
    if (b <= 0 || b >= 1) continue;  // clamped
    if (!have) shift = b - a, have = true;
    EXPECT_NEAR(b - a, shift, 1e-6) << "window " << i;
  }
  ASSERT_TRUE(have);
  EXPECT_GT(std::fabs(shift), 1e-4);  // the file's own threshold is not exactly 0.5
  EXPECT_THROW(fsl::Config::from_string("eval:\n  calibrate: shots\n  negatives: prototypes\n"),
               fsl::Error);
}
