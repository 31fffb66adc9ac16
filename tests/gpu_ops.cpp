// The CUDA backend against the CPU backend (itself checked by finite differences in
// test_grad_ops.cpp / test_grad_model.cpp and against PyTorch in test_model_torch.cpp): every case
// of the op table (tests/op_cases.hpp) forward and backward, the loss's error path, the segment
// gather and the whole encoder. fp32 with TF32 off: relative Frobenius error <= 1e-4 per op
// unless the case says otherwise (exact for the pointwise ops). Every test skips, with the
// reason, without a CUDA device (or when built without CUDA).
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
#include "op_cases.hpp"
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
std::string case_name(const testing::TestParamInfo<test::OpCase>& info) { return info.param.name; }

class GpuOpsTable : public testing::TestWithParam<test::OpCase> {};
INSTANTIATE_TEST_SUITE_P(Table, GpuOpsTable, testing::ValuesIn(test::op_cases()), case_name);

TEST_P(GpuOpsTable, MatchesCpu) {
  SKIP_WITHOUT_GPU();
  const test::OpCase& c = GetParam();
  if (!c.no_cuda.empty()) GTEST_SKIP() << c.name << ": not on CUDA: " << c.no_cuda;
  auto cpu = test::make_tensors<float>(c);
  test::DeviceTensors gpu(ctx(), cpu);
  c.forward.f(cpu);
  c.cuda_forward(gpu);
  const std::vector<std::string> none;
  EXPECT_EQ(test::mismatches(c, gpu.download(), cpu, test::written_by_forward), none) << "forward";
  if (!c.backward) return;
  c.backward.f(cpu);
  c.cuda_backward(gpu);
  EXPECT_EQ(test::mismatches(c, gpu.download(), cpu, test::written_by_backward), none)
      << "backward";
}

TEST(GpuOps, PrototypicalLossRejectsTooFewSamples) {
  SKIP_WITHOUT_GPU();
  std::vector<int> labels = test::cases::sampler_episode(4, 3);
  const int B = int(labels.size()), D = 96;
  labels[0] = 99;  // a label with one sample: the CPU op's error
  Dev emb(randn(size_t(B) * D, 51, 0.5f)), demb(size_t(B) * D);
  cuda::CudaProtoLoss loss(B, D);
  EXPECT_THROW(loss.compute(ctx(), emb.get(), labels.data(), B, 3, false, demb.get()), Error);
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
  EXPECT_LE(test::rel_error(gemb.download(), emb), kTol) << arch << " training forward";
  cpu.backward(demb.data());
  gpu.backward(gdemb.get());
  gpu.context().synchronize();
  Vec ggrad(gpu.num_params());
  FSL_CUDA_CHECK(cudaMemcpy(ggrad.data(), gpu.grads(), ggrad.size() * 4, cudaMemcpyDeviceToHost));
  EXPECT_LE(test::rel_error(ggrad, Vec(cpu.grads().begin(), cpu.grads().end())), 1e-3)
      << arch << " grads";
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
    EXPECT_LE(test::rel_error(Vec(g, g + got[i].numel()), Vec(w, w + want[i].numel())), kTol)
        << want[i].name;
  }
  cpu.forward(x.data(), B, T, false, emb.data());
  gpu.forward(gx.get(), B, T, false, gemb.get());
  gpu.context().synchronize();
  EXPECT_LE(test::rel_error(gemb.download(), emb), kTol) << arch << " eval forward";
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
