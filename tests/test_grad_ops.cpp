// The CPU backend on the op table (tests/op_cases.hpp): every case's backward in double against
// central finite differences, and float against double. Scalar objective L = sum_y dot(dy, y)
// over the scored outputs, so dL/dy = dy. The error of a gradient tensor is
// max_i |analytic_i - numeric_i| / max_i |numeric_i| and must be <= 1e-6.
// Then the forward of each op against values written out by hand (OpReference), and the checks of
// the table itself (OpTable).
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "fsl/op_math.hpp"
#include "fsl/ops.hpp"
#include "gradcheck.hpp"
#include "op_cases.hpp"

using namespace fsl;
using fsl::test::Vec;

namespace {

using fsl::test::dot;
using fsl::test::randn;
using test::DType;
using test::OpCase;
using test::Role;
using test::TensorSpec;

// Central differences of `loss` w.r.t. every element of `x` (restored after), compared to `grad`.
double grad_error(Vec& x, const Vec& grad, const std::function<double()>& loss, double h = 1e-6) {
  double worst = 0, scale = 0;
  Vec numeric(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double keep = x[i];
    x[i] = keep + h;
    const double lp = loss();
    x[i] = keep - h;
    const double lm = loss();
    x[i] = keep;
    numeric[i] = (lp - lm) / (2 * h);
    scale = std::max(scale, std::abs(numeric[i]));
  }
  for (size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::abs(grad[i] - numeric[i]));
  EXPECT_GT(scale, 0.0) << "gradient is identically zero: the check would prove nothing";
  return worst / std::max(scale, 1e-30);
}

constexpr double kTol = 1e-6;
// Float against double, relative Frobenius: float rounding through at most a few thousand-term
// sums (the double accumulators of batchnorm and the losses keep the large ones exact).
constexpr double kFloatTol = 1e-5;
// Finite differences re-run the whole forward per element, and on outputs this large the
// rounding of the objective itself (~1e-16 x its size / 2h) nears the tolerance: those cases are
// the CUDA kernels' large shapes, checked here float against double only.
constexpr size_t kMaxFdOutputs = 12000;

std::string case_name(const testing::TestParamInfo<OpCase>& info) { return info.param.name; }

class GradOpsTable : public testing::TestWithParam<OpCase> {};
INSTANTIATE_TEST_SUITE_P(Table, GradOpsTable, testing::ValuesIn(test::op_cases()), case_name);

TEST_P(GradOpsTable, BackwardMatchesFiniteDifferences) {
  const OpCase& c = GetParam();
  if (!c.backward) GTEST_SKIP() << c.name << ": the op has no backward";
  if (!c.no_double.empty()) GTEST_SKIP() << c.name << ": no double version: " << c.no_double;
  size_t scored = 0;
  for (const TensorSpec& s : c.tensors)
    if (s.role == Role::output) scored += s.n;
  if (scored > kMaxFdOutputs)
    GTEST_SKIP() << c.name << ": " << scored << " outputs, too many for finite differences";

  auto t = test::make_tensors<double>(c);
  const auto initial = t;
  auto loss = [&] {
    for (const TensorSpec& s : c.tensors)
      if (s.role == Role::state) t.f[s.name] = initial.f.at(s.name);
    c.forward.d(t);
    double sum = 0;
    for (const TensorSpec& s : c.tensors)
      if (s.role == Role::output && s.dy != test::Dy::none)
        sum += dot(t.f["d" + s.name], t.f[s.name]);
    return sum;
  };
  loss();
  c.backward.d(t);
  for (const TensorSpec& s : c.tensors) {
    if (s.role != Role::input || !s.has_grad) continue;
    Vec grad = t.f["d" + s.name];
    if (s.accumulates)
      for (size_t i = 0; i < grad.size(); ++i) grad[i] -= initial.f.at("d" + s.name)[i];
    EXPECT_LE(grad_error(t.f[s.name], grad, loss), kTol) << "d" << s.name;
  }
}

TEST_P(GradOpsTable, FloatMatchesDouble) {
  const OpCase& c = GetParam();
  if (!c.no_double.empty()) GTEST_SKIP() << c.name << ": no double version: " << c.no_double;
  auto f = test::make_tensors<float>(c);
  auto d = test::make_tensors<double>(c);
  c.forward.f(f);
  c.forward.d(d);
  const std::vector<std::string> none;
  EXPECT_EQ(test::mismatches(c, f, d, test::written_by_forward, kFloatTol), none) << "forward";
  if (!c.backward) return;
  c.backward.f(f);
  c.backward.d(d);
  EXPECT_EQ(test::mismatches(c, f, d, test::written_by_backward, kFloatTol), none) << "backward";
}

// One list drives every backend; what a backend lacks is said, with the reason, in the case.
TEST(OpTable, EveryCaseRunsOnEveryBackend) {
  std::set<std::string> names;
  for (const OpCase& c : test::op_cases()) {
    SCOPED_TRACE(c.name);
    EXPECT_TRUE(names.insert(c.name).second) << "duplicate case name";
    EXPECT_TRUE(std::all_of(c.name.begin(), c.name.end(),
                            [](char ch) { return std::isalnum((unsigned char)ch) || ch == '_'; }));
    ASSERT_TRUE(bool(c.forward.f)) << "no CPU forward";
    EXPECT_EQ(bool(c.forward.d), c.no_double.empty()) << "double body xor a reason";
    if (c.backward) {
      EXPECT_EQ(bool(c.backward.d), bool(c.forward.d));
    }
    bool has_grad = false;
    for (const TensorSpec& s : c.tensors) has_grad |= s.has_grad;
    EXPECT_EQ(bool(c.backward), has_grad) << "a backward writes the inputs' gradients";
#ifdef FSL_HAVE_CUDA
    EXPECT_NE(bool(c.cuda_forward), !c.no_cuda.empty()) << "CUDA body xor a reason";
    if (c.no_cuda.empty()) {
      EXPECT_EQ(bool(c.cuda_backward), bool(c.backward));
    }
#endif
  }
}

// The comparison gpu_ops makes, run here on two CPU results: it must see a changed element.
TEST(OpTable, MismatchesAreReported) {
  const std::vector<std::string> none;
  for (const OpCase& c : test::op_cases()) {
    if (c.name != "channel_attention_2x32x15_r2") continue;
    auto want = test::make_tensors<float>(c);
    c.forward.f(want);
    c.backward.f(want);
    auto got = want;
    EXPECT_EQ(test::mismatches(c, got, want, test::written_by_forward), none);
    EXPECT_EQ(test::mismatches(c, got, want, test::written_by_backward), none);
    got.f["y"][7] += 0.1f;                                  // kGpuTol
    got.f["mx"][3] = std::nextafter(got.f["mx"][3], 1e9f);  // kExact
    got.i32s["argmax"][0] += 1;
    got.f["dw1"][0] += 1.0f;
    EXPECT_EQ(test::mismatches(c, got, want, test::written_by_forward).size(), 3u);
    EXPECT_EQ(test::mismatches(c, got, want, test::written_by_backward).size(), 1u);
    got.f["dx"].pop_back();  // a size mismatch fails any tolerance
    EXPECT_EQ(test::mismatches(c, got, want, test::written_by_backward).size(), 2u);
    return;
  }
  FAIL() << "the case this test perturbs is gone from the table";
}

// The ops of fsl/ops.hpp, fsl/loss.hpp and fsl/optim.hpp: each has at least one case.
TEST(OpTable, CoversEveryOp) {
  std::set<std::string> ops;
  for (const OpCase& c : test::op_cases()) ops.insert(c.op);
  for (const char* op :
       {"conv2d", "batchnorm2d", "activation", "maxpool2d", "dropout", "add", "adaptive_avgpool2d",
        "channel_attention", "prototypical_loss", "prototypical_loss_filter_negative", "adam_step"})
    EXPECT_TRUE(ops.count(op)) << op << " has no case in tests/op_cases.hpp";
}

}  // namespace

// ---- forward values written out by hand ----------------------------------------------------

// Against a direct 7-loop convolution (independent of im2col).
TEST(OpReference, Conv3x3WithBias) {
  const int N = 2, Cin = 3, H = 5, W = 7, Cout = 4, k = 3;
  Vec x = randn(N * Cin * H * W, 1), w = randn(Cout * Cin * 9, 2), b = randn(Cout, 3);
  Vec y(N * Cout * H * W), col(conv2d_col_size(Cin, H, W, k));
  conv2d_forward(y.data(), x.data(), w.data(), b.data(), N, Cin, H, W, Cout, k, col.data());
  for (int n = 0; n < N; ++n)
    for (int o = 0; o < Cout; ++o)
      for (int i = 0; i < H; ++i)
        for (int j = 0; j < W; ++j) {
          double s = b[o];
          for (int c = 0; c < Cin; ++c)
            for (int di = -1; di <= 1; ++di)
              for (int dj = -1; dj <= 1; ++dj) {
                const int ii = i + di, jj = j + dj;
                if (ii < 0 || ii >= H || jj < 0 || jj >= W) continue;
                s += w[((o * Cin + c) * 3 + di + 1) * 3 + dj + 1] *
                     x[((n * Cin + c) * H + ii) * W + jj];
              }
          ASSERT_NEAR(y[((n * Cout + o) * H + i) * W + j], s, 1e-12);
        }
}

TEST(OpReference, Conv1x1) {
  const int N = 3, Cin = 5, H = 3, W = 4, Cout = 2;
  Vec x = randn(N * Cin * H * W, 11), w = randn(Cout * Cin, 12), y(N * Cout * H * W), col(1);
  conv2d_forward(y.data(), x.data(), w.data(), (const double*)nullptr, N, Cin, H, W, Cout, 1,
                 col.data());
  EXPECT_NEAR(y[0], w[0] * x[0] + w[1] * x[12] + w[2] * x[24] + w[3] * x[36] + w[4] * x[48], 1e-12);
}

TEST(OpReference, BatchNormTrainingStatistics) {
  const int N = 3, C = 2, HW = 5 * 3;
  Vec x = randn(N * C * HW, 21, 2.0), g = randn(C, 22), b = randn(C, 23);
  Vec y(x.size()), mean(C), inv(C), rm(C, 0.5), rv(C, 2.0);
  batchnorm2d_forward(y.data(), mean.data(), inv.data(), x.data(), g.data(), b.data(), rm.data(),
                      rv.data(), N, C, HW, true);
  for (int c = 0; c < C; ++c) {
    double s = 0, ss = 0;
    const int M = N * HW;
    for (int n = 0; n < N; ++n)
      for (int i = 0; i < HW; ++i) s += x[(n * C + c) * HW + i];
    const double mu = s / M;
    for (int n = 0; n < N; ++n)
      for (int i = 0; i < HW; ++i) ss += std::pow(x[(n * C + c) * HW + i] - mu, 2);
    EXPECT_NEAR(mean[c], mu, 1e-12);
    EXPECT_NEAR(inv[c], 1 / std::sqrt(ss / M + 1e-5), 1e-12);
    EXPECT_NEAR(rm[c], 0.9 * 0.5 + 0.1 * mu, 1e-12);
    EXPECT_NEAR(rv[c], 0.9 * 2.0 + 0.1 * ss / (M - 1), 1e-12);  // unbiased
  }
}

TEST(OpReference, BatchNormEval) {
  const int N = 2, C = 3, HW = 7;
  Vec x = randn(N * C * HW, 31), g = randn(C, 32), b = randn(C, 33);
  Vec rm = randn(C, 35), rv = {0.5, 1.5, 3.0}, y(x.size()), mean(C), inv(C);
  batchnorm2d_forward(y.data(), mean.data(), inv.data(), x.data(), g.data(), b.data(), rm.data(),
                      rv.data(), N, C, HW, false);
  EXPECT_NEAR(y[HW], (x[HW] - rm[1]) / std::sqrt(1.5 + 1e-5) * g[1] + b[1], 1e-12);
}

TEST(OpReference, Activations) {
  for (Activation act : {Activation::leaky_relu, Activation::relu}) {
    Vec x = randn(37, 41), y(37);
    activation_forward(y.data(), x.data(), 37, act);
    for (int i = 0; i < 37; ++i)
      EXPECT_EQ(y[i], x[i] > 0 ? x[i] : (act == Activation::relu ? 0.0 : 0.1 * x[i]));
  }
}

TEST(OpReference, MaxPoolOddSizes) {
  const int NC = 3, H = 5, W = 7;
  Vec x = randn(NC * H * W, 51), dy = randn(NC * 2 * 3, 52), y(dy.size()), dx(x.size(), 7.0);
  maxpool2d_forward(y.data(), x.data(), NC, H, W);
  EXPECT_EQ(y[0], std::max({x[0], x[1], x[7], x[8]}));
  maxpool2d_backward(dx.data(), dy.data(), x.data(), NC, H, W);
  for (int j = 0; j < W; ++j) EXPECT_EQ(dx[4 * W + j], 0.0);  // the dropped last row
}

TEST(OpReference, DropoutMask) {
  const int64_t n = 20000;
  Vec x = randn(n, 61), y(n), mask(n);
  dropout_forward(y.data(), mask.data(), x.data(), n, 0.25f, 1234, true);
  int64_t dropped = 0;
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_TRUE(mask[i] == 0.0 || std::abs(mask[i] - 1 / 0.75) < 1e-12);
    dropped += mask[i] == 0.0;
    ASSERT_EQ(y[i], x[i] * mask[i]);
  }
  EXPECT_NEAR(double(dropped) / n, 0.25, 0.015);
  Vec y2(n), mask2(n);  // same seed -> same mask; another seed -> another mask
  dropout_forward(y2.data(), mask2.data(), x.data(), n, 0.25f, 1234, true);
  EXPECT_EQ(mask, mask2);
  dropout_forward(y2.data(), mask2.data(), x.data(), n, 0.25f, 1235, true);
  EXPECT_NE(mask, mask2);
  dropout_forward(y2.data(), mask2.data(), x.data(), n, 0.25f, 1234, false);
  EXPECT_EQ(x, y2);
}

// PyTorch bins: i -> [floor(i*In/Out), ceil((i+1)*In/Out)).
TEST(OpReference, AdaptiveAvgPoolBins) {
  // 2x3 -> 4x2 (time upsampled as in the 17-frame encoder)
  Vec x = {1, 2, 3, 4, 5, 6}, y(8);
  adaptive_avgpool2d_forward(y.data(), x.data(), 1, 2, 3, 4, 2);
  // rows: 0,0,1,1 ; columns [0,2), [1,3)
  Vec want = {1.5, 2.5, 1.5, 2.5, 4.5, 5.5, 4.5, 5.5};
  for (int i = 0; i < 8; ++i) EXPECT_DOUBLE_EQ(y[i], want[i]);
}

TEST(OpReference, ChannelAttention) {
  const int N = 2, C = 32, Cr = 2, HW = 3 * 5;
  Vec x = randn(N * C * HW, 81), w1 = randn(Cr * C, 82, 0.3), w2 = randn(C * Cr, 83, 0.3);
  Vec y(x.size()), avg(N * C), mx(N * C), ha(N * Cr), hm(N * Cr), att(N * C);
  std::vector<int32_t> arg(N * C);
  ChannelAttentionSaved<double> s{avg.data(), mx.data(), arg.data(),
                                  ha.data(),  hm.data(), att.data()};
  channel_attention_forward(y.data(), s, x.data(), w1.data(), w2.data(), N, C, Cr, HW);
  // sample 0, channel 5
  double logit = 0;
  for (int q = 0; q < Cr; ++q) {
    double ha_ = 0, hm_ = 0;
    for (int c = 0; c < C; ++c) {
      double ac = 0, mc = -1e300;
      for (int i = 0; i < HW; ++i) ac += x[c * HW + i] / HW, mc = std::max(mc, x[c * HW + i]);
      ha_ += w1[q * C + c] * ac;
      hm_ += w1[q * C + c] * mc;
    }
    logit += w2[5 * Cr + q] * (std::max(ha_, 0.0) + std::max(hm_, 0.0));
  }
  EXPECT_NEAR(y[5 * HW + 2], x[5 * HW + 2] / (1 + std::exp(-logit)), 1e-12);
}

TEST(OpMath, AdamElementMatchesFormula) {
  float p = 0.5f, m = 0.0f, v = 0.0f;
  // step 1: m = 0.1 g, v = 0.001 g^2, update = lr * g / (|g| + eps) ~ lr * sign(g)
  om::adam_update(p, 2.0f, m, v, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, 0.001f);
  EXPECT_NEAR(p, 0.5 - 1e-3, 1e-7);
  EXPECT_NEAR(m, 0.2, 1e-7);
  EXPECT_NEAR(v, 0.004, 1e-7);
}
