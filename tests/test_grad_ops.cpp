// Every op's backward against central finite differences in double precision, on odd shapes.
// Scalar objective L = sum(r * y) with a fixed random r, so dL/dy = r. The error of a gradient
// tensor is max_i |analytic_i - numeric_i| / max_i |numeric_i| and must be <= 1e-6.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "fsl/op_math.hpp"
#include "gradcheck.hpp"
#include "fsl/ops.hpp"

using namespace fsl;
using fsl::test::Vec;

namespace {

using fsl::test::dot;
using fsl::test::randn;

// Central differences of `loss` w.r.t. every element of `x` (restored after), compared to `grad`.
double grad_error(Vec& x, const Vec& grad, const std::function<double()>& loss,
                  double h = 1e-6) {
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
  for (size_t i = 0; i < x.size(); ++i)
    worst = std::max(worst, std::abs(grad[i] - numeric[i]));
  EXPECT_GT(scale, 0.0) << "gradient is identically zero: the check would prove nothing";
  return worst / std::max(scale, 1e-30);
}

constexpr double kTol = 1e-6;

}  // namespace

// Forward against a direct 7-loop convolution (independent of im2col), then the gradients.
TEST(GradOps, Conv3x3WithBias) {
  const int N = 2, Cin = 3, H = 5, W = 7, Cout = 4, k = 3;
  Vec x = randn(N * Cin * H * W, 1), w = randn(Cout * Cin * 9, 2), b = randn(Cout, 3);
  Vec r = randn(N * Cout * H * W, 4), y(r.size()), col(conv2d_col_size(Cin, H, W, k));
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
  auto loss = [&] {
    conv2d_forward(y.data(), x.data(), w.data(), b.data(), N, Cin, H, W, Cout, k, col.data());
    return dot(r, y);
  };
  Vec dx(x.size(), 7.0), dw(w.size(), 0.0), db(b.size(), 0.0);
  conv2d_backward(dx.data(), dw.data(), db.data(), r.data(), x.data(), w.data(), N, Cin, H, W,
                  Cout, k, col.data(), false);
  EXPECT_LE(grad_error(x, dx, loss), kTol);
  EXPECT_LE(grad_error(w, dw, loss), kTol);
  EXPECT_LE(grad_error(b, db, loss), kTol);
  // accumulate_dx adds to what is there
  Vec dx2(x.size(), 1.0), dw2(w.size(), 0.0);
  conv2d_backward(dx2.data(), dw2.data(), (double*)nullptr, r.data(), x.data(), w.data(), N, Cin,
                  H, W, Cout, k, col.data(), true);
  for (size_t i = 0; i < dx.size(); ++i) ASSERT_NEAR(dx2[i], dx[i] + 1.0, 1e-12);
}

TEST(GradOps, Conv1x1) {
  const int N = 3, Cin = 5, H = 3, W = 4, Cout = 2;
  Vec x = randn(N * Cin * H * W, 11), w = randn(Cout * Cin, 12), r = randn(N * Cout * H * W, 13);
  Vec y(r.size()), col(1);
  auto loss = [&] {
    conv2d_forward(y.data(), x.data(), w.data(), (const double*)nullptr, N, Cin, H, W, Cout, 1,
                   col.data());
    return dot(r, y);
  };
  loss();
  EXPECT_NEAR(y[0], w[0] * x[0] + w[1] * x[12] + w[2] * x[24] + w[3] * x[36] + w[4] * x[48],
              1e-12);
  Vec dx(x.size()), dw(w.size(), 0.0);
  conv2d_backward(dx.data(), dw.data(), (double*)nullptr, r.data(), x.data(), w.data(), N, Cin, H,
                  W, Cout, 1, col.data(), false);
  EXPECT_LE(grad_error(x, dx, loss), kTol);
  EXPECT_LE(grad_error(w, dw, loss), kTol);
}

TEST(GradOps, BatchNormTrainingAndRunningStats) {
  const int N = 3, C = 2, HW = 5 * 3;
  Vec x = randn(N * C * HW, 21, 2.0), g = randn(C, 22), b = randn(C, 23), r = randn(x.size(), 24);
  Vec y(x.size()), mean(C), inv(C), rm(C, 0.5), rv(C, 2.0);
  batchnorm2d_forward(y.data(), mean.data(), inv.data(), x.data(), g.data(), b.data(), rm.data(),
                      rv.data(), N, C, HW, true);
  for (int c = 0; c < C; ++c) {  // hand-computed statistics
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
  auto loss = [&] {
    Vec rm2(C), rv2(C, 1.0);
    batchnorm2d_forward(y.data(), mean.data(), inv.data(), x.data(), g.data(), b.data(),
                        rm2.data(), rv2.data(), N, C, HW, true);
    return dot(r, y);
  };
  loss();
  Vec dx(x.size()), dg(C, 0.0), db(C, 0.0);
  batchnorm2d_backward(dx.data(), dg.data(), db.data(), r.data(), x.data(), g.data(), mean.data(),
                       inv.data(), N, C, HW, true);
  EXPECT_LE(grad_error(x, dx, loss), kTol);
  EXPECT_LE(grad_error(g, dg, loss), kTol);
  EXPECT_LE(grad_error(b, db, loss), kTol);
}

TEST(GradOps, BatchNormEval) {
  const int N = 2, C = 3, HW = 7;
  Vec x = randn(N * C * HW, 31), g = randn(C, 32), b = randn(C, 33), r = randn(x.size(), 34);
  Vec rm = randn(C, 35), rv = {0.5, 1.5, 3.0}, y(x.size()), mean(C), inv(C);
  auto loss = [&] {
    batchnorm2d_forward(y.data(), mean.data(), inv.data(), x.data(), g.data(), b.data(),
                        rm.data(), rv.data(), N, C, HW, false);
    return dot(r, y);
  };
  loss();
  EXPECT_NEAR(y[HW], (x[HW] - rm[1]) / std::sqrt(1.5 + 1e-5) * g[1] + b[1], 1e-12);
  Vec dx(x.size()), dg(C, 0.0), db(C, 0.0);
  batchnorm2d_backward(dx.data(), dg.data(), db.data(), r.data(), x.data(), g.data(), mean.data(),
                       inv.data(), N, C, HW, false);
  EXPECT_LE(grad_error(x, dx, loss), kTol);
  EXPECT_LE(grad_error(g, dg, loss), kTol);
  EXPECT_LE(grad_error(b, db, loss), kTol);
}

TEST(GradOps, Activations) {
  for (Activation act : {Activation::leaky_relu, Activation::relu}) {
    Vec x = randn(37, 41), r = randn(37, 42), y(37), dx(37);
    auto loss = [&] {
      activation_forward(y.data(), x.data(), 37, act);
      return dot(r, y);
    };
    loss();
    for (int i = 0; i < 37; ++i)
      EXPECT_EQ(y[i], x[i] > 0 ? x[i] : (act == Activation::relu ? 0.0 : 0.1 * x[i]));
    activation_backward(dx.data(), r.data(), y.data(), 37, act);
    EXPECT_LE(grad_error(x, dx, loss), kTol);
  }
}

TEST(GradOps, MaxPoolOddSizes) {
  const int NC = 3, H = 5, W = 7;
  Vec x = randn(NC * H * W, 51), r = randn(NC * 2 * 3, 52), y(r.size()), dx(x.size());
  auto loss = [&] {
    maxpool2d_forward(y.data(), x.data(), NC, H, W);
    return dot(r, y);
  };
  loss();
  EXPECT_EQ(y[0], std::max({x[0], x[1], x[7], x[8]}));
  maxpool2d_backward(dx.data(), r.data(), x.data(), NC, H, W);
  EXPECT_LE(grad_error(x, dx, loss), kTol);
  for (int j = 0; j < W; ++j) EXPECT_EQ(dx[4 * W + j], 0.0);  // the dropped last row
}

TEST(GradOps, DropoutMaskAndGradient) {
  const int64_t n = 20000;
  Vec x = randn(n, 61), y(n), mask(n), dx(n), r = randn(n, 62);
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
  Vec xs(x.begin(), x.begin() + 50), rs(r.begin(), r.begin() + 50), ys(50), ms(50);
  auto loss = [&] {
    dropout_forward(ys.data(), ms.data(), xs.data(), 50, 0.25f, 99, true);
    return dot(rs, ys);
  };
  loss();
  Vec dxs(50);
  dropout_backward(dxs.data(), rs.data(), ms.data(), 50);
  EXPECT_LE(grad_error(xs, dxs, loss), kTol);
}

// PyTorch bins: i -> [floor(i*In/Out), ceil((i+1)*In/Out)).
TEST(GradOps, AdaptiveAvgPoolBinsAndGradient) {
  {  // 2x3 -> 4x2 (time upsampled as in the 17-frame encoder): bins by hand
    Vec x = {1, 2, 3, 4, 5, 6}, y(8);
    adaptive_avgpool2d_forward(y.data(), x.data(), 1, 2, 3, 4, 2);
    // rows: 0,0,1,1 ; columns [0,2), [1,3)
    Vec want = {1.5, 2.5, 1.5, 2.5, 4.5, 5.5, 4.5, 5.5};
    for (int i = 0; i < 8; ++i) EXPECT_DOUBLE_EQ(y[i], want[i]);
  }
  for (auto [H, W, Ho, Wo] : {std::array<int, 4>{2, 3, 4, 8}, {7, 9, 3, 4}, {5, 16, 4, 8}}) {
    const int NC = 2;
    Vec x = randn(NC * H * W, 71), r = randn(NC * Ho * Wo, 72), y(r.size()), dx(x.size());
    auto loss = [&] {
      adaptive_avgpool2d_forward(y.data(), x.data(), NC, H, W, Ho, Wo);
      return dot(r, y);
    };
    loss();
    adaptive_avgpool2d_backward(dx.data(), r.data(), NC, H, W, Ho, Wo);
    EXPECT_LE(grad_error(x, dx, loss), kTol) << H << "x" << W << " -> " << Ho << "x" << Wo;
  }
}

TEST(GradOps, ChannelAttention) {
  const int N = 2, C = 32, Cr = 2, HW = 3 * 5;
  Vec x = randn(N * C * HW, 81), w1 = randn(Cr * C, 82, 0.3), w2 = randn(C * Cr, 83, 0.3);
  Vec r = randn(x.size(), 84), y(x.size());
  Vec avg(N * C), mx(N * C), ha(N * Cr), hm(N * Cr), att(N * C);
  std::vector<int32_t> arg(N * C);
  ChannelAttentionSaved<double> s{avg.data(), mx.data(), arg.data(), ha.data(), hm.data(),
                                  att.data()};
  auto loss = [&] {
    channel_attention_forward(y.data(), s, x.data(), w1.data(), w2.data(), N, C, Cr, HW);
    return dot(r, y);
  };
  loss();
  {  // sample 0, channel 5 by hand
    double a = 0, m = -1e300, logit = 0;
    for (int i = 0; i < HW; ++i) a += x[5 * HW + i] / HW, m = std::max(m, x[5 * HW + i]);
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
  Vec dx(x.size()), dw1(w1.size(), 0.0), dw2(w2.size(), 0.0);
  channel_attention_backward(dx.data(), dw1.data(), dw2.data(), r.data(), s, x.data(), w1.data(),
                             w2.data(), N, C, Cr, HW);
  EXPECT_LE(grad_error(x, dx, loss), kTol);
  EXPECT_LE(grad_error(w1, dw1, loss), kTol);
  EXPECT_LE(grad_error(w2, dw2, loss), kTol);
}

TEST(OpMath, AdamElementMatchesFormula) {
  float p = 0.5f, m = 0.0f, v = 0.0f;
  // step 1: m = 0.1 g, v = 0.001 g^2, update = lr * g / (|g| + eps) ~ lr * sign(g)
  om::adam_update(p, 2.0f, m, v, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, 0.001f);
  EXPECT_NEAR(p, 0.5 - 1e-3, 1e-7);
  EXPECT_NEAR(m, 0.2, 1e-7);
  EXPECT_NEAR(v, 0.004, 1e-7);
}
