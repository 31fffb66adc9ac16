// The whole encoder (double precision, tiny input) and both prototypical losses against central
// finite differences. Error of a tensor = max |analytic - numeric| / max |numeric| <= 1e-6.
#include <cblas.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "fsl/error.hpp"
#include "gradcheck.hpp"
#include "fsl/loss.hpp"
#include "fsl/model.hpp"

using namespace fsl;
using fsl::test::Vec;

namespace {

using fsl::test::dot;
using fsl::test::randn;

// Finite differences at the listed positions of `x` only. A position where the two one-sided
// differences disagree sits on a kink (ReLU at 0, a max-pool tie) within h: it is skipped, and
// `skipped` counts it. Error = max |analytic - numeric| / max(max |numeric|, floor): the floor
// keeps exactly-zero gradients (a conv bias before training BN) from dividing noise by noise.
double grad_error_at(double* x, const double* grad, const std::vector<int64_t>& at,
                     const std::function<double()>& loss, double floor, int* skipped = nullptr,
                     double h = 1e-6) {
  double worst = 0, scale = floor;
  const double l0 = loss();
  for (int64_t i : at) {
    const double keep = x[i];
    x[i] = keep + h;
    const double lp = loss();
    x[i] = keep - h;
    const double lm = loss();
    x[i] = keep;
    const double numeric = (lp - lm) / (2 * h);
    if (skipped && std::abs((lp - l0) - (l0 - lm)) / h > 1e-5 * std::max(floor, std::abs(numeric))) {
      ++*skipped;
      continue;
    }
    scale = std::max(scale, std::abs(numeric));
    worst = std::max(worst, std::abs(grad[i] - numeric));
  }
  return worst / scale;
}

FeaturesConfig tiny(const std::string& arch, const std::string& act, bool bias, double drop) {
  FeaturesConfig f;
  f.arch = arch;
  f.non_linearity = act;
  f.with_bias = bias;
  f.drop_rate = drop;
  f.n_mels = 16;
  f.time_max_pool_dim = 2;
  f.embedding_dim = 2 * 64 * 2;  // pool to (2, 2): time 9 -> 4 -> 2 -> 1 is upsampled
  return f;
}

// Checks a few entries of every parameter tensor of a tiny encoder, L = sum(r * emb).
void check_encoder(const FeaturesConfig& f) {
  const int B = 4, T = 9;
  openblas_set_num_threads(1);  // tiny gemms: threads only add overhead
  EncoderT<double> enc(f, B, T, 7);
  enc.freeze_dropout(true);
  Vec x = randn(size_t(B) * T * f.n_mels, 1), r = randn(size_t(B) * enc.dim(), 2), emb(r.size());
  auto loss = [&] {
    enc.forward(x.data(), B, T, true, emb.data());
    return dot(r, emb);
  };
  loss();
  enc.zero_grad();
  enc.backward(r.data());
  const double* P = enc.params().data();
  std::mt19937_64 rng(3);
  int checked = 0, skipped = 0;
  double floor = 0;
  for (double g : enc.grads()) floor = std::max(floor, 1e-3 * std::abs(g));
  for (const NamedTensor& t : enc.state()) {
    const bool is_param = t.name.ends_with("weight") || t.name.ends_with("bias");
    if (!is_param || t.name.find("layer4") != std::string::npos) continue;
    double* p = static_cast<double*>(t.data);
    const int64_t off = p - P;
    std::vector<int64_t> at;
    for (int k = 0; k < 4; ++k) at.push_back(off + int64_t(rng() % uint64_t(t.numel())));
    const double err =
        grad_error_at(enc.params().data(), enc.grads().data(), at, loss, floor, &skipped);
    EXPECT_LE(err, 1e-6) << t.name;
    ++checked;
  }
  EXPECT_GE(checked, 24);
  EXPECT_LE(skipped, checked);  // at most a quarter of the 4 * checked positions on a kink
  // layer4 is not run without layer_4: its gradient stays zero
  for (const NamedTensor& t : enc.state())
    if (!f.layer_4 && t.name.find("layer4") != std::string::npos && t.dtype == DType::f64 &&
        t.name.ends_with("weight")) {
      const double* g = enc.grads().data() + (static_cast<double*>(t.data) - P);
      for (int64_t i = 0; i < t.numel(); ++i) ASSERT_EQ(g[i], 0.0) << t.name;
    }
}

}  // namespace

TEST(GradEncoder, V1LeakyReluNoDropout) { check_encoder(tiny("v1", "leaky_relu", false, 0.0)); }
TEST(GradEncoder, V1ReluBiasFixedDropout) { check_encoder(tiny("v1", "relu", true, 0.2)); }
TEST(GradEncoder, V2ChannelAttention) { check_encoder(tiny("v2", "leaky_relu", false, 0.1)); }
TEST(GradEncoder, V1Layer4) {
  auto f = tiny("v1", "leaky_relu", false, 0.0);
  f.layer_4 = true;
  f.n_mels = 32;
  EncoderT<double> probe(f, 2, 16, 1);
  EXPECT_EQ(probe.min_frames(), 16);
  EXPECT_THROW(EncoderT<double>(f, 2, 9, 1), fsl::Error);  // 9 frames cannot be pooled 4 times
}

TEST(GradEncoder, EvalModeIsDeterministicAndUsesRunningStats) {
  auto f = tiny("v1", "leaky_relu", false, 0.5);
  EncoderT<double> enc(f, 4, 9, 7);
  Vec x = randn(4 * 9 * 16, 5), e1(4 * enc.dim()), e2(e1.size()), e3(e1.size());
  enc.forward(x.data(), 4, 9, false, e1.data());
  enc.forward(x.data(), 4, 9, false, e2.data());
  EXPECT_EQ(e1, e2);
  // a sample's embedding in eval mode does not depend on the rest of the batch
  enc.forward(x.data(), 1, 9, false, e3.data());
  for (int i = 0; i < enc.dim(); ++i) EXPECT_NEAR(e3[i], e1[i], 1e-12);
}

namespace {
void check_loss(bool filter_negative) {
  // 3 positive + 3 negative labels (0..5), n_shot 2, 3 queries each, shuffled order
  const int D = 7, n_shot = 2;
  std::vector<int> labels;
  for (int rep = 0; rep < 5; ++rep)
    for (int c : {4, 1, 0, 5, 2, 3}) labels.push_back(c);
  const int B = int(labels.size());
  Vec e = randn(size_t(B) * D, 9, 0.5), de(e.size());
  auto lossfn = [&](double* d) {
    return filter_negative
               ? prototypical_loss_filter_negative(e.data(), labels.data(), B, D, n_shot, d)
               : prototypical_loss(e.data(), labels.data(), B, D, n_shot, d);
  };
  LossResult res = lossfn(de.data());
  EXPECT_GT(res.loss, 0.0);
  std::vector<int64_t> all(e.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = int64_t(i);
  EXPECT_LE(grad_error_at(e.data(), de.data(), all, [&] { return lossfn(nullptr).loss; }, 0.0,
                          nullptr, 1e-6),
            1e-6);

  // independent value: loss and accuracy written out directly from the definition
  double want = 0;
  int correct = 0, Q = 0;
  std::vector<Vec> proto(6, Vec(D, 0.0));
  for (int c = 0; c < 6; ++c) {
    int seen = 0;
    for (int i = 0; i < B && seen < n_shot; ++i)
      if (labels[i] == c) {
        for (int k = 0; k < D; ++k) proto[c][k] += e[i * D + k] / n_shot;
        ++seen;
      }
  }
  std::vector<int> seen(6, 0);
  for (int i = 0; i < B; ++i) {
    const int c = labels[i];
    if (seen[c]++ < n_shot || (filter_negative && c % 2 == 1)) continue;
    Vec d(6, 0.0);
    for (int j = 0; j < 6; ++j)
      for (int k = 0; k < D; ++k) d[j] += std::pow(e[i * D + k] - proto[j][k], 2);
    double z = 0;
    for (int j = 0; j < 6; ++j) z += std::exp(-d[j]);
    want += d[c] + std::log(z);
    correct += std::min_element(d.begin(), d.end()) - d.begin() == c;
    ++Q;
  }
  EXPECT_NEAR(res.loss, want / Q, 1e-12);
  EXPECT_NEAR(res.accuracy, double(correct) / Q, 1e-12);
}
}  // namespace

TEST(GradLoss, PrototypicalLoss) { check_loss(false); }
TEST(GradLoss, PrototypicalLossFilterNegative) { check_loss(true); }

TEST(GradLoss, TooFewSamplesIsAnError) {
  std::vector<int> labels = {0, 0, 1};
  Vec e(3 * 2, 0.1);
  EXPECT_THROW(prototypical_loss(e.data(), labels.data(), 3, 2, 1, (double*)nullptr), fsl::Error);
}
