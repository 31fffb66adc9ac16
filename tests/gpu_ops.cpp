// The CUDA backend against the CPU backend (itself checked by finite differences in
// test_grad_ops.cpp / test_grad_model.cpp and against PyTorch in test_model_torch.cpp): every op
// forward and backward on random shapes, both losses, Adam, the segment gather and the whole
// encoder. fp32 with TF32 off: relative Frobenius error <= 1e-4 per op. Every test skips, with
// the reason, without a CUDA device (or when built without CUDA).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "fsl/cuda_frontend.hpp"

#ifndef FSL_HAVE_CUDA
TEST(GpuOps, BuiltWithoutCuda) { GTEST_SKIP() << "built without CUDA"; }
#else
#include "fsl/cuda_check.hpp"
#include "fsl/cuda_context.hpp"
#include "fsl/cuda_encoder.hpp"
#include "fsl/cuda_ops.hpp"
#include "fsl/error.hpp"
#include "fsl/model.hpp"
#include "fsl/npy.hpp"
#include "fsl/ops.hpp"
#include "gpu_testutil.hpp"
#include "testutil.hpp"

namespace fsl {
namespace {

using Vec = std::vector<float>;
using Dev = DeviceBuffer<float>;
constexpr double kTol = 1e-4;

CudaContext& ctx() {
  static CudaContext c;  // TF32 off
  return c;
}
Vec randn(size_t n, unsigned seed, float sd = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, sd);
  Vec v(n);
  for (auto& x : v) x = d(rng);
  return v;
}
Vec down(const Dev& d) {
  ctx().synchronize();
  return d.download();
}
double rel(const Vec& got, const Vec& want) {
  EXPECT_EQ(got.size(), want.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size() && i < got.size(); ++i) {
    num += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    den += double(want[i]) * want[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

struct ConvShape {
  int N, Cin, H, W, Cout, k;
  bool bias;
};

TEST(GpuOps, Conv2dForwardBackward) {
  SKIP_WITHOUT_GPU();
  for (const ConvShape s :
       {ConvShape{3, 5, 7, 9, 4, 3, true}, ConvShape{2, 1, 17, 16, 6, 3, false},
        ConvShape{3, 6, 5, 8, 7, 1, false}, ConvShape{2, 64, 9, 32, 128, 3, false}}) {
    const size_t nx = size_t(s.N) * s.Cin * s.H * s.W, ny = size_t(s.N) * s.Cout * s.H * s.W;
    const size_t nw = size_t(s.Cout) * s.Cin * s.k * s.k;
    Vec x = randn(nx, 1), w = randn(nw, 2, 0.3f), b = randn(s.Cout, 3), dy = randn(ny, 4);
    Vec dw0 = randn(nw, 5), db0 = randn(s.Cout, 6), dx0 = randn(nx, 7);  // accumulate onto these
    Vec y(ny), col(conv2d_col_size(s.Cin, s.H, s.W, s.k));
    conv2d_forward(y.data(), x.data(), w.data(), s.bias ? b.data() : nullptr, s.N, s.Cin, s.H, s.W,
                   s.Cout, s.k, col.data());
    Dev dx_(x), dw_(w), db_(b), ddy(dy), dy_out(ny);
    cuda::conv2d_forward(ctx(), dy_out.get(), dx_.get(), dw_.get(), s.bias ? db_.get() : nullptr,
                         s.N, s.Cin, s.H, s.W, s.Cout, s.k);
    EXPECT_LE(rel(down(dy_out), y), kTol) << "forward Cin " << s.Cin << " k " << s.k;
    for (bool acc : {false, true}) {
      Vec dx = dx0, dw = dw0, db = db0;
      conv2d_backward(dx.data(), dw.data(), s.bias ? db.data() : nullptr, dy.data(), x.data(),
                      w.data(), s.N, s.Cin, s.H, s.W, s.Cout, s.k, col.data(), acc);
      Dev gdx(dx0), gdw(dw0), gdb(db0);
      cuda::conv2d_backward(ctx(), gdx.get(), gdw.get(), s.bias ? gdb.get() : nullptr, ddy.get(),
                            dx_.get(), dw_.get(), s.N, s.Cin, s.H, s.W, s.Cout, s.k, acc);
      EXPECT_LE(rel(down(gdx), dx), kTol) << "dx acc " << acc << " Cin " << s.Cin;
      EXPECT_LE(rel(down(gdw), dw), kTol) << "dw Cin " << s.Cin;
      if (s.bias) {
        EXPECT_LE(rel(down(gdb), db), kTol);
      }
    }
  }
}

// Shapes with one slice per channel (M = N HW = 185), ten (21760) and the most (the training
// step's 200 x 17 x 128 = 435200): the slice merge of cuda/ops_norm.cu is exercised.
class GpuBatchNorm : public ::testing::TestWithParam<std::tuple<int, int, int>> {};
INSTANTIATE_TEST_SUITE_P(Shapes, GpuBatchNorm,
                         ::testing::Values(std::tuple{5, 6, 37}, std::tuple{40, 3, 17 * 32},
                                           std::tuple{200, 2, 17 * 128}));

TEST_P(GpuBatchNorm, TrainingAndEvalMatchCpu) {
  SKIP_WITHOUT_GPU();
  const auto [N, C, HW] = GetParam();
  const size_t n = size_t(N) * C * HW;
  Vec x = randn(n, 11, 2.0f), gamma = randn(C, 12), beta = randn(C, 13), dy = randn(n, 14);
  for (auto& v : x) v += 3.0f;  // a mean far from 0, as after a conv
  for (bool training : {true, false}) {
    Vec rm = randn(C, 15), rv(C, 1.5f), y(n), mean(C), inv(C);
    Dev gx(x), gg(gamma), gb(beta), grm(rm), grv(rv), gy(n), gmean(C), ginv(C);
    batchnorm2d_forward(y.data(), mean.data(), inv.data(), x.data(), gamma.data(), beta.data(),
                        rm.data(), rv.data(), N, C, HW, training);
    cuda::batchnorm2d_forward(ctx(), gy.get(), gmean.get(), ginv.get(), gx.get(), gg.get(),
                              gb.get(), grm.get(), grv.get(), N, C, HW, training);
    EXPECT_LE(rel(down(gy), y), kTol) << training;
    EXPECT_LE(rel(down(gmean), mean), 1e-6) << training;
    EXPECT_LE(rel(down(ginv), inv), 1e-6) << training;
    EXPECT_LE(rel(down(grm), rm), 1e-6) << training;
    EXPECT_LE(rel(down(grv), rv), 1e-6) << training;
    Vec dx(n), dgamma = randn(C, 16), dbeta = randn(C, 17);
    Dev gdx(n), gdgamma(dgamma), gdbeta(dbeta), gdy(dy);
    batchnorm2d_backward(dx.data(), dgamma.data(), dbeta.data(), dy.data(), x.data(), gamma.data(),
                         mean.data(), inv.data(), N, C, HW, training);
    cuda::batchnorm2d_backward(ctx(), gdx.get(), gdgamma.get(), gdbeta.get(), gdy.get(), gx.get(),
                               gg.get(), gmean.get(), ginv.get(), N, C, HW, training);
    EXPECT_LE(rel(down(gdx), dx), kTol) << training;
    EXPECT_LE(rel(down(gdgamma), dgamma), kTol) << training;
    EXPECT_LE(rel(down(gdbeta), dbeta), kTol) << training;
  }
}

TEST(GpuOps, ActivationsAddDropout) {
  SKIP_WITHOUT_GPU();
  const int64_t n = 10007;
  Vec x = randn(n, 21), b = randn(n, 22), dy = randn(n, 23);
  Dev gx(x), gb(b), gdy(dy), gy(n), gdx(n), gmask(n);
  for (Activation act : {Activation::leaky_relu, Activation::relu}) {
    Vec y(n), dx(n);
    activation_forward(y.data(), x.data(), n, act);
    activation_backward(dx.data(), dy.data(), y.data(), n, act);
    cuda::activation_forward(ctx(), gy.get(), gx.get(), n, act);
    cuda::activation_backward(ctx(), gdx.get(), gdy.get(), gy.get(), n, act);
    EXPECT_EQ(down(gy), y);
    EXPECT_EQ(down(gdx), dx);
  }
  Vec sum(n);
  add_forward(sum.data(), x.data(), b.data(), n);
  cuda::add_forward(ctx(), gy.get(), gx.get(), gb.get(), n);
  EXPECT_EQ(down(gy), sum);
  for (bool training : {true, false}) {
    Vec y(n), mask(n), dx(n);
    dropout_forward(y.data(), mask.data(), x.data(), n, 0.1f, 12345, training);
    dropout_backward(dx.data(), dy.data(), mask.data(), n);
    cuda::dropout_forward(ctx(), gy.get(), gmask.get(), gx.get(), n, 0.1f, 12345, training);
    cuda::dropout_backward(ctx(), gdx.get(), gdy.get(), gmask.get(), n);
    EXPECT_EQ(down(gmask), mask) << "the same hash mask, training " << training;
    EXPECT_EQ(down(gy), y);
    EXPECT_EQ(down(gdx), dx);
  }
}

TEST(GpuOps, MaxPoolAndAdaptiveAvgPool) {
  SKIP_WITHOUT_GPU();
  for (auto [NC, H, W] : {std::tuple{6, 7, 9}, std::tuple{4, 17, 16}}) {
    const int Ho = H / 2, Wo = W / 2;
    Vec x = randn(size_t(NC) * H * W, 31), dy = randn(size_t(NC) * Ho * Wo, 32);
    Vec y(dy.size()), dx(x.size());
    maxpool2d_forward(y.data(), x.data(), NC, H, W);
    maxpool2d_backward(dx.data(), dy.data(), x.data(), NC, H, W);
    Dev gx(x), gdy(dy), gy(y.size()), gdx(dx.size());
    cuda::maxpool2d_forward(ctx(), gy.get(), gx.get(), NC, H, W);
    cuda::maxpool2d_backward(ctx(), gdx.get(), gdy.get(), gx.get(), NC, H, W);
    EXPECT_EQ(down(gy), y);
    EXPECT_EQ(down(gdx), dx);
  }
  // (2, 16) -> (4, 8) upsamples time (the encoder's case); (5, 7) -> (3, 2) overlapping bins.
  for (auto [NC, H, W, Ho, Wo] : {std::tuple{5, 2, 16, 4, 8}, std::tuple{3, 5, 7, 3, 2}}) {
    Vec x = randn(size_t(NC) * H * W, 33), dy = randn(size_t(NC) * Ho * Wo, 34);
    Vec y(dy.size()), dx(x.size());
    adaptive_avgpool2d_forward(y.data(), x.data(), NC, H, W, Ho, Wo);
    adaptive_avgpool2d_backward(dx.data(), dy.data(), NC, H, W, Ho, Wo);
    Dev gx(x), gdy(dy), gy(y.size()), gdx(dx.size());
    cuda::adaptive_avgpool2d_forward(ctx(), gy.get(), gx.get(), NC, H, W, Ho, Wo);
    cuda::adaptive_avgpool2d_backward(ctx(), gdx.get(), gdy.get(), NC, H, W, Ho, Wo);
    EXPECT_LE(rel(down(gy), y), 1e-6);
    EXPECT_LE(rel(down(gdx), dx), 1e-6);
  }
}

TEST(GpuOps, ChannelAttention) {
  SKIP_WITHOUT_GPU();
  const int N = 3, C = 32, Cr = 2, HW = 300;
  const size_t n = size_t(N) * C * HW;
  Vec x = randn(n, 41), w1 = randn(Cr * C, 42, 0.3f), w2 = randn(C * Cr, 43, 0.3f),
      dy = randn(n, 44);
  Vec avg(N * C), mx(N * C), ha(N * Cr), hm(N * Cr), att(N * C), y(n), dx(n);
  std::vector<int32_t> arg(N * C);
  ChannelAttentionSaved<float> s{avg.data(), mx.data(), arg.data(),
                                 ha.data(),  hm.data(), att.data()};
  channel_attention_forward(y.data(), s, x.data(), w1.data(), w2.data(), N, C, Cr, HW);
  Vec dw1 = randn(w1.size(), 45), dw2 = randn(w2.size(), 46);
  Dev gdw1(dw1), gdw2(dw2);
  channel_attention_backward(dx.data(), dw1.data(), dw2.data(), dy.data(), s, x.data(), w1.data(),
                             w2.data(), N, C, Cr, HW);
  Dev gx(x), gw1(w1), gw2(w2), gdy(dy), gy(n), gdx(n), gavg(N * C), gmx(N * C), gha(N * Cr),
      ghm(N * Cr), gatt(N * C), scratch(cuda::channel_attention_scratch_size(N, C, Cr));
  DeviceBuffer<int32_t> garg(N * C);
  ChannelAttentionSaved<float> gs{gavg.get(), gmx.get(), garg.get(),
                                  gha.get(),  ghm.get(), gatt.get()};
  cuda::channel_attention_forward(ctx(), gy.get(), gs, gx.get(), gw1.get(), gw2.get(), N, C, Cr,
                                  HW);
  cuda::channel_attention_backward(ctx(), gdx.get(), gdw1.get(), gdw2.get(), gdy.get(), gs,
                                   gx.get(), gw1.get(), gw2.get(), N, C, Cr, HW, scratch.get());
  EXPECT_LE(rel(down(gy), y), kTol);
  EXPECT_LE(rel(down(gatt), att), kTol);
  EXPECT_EQ(down(gmx), mx);
  EXPECT_EQ(garg.download(), arg);
  EXPECT_LE(rel(down(gdx), dx), kTol);
  EXPECT_LE(rel(down(gdw1), dw1), kTol);
  EXPECT_LE(rel(down(gdw2), dw2), kTol);
}

TEST(GpuOps, PrototypicalLosses) {
  SKIP_WITHOUT_GPU();
  // An episode as the sampler makes it: k classes x 2*n_shot positives, then their negatives.
  const int k = 4, n_shot = 3, D = 96, B = 2 * k * 2 * n_shot;
  std::vector<int> labels(B);
  for (int i = 0; i < B; ++i) labels[i] = (i % (B / 2)) / (2 * n_shot) * 2 + (i >= B / 2);
  Vec emb = randn(size_t(B) * D, 51, 0.5f);
  Dev gemb(emb), gdemb(emb.size());
  cuda::CudaProtoLoss loss(B, D);
  for (bool filter : {false, true}) {
    Vec demb(emb.size());
    const LossResult want =
        filter ? prototypical_loss_filter_negative(emb.data(), labels.data(), B, D, n_shot,
                                                   demb.data())
               : prototypical_loss(emb.data(), labels.data(), B, D, n_shot, demb.data());
    const LossResult got =
        loss.compute(ctx(), gemb.get(), labels.data(), B, n_shot, filter, gdemb.get());
    EXPECT_NEAR(got.loss, want.loss, 1e-6 * std::abs(want.loss)) << filter;
    EXPECT_EQ(got.accuracy, want.accuracy) << filter;
    EXPECT_LE(rel(down(gdemb), demb), kTol) << filter;
  }
  labels[0] = 99;  // a label with one sample: the CPU op's error
  EXPECT_THROW(loss.compute(ctx(), gemb.get(), labels.data(), B, n_shot, false, gdemb.get()),
               Error);
}

TEST(GpuOps, AdamSteps) {
  SKIP_WITHOUT_GPU();
  const int64_t n = 5003;
  Vec p = randn(n, 61), m(n, 0.0f), v(n, 0.0f);
  Dev gp(p), gm(n), gv(n), gg(n);
  const AdamParams a{2e-3f, 0.9f, 0.999f, 1e-8f};
  for (int t = 1; t <= 3; ++t) {
    Vec g = randn(n, 62 + t);
    gg.upload(g);
    adam_step_cpu(p.data(), g.data(), m.data(), v.data(), n, t, a);
    cuda::adam_step(ctx(), gp.get(), gg.get(), gm.get(), gv.get(), n, t, a);
    ctx().synchronize();
  }
  EXPECT_LE(rel(down(gp), p), 1e-6);
  EXPECT_LE(rel(down(gm), m), 1e-6);
  EXPECT_LE(rel(down(gv), v), 1e-6);
}

TEST(GpuOps, SegmentGatherEqualsCpu) {
  SKIP_WITHOUT_GPU();
  test::TempDir dir;
  const int M = 8;
  FeatureStore store(M, 0.5f, 2.0f);
  for (int f = 0; f < 2; ++f) {
    const Vec feat = randn(size_t(40 + 10 * f) * M, 70 + f);
    const std::string path = (dir / ("f" + std::to_string(f) + ".npy")).string();
    npy_write(path, feat.data(), {size_t(40 + 10 * f), size_t(M)});
    store.add(path);
  }
  // long (random crop), exact, short (tile or pad) events in both files
  std::vector<Draw> draws{{{0, 2, 30}, 0}, {{1, 5, 15}, 1}, {{1, 40, 43}, 2}, {{0, 38, 40}, 3}};
  const int seg = 10;
  cuda::CudaFeatures gf(store, int(draws.size()));
  Dev out(draws.size() * seg * M);
  for (const std::string mode : {"tile", "pad"}) {
    std::mt19937_64 r1(9), r2(9);
    Vec want(draws.size() * seg * M);
    gather_segments(store, draws, seg, mode, r1, want.data());
    gf.gather(ctx(), draws, seg, mode, r2, out.get());
    EXPECT_EQ(down(out), want) << mode;
    EXPECT_EQ(r1(), r2()) << "the generator advanced identically";
  }
}

FeaturesConfig small_config(const std::string& arch) {
  FeaturesConfig f;
  f.arch = arch;
  f.drop_rate = 0.1;
  f.n_mels = 32;
  f.time_max_pool_dim = 4;
  f.embedding_dim = 4 * 64 * 2;  // pool (2, 4) -> (4, 2): time upsampled as in the real model
  return f;
}

// The whole encoder: the same init (same seed), the same dropout masks; training forward,
// backward, running statistics, then an eval forward. Gradients pass through ~20 ops whose
// summation orders differ between cuDNN and OpenBLAS: 1e-3 for them, 1e-4 for the embeddings.
void check_encoder(const std::string& arch) {
  const int B = 6, T = 17;
  const FeaturesConfig f = small_config(arch);
  Encoder cpu(f, B, T, 5);
  CudaEncoder gpu(f, B, T, 5);
  ASSERT_EQ(gpu.num_params(), cpu.params().size());
  Vec x = randn(size_t(B) * T * f.n_mels, 81), demb = randn(size_t(B) * cpu.dim(), 82);
  Dev gx(x), gemb(demb.size()), gdemb(demb);
  Vec emb(demb.size());
  cpu.zero_grad();
  gpu.zero_grad();
  cpu.forward(x.data(), B, T, true, emb.data());
  gpu.forward(gx.get(), B, T, true, gemb.get());
  gpu.context().synchronize();
  EXPECT_LE(rel(gemb.download(), emb), kTol) << arch << " training forward";
  cpu.backward(demb.data());
  gpu.backward(gdemb.get());
  gpu.context().synchronize();
  Vec ggrad(gpu.num_params());
  FSL_CUDA_CHECK(cudaMemcpy(ggrad.data(), gpu.grads(), ggrad.size() * 4, cudaMemcpyDeviceToHost));
  EXPECT_LE(rel(ggrad, Vec(cpu.grads().begin(), cpu.grads().end())), 1e-3) << arch << " grads";
  const auto want = cpu.state();
  const auto got = gpu.state();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_EQ(got[i].name, want[i].name);
    ASSERT_EQ(got[i].dtype, want[i].dtype);
    if (want[i].dtype == DType::i64) {
      EXPECT_EQ(*static_cast<int64_t*>(got[i].data), *static_cast<int64_t*>(want[i].data));
      continue;
    }
    const float* g = static_cast<float*>(got[i].data);
    const float* w = static_cast<float*>(want[i].data);
    EXPECT_LE(rel(Vec(g, g + got[i].numel()), Vec(w, w + want[i].numel())), kTol) << want[i].name;
  }
  cpu.forward(x.data(), B, T, false, emb.data());
  gpu.forward(gx.get(), B, T, false, gemb.get());
  gpu.context().synchronize();
  EXPECT_LE(rel(gemb.download(), emb), kTol) << arch << " eval forward";
}

TEST(GpuOps, EncoderV1MatchesCpu) {
  SKIP_WITHOUT_GPU();
  check_encoder("v1");
}
TEST(GpuOps, EncoderV2MatchesCpu) {
  SKIP_WITHOUT_GPU();
  check_encoder("v2");
}

}  // namespace
}  // namespace fsl
#endif  // FSL_HAVE_CUDA
