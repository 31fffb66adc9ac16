// EncoderInference (detection's eval forward: BN folded, padded planes, threads over windows)
// against the reference encoder run in double with the same weights and running statistics,
// over the configurations and window lengths detection meets; threads change no bit.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "fsl/error.hpp"
#include "fsl/model.hpp"
#include "fsl/model_infer.hpp"

using namespace fsl;

namespace {

// Random weights, and BN running statistics / affine parameters far from the identity, so a
// wrong fold shows. The same values go into the float and the double encoder.
void randomise(Encoder& f, EncoderT<double>& d, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::uniform_real_distribution<double> uni(0.5, 2.0);
  auto sf = f.state();
  auto sd = d.state();
  ASSERT_EQ(sf.size(), sd.size());
  for (size_t i = 0; i < sf.size(); ++i) {
    ASSERT_EQ(sf[i].name, sd[i].name);
    if (sf[i].dtype == DType::i64) continue;
    const std::string& n = sf[i].name;
    const bool bn = n.find(".bn") != std::string::npos || n.find("downsample.1") != std::string::npos;
    const int64_t fan_in = sf[i].shape.size() > 1 ? sf[i].numel() / sf[i].shape[0] : 1;
    for (int64_t k = 0; k < sf[i].numel(); ++k) {
      double v;
      if (n.ends_with("running_var"))
        v = uni(rng);
      else if (n.ends_with("running_mean"))
        v = 0.3 * normal(rng);
      else if (bn)
        v = n.ends_with("weight") ? uni(rng) : 0.2 * normal(rng);
      else if (n.ends_with("bias"))
        v = 0.1 * normal(rng);
      else
        v = normal(rng) * std::sqrt(2.0 / double(fan_in));
      static_cast<float*>(sf[i].data)[k] = float(v);
      static_cast<double*>(sd[i].data)[k] = double(float(v));
    }
  }
}

struct Case {
  const char* name;
  int n_mels, frames, B;
  bool relu, bias, layer4;
};

void check(const Case& c) {
  SCOPED_TRACE(c.name);
  FeaturesConfig cfg;
  cfg.n_mels = c.n_mels;
  cfg.non_linearity = c.relu ? "relu" : "leaky_relu";
  cfg.with_bias = c.bias;
  cfg.layer_4 = c.layer4;
  Encoder ef(cfg, c.B, c.frames, 1);
  EncoderT<double> ed(cfg, c.B, c.frames, 1);
  randomise(ef, ed, 99);
  std::mt19937_64 rng(5);
  std::normal_distribution<double> normal(0.0, 1.0);
  const size_t n_in = size_t(c.B) * c.frames * c.n_mels;
  std::vector<float> x(n_in);
  std::vector<double> xd(n_in);
  for (size_t i = 0; i < n_in; ++i) xd[i] = x[i] = float(normal(rng));
  const int D = ef.dim();
  std::vector<double> want(size_t(c.B) * D);
  ed.forward(xd.data(), c.B, c.frames, false, want.data());
  std::vector<float> ref(want.size());
  ef.forward(x.data(), c.B, c.frames, false, ref.data());

  std::vector<float> one(want.size(), -1.f), three(want.size(), -2.f);
  EncoderInference(ef, 1).forward(x.data(), c.B, c.frames, one.data());
  EncoderInference(ef, 3).forward(x.data(), c.B, c.frames, three.data());
  double err = 0, err_ref = 0, scale = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    err = std::max(err, std::abs(one[i] - want[i]));
    err_ref = std::max(err_ref, std::abs(ref[i] - want[i]));
    scale = std::max(scale, std::abs(want[i]));
    ASSERT_EQ(one[i], three[i]) << "threads changed element " << i;
  }
  ASSERT_GT(scale, 0.0);
  // float rounding only: within a few times the reference float forward's own error
  EXPECT_LE(err / scale, 2e-5) << "float reference's error: " << err_ref / scale;
}

}  // namespace

TEST(EncoderInference, MatchesTheReferenceInDoubleAtDetectionShapes) {
  check({"v1 128 mels, 24 frames", 128, 24, 3, false, false, false});
  check({"v1 64 mels, shortest segment", 64, 8, 4, false, false, false});
  check({"odd frames and mels (floor pooling)", 40, 29, 3, false, false, false});
  check({"relu, conv biases, 17 frames", 32, 17, 5, true, true, false});
  check({"layer_4, 33 frames", 48, 33, 2, false, false, true});
}

TEST(EncoderInference, BatchesLargerThanTheEncoderPlanAndV2Fallback) {
  FeaturesConfig cfg;
  cfg.n_mels = 32;
  cfg.arch = "v2";
  Encoder enc(cfg, 2, 16, 3);  // max_batch 2: the fallback must cut a batch of 5
  std::vector<float> x(size_t(5) * 16 * 32);
  std::mt19937 rng(2);
  std::normal_distribution<float> d;
  for (auto& v : x) v = d(rng);
  std::vector<float> want(size_t(5) * enc.dim()), got(want.size());
  for (int b = 0; b < 5; ++b)
    enc.forward(x.data() + size_t(b) * 16 * 32, 1, 16, false, want.data() + size_t(b) * enc.dim());
  EncoderInference inf(enc, 2);
  inf.forward(x.data(), 5, 16, got.data());
  EXPECT_EQ(got, want);
  EXPECT_EQ(inf.map_stride(), 0);  // v2 offers no shared maps
  EXPECT_EQ(inf.map_floats(16), 0u);
}

TEST(EncoderInference, RefusesWindowsOutsideThePlan) {
  FeaturesConfig cfg;
  cfg.n_mels = 32;
  Encoder enc(cfg, 1, 16, 3);
  EncoderInference inf(enc, 2);
  std::vector<float> x(size_t(2) * 17 * 32), emb(size_t(2) * enc.dim());
  EXPECT_THROW(inf.forward(x.data(), 2, 17, emb.data()), Error);  // longer than max_frames
  EXPECT_THROW(inf.forward(x.data(), 2, 4, emb.data()), Error);   // shorter than 2^blocks
  EXPECT_THROW(inf.forward(x.data(), 0, 16, emb.data()), Error);
  EXPECT_NO_THROW(inf.forward(x.data(), 2, 16, emb.data()));
}

TEST(EncoderInference, SharedMapsOfASubRunEqualTheLongRunsRowsInsideAHaloOf32Frames) {
  // Detection's shared maps cut the query frames into runs with 32 frames of halo each side
  // (src/detect_embed.cpp): the rows a window uses must not feel the run's own zero padding.
  // Rows of a run starting at frame a (a multiple of 8) must equal the long run's rows a/8 + r
  // for every r whose frames lie >= 32 frames inside the run's ends. Also: pooling all of a
  // run's rows is forward() of that run.
  FeaturesConfig cfg;
  cfg.n_mels = 32;
  const int L = 160, a = 48, T = 96;  // long run, sub-run [a, a + T)
  Encoder enc(cfg, 1, L, 4);
  EncoderT<double> unused(cfg, 1, 8, 4);
  randomise(enc, unused, 17);
  EncoderInference inf(enc, 2);
  ASSERT_EQ(inf.map_stride(), 8);
  std::vector<float> x(size_t(L) * 32);
  std::mt19937 rng(3);
  std::normal_distribution<float> d;
  for (auto& v : x) v = d(rng);
  const int C = inf.map_channels(), W = inf.map_width(), S = 8;
  std::vector<float> long_maps(size_t(C) * (L / S) * W), sub(size_t(C) * (T / S) * W);
  inf.maps(x.data(), 1, L, long_maps.data());
  inf.maps(x.data() + size_t(a) * 32, 1, T, sub.data());
  double worst_inside = 0, worst_edge = 0;
  for (int c = 0; c < C; ++c)
    for (int r = 0; r < T / S; ++r)
      for (int w = 0; w < W; ++w) {
        const double diff = std::abs(sub[(size_t(c) * (T / S) + r) * W + w] -
                                     long_maps[(size_t(c) * (L / S) + a / S + r) * W + w]);
        const bool inside = r * S >= 32 && (r + 1) * S <= T - 32;
        (inside ? worst_inside : worst_edge) = std::max(inside ? worst_inside : worst_edge, diff);
      }
  EXPECT_LE(worst_inside, 1e-5);
  EXPECT_GT(worst_edge, 1e-3) << "the run's zero padding should show near its ends";

  std::vector<float> pooled(enc.dim()), direct(enc.dim());
  inf.pool_rows(sub.data(), T, 0, T / S, pooled.data());
  inf.forward(x.data() + size_t(a) * 32, 1, T, direct.data());
  for (int i = 0; i < enc.dim(); ++i) ASSERT_NEAR(pooled[i], direct[i], 1e-6) << i;
  EXPECT_THROW(inf.pool_rows(sub.data(), T, 10, 3, pooled.data()), Error);
}
