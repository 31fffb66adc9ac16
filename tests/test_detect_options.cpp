// Detection options beyond the baseline, on hand-made feature matrices: positives as the k
// nearest shot windows (eval.pos_nearest_k) and per-file input normalisation (eval.normalise).
#include <gtest/gtest.h>

#include <cmath>

#include "detect_fixtures.hpp"
#include "fsl/cuda_frontend.hpp"  // cuda_device_available
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
  // (m + 1) / 2 per band.
  TempDir dir;
  const long n = 1500;
  std::vector<float> x(size_t(n) * kMels);
  for (long t = 0; t < n; ++t)
    for (int m = 0; m < kMels; ++m) {
      const float v = float(m + (t % 2) * (m + 1));
      x[size_t(t) * kMels + m] = v;
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
  cfg.eval.normalise = "train";  // the embedder's own statistics: told with empty vectors
  fsl::detect_with_embedder(f, cfg, e, 0);
  EXPECT_TRUE(e.mean.empty() && e.inv_std.empty());
  EXPECT_EQ(e.calls, 2);
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

TEST(DetectOptions, EncoderEmbedderOnCudaWithoutADeviceIsAnErrorNamingTheKey) {
  TempDir dir;
  fsl::Config c;
  c.features.n_mels = 16;
  c.features.embedding_dim = 512;
  fsl::Encoder reference(c.features, 1, 17, 7);
  auto ckpt = (dir / "w.safetensors").string();
  fsl::save_checkpoint(ckpt, reference);
  // auto detects on the CPU whether or not a GPU is present: EncoderInference, shared maps on.
  c.runtime.device = "auto";
  EXPECT_GT(fsl::EncoderEmbedder(c, ckpt, 0.0, 1.0).map_stride(), 0);
  if (fsl::cuda_device_available()) GTEST_SKIP() << "a CUDA device is present";
  c.runtime.device = "cuda";
  try {
    fsl::EncoderEmbedder embedder(c, ckpt, 0.0, 1.0);
    ADD_FAILURE() << "runtime.device=cuda accepted without a device";
  } catch (const fsl::Error& err) {
    const std::string what = err.what();
    EXPECT_EQ(what.rfind("runtime.device=cuda: ", 0), 0u) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
}
