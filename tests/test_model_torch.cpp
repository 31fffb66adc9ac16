// Parity with PyTorch (tools/golden/make_model_golden.py, torch 1.13, double precision): the same
// encoder with the same weights (a counter hash both sides compute) on one small episode gives the
// same embeddings, prototypical loss (filter-negative), gradients, BN running statistics and
// eval-mode embeddings, within 1e-4 relative; tensor names and shapes are the state_dict's.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "fsl/loss.hpp"
#include "fsl/model.hpp"
#include "fsl/model_infer.hpp"
#include "fsl/npy.hpp"
#include "fsl/op_math.hpp"
#include "testutil.hpp"

using namespace fsl;

namespace {

double hash_uniform(uint64_t seed, uint64_t i) {
  return double(om::mix64(seed ^ om::mix64(i)) >> 40) / 16777216.0 * 2.0 - 1.0;
}

bool is_param(const NamedTensor& t) {
  return t.name.find("running_") == std::string::npos &&
         t.name.find("num_batches_tracked") == std::string::npos;
}

// The script's hash_weights(): same rule, same element order.
void set_hash_weights(Encoder& enc, uint64_t seed) {
  uint64_t i = 0;
  for (const NamedTensor& t : enc.state()) {
    if (!is_param(t)) continue;
    float* p = static_cast<float*>(t.data);
    const bool bn = t.name.find(".bn") != std::string::npos ||
                    t.name.find("downsample.1") != std::string::npos;
    const int64_t fan_in = t.shape.size() > 1 ? t.numel() / t.shape[0] : 1;
    for (int64_t k = 0; k < t.numel(); ++k, ++i) {
      const double u = hash_uniform(seed, i);
      double v;
      if (bn)
        v = t.name.ends_with("weight") ? 1.0 + 0.1 * u : 0.1 * u;
      else if (t.name.ends_with("bias"))
        v = 0.1 * u;
      else
        v = u * std::sqrt(6.0 / double(fan_in));
      p[k] = float(v);
    }
  }
}

std::vector<float> golden(const std::string& tag, const std::string& what) {
  return npy_read(test::data_path("model/" + tag + "_" + what + ".npy").string());
}

double rel_error(const float* a, const std::vector<float>& b) {
  double worst = 0, scale = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    worst = std::max(worst, std::abs(double(a[i]) - b[i]));
    scale = std::max(scale, std::abs(double(b[i])));
  }
  return worst / std::max(scale, 1e-30);
}

void check_case(const std::string& tag, FeaturesConfig f, uint64_t seed) {
  const int B = 20, T = 17, n_shot = 2;
  Encoder enc(f, B, T, 1);
  // names and shapes, in state_dict order
  std::ifstream names(test::data_path("model/" + tag + "_names.txt"));
  ASSERT_TRUE(names) << "missing golden names";
  for (const NamedTensor& t : enc.state()) {
    std::string line, shape;
    ASSERT_TRUE(std::getline(names, line)) << "golden has fewer tensors than " << t.name;
    for (size_t d = 0; d < t.shape.size(); ++d) shape += (d ? "," : "") + std::to_string(t.shape[d]);
    EXPECT_EQ(line, t.name + " " + shape);
  }
  std::string extra;
  EXPECT_FALSE(std::getline(names, extra)) << "golden has more tensors: " << extra;

  set_hash_weights(enc, seed);
  const std::vector<float> x = golden(tag, "x"), lab = golden(tag, "labels");
  std::vector<int> labels(lab.begin(), lab.end());
  std::vector<float> emb(size_t(B) * enc.dim()), demb(emb.size());
  enc.forward(x.data(), B, T, true, emb.data());
  EXPECT_LE(rel_error(emb.data(), golden(tag, "emb")), 1e-4) << "embeddings";

  LossResult r =
      prototypical_loss_filter_negative(emb.data(), labels.data(), B, enc.dim(), n_shot, demb.data());
  const std::vector<float> want = golden(tag, "loss");
  EXPECT_NEAR(r.loss, want[0], 1e-4 * std::abs(want[0])) << "loss";
  EXPECT_NEAR(r.accuracy, want[1], 1e-6) << "accuracy";

  enc.zero_grad();
  enc.backward(demb.data());
  const std::vector<float> samples = golden(tag, "grad_samples"), sumsq = golden(tag, "grad_sumsq");
  float gmax = 0;
  for (float s : samples) gmax = std::max(gmax, std::abs(s));
  int ti = 0;
  for (const NamedTensor& t : enc.state()) {
    if (!is_param(t)) continue;
    const float* g = enc.grads().data() + (static_cast<float*>(t.data) - enc.params().data());
    double worst = 0, scale = 1e-4 * gmax, ss = 0;
    if (t.name.find(".conv") != std::string::npos && t.name.ends_with("bias")) {
      // a bias before training BN has a zero gradient: both sides hold rounding noise only
      for (int64_t i = 0; i < t.numel(); ++i) EXPECT_LE(std::abs(g[i]), 1e-4 * gmax) << t.name;
      ++ti;
      continue;
    }
    for (int k = 0; k < 64; ++k) {
      const uint64_t idx = om::mix64(uint64_t(ti) * 1000003 + k) % uint64_t(t.numel());
      const float w = samples[size_t(ti) * 64 + k];
      worst = std::max(worst, std::abs(double(g[idx]) - w));
      scale = std::max(scale, double(std::abs(w)));
    }
    for (int64_t i = 0; i < t.numel(); ++i) ss += double(g[i]) * g[i];
    EXPECT_LE(worst / scale, 1e-4) << t.name;
    EXPECT_NEAR(std::sqrt(ss), std::sqrt(sumsq[ti]), 1e-4 * std::sqrt(sumsq[ti]) + 1e-6 * gmax)
        << t.name;
    ++ti;
  }
  std::vector<float> running;
  for (const NamedTensor& t : enc.state())
    if (t.name.find("running_") != std::string::npos)
      running.insert(running.end(), static_cast<float*>(t.data),
                     static_cast<float*>(t.data) + t.numel());
  EXPECT_LE(rel_error(running.data(), golden(tag, "running")), 1e-4) << "running stats";

  enc.forward(x.data(), B, T, false, emb.data());
  EXPECT_LE(rel_error(emb.data(), golden(tag, "emb_eval")), 1e-4) << "eval embeddings";
  // detection's forward (BN folded into the convolutions) against the same PyTorch numbers
  std::fill(emb.begin(), emb.end(), 0.f);
  EncoderInference(enc, 2).forward(x.data(), B, T, emb.data());
  EXPECT_LE(rel_error(emb.data(), golden(tag, "emb_eval")), 1e-4) << "EncoderInference";
}

FeaturesConfig small() {
  FeaturesConfig f;
  f.n_mels = 32;
  f.drop_rate = 0.0;  // PyTorch's dropout masks are not ours; dropout is checked by GradOps
  return f;
}

}  // namespace

TEST(ModelTorch, V1MatchesPyTorch) { check_case("v1", small(), 1234); }

TEST(ModelTorch, V2ReluBiasMatchesPyTorch) {
  FeaturesConfig f = small();
  f.arch = "v2";
  f.non_linearity = "relu";
  f.with_bias = true;
  check_case("v2", f, 99);
}
