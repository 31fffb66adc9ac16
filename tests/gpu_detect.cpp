// Detection on the GPU (runtime.device=cuda): EncoderEmbedder's CUDA path (the CUDA training
// backend's embed()) against its CPU path (EncoderInference) on the same checkpoint: a randomly
// initialised encoder with random BN running statistics, random windows, more windows than one
// GPU batch, and a window longer than the first plan (a rebuild). fp32, TF32 off: relative
// Frobenius error <= 1e-4, the encoder's own GPU/CPU bound (tests/gpu_ops.cpp). Skips, with the
// reason, without a CUDA device.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "fsl/detect.hpp"
#include "fsl/model.hpp"
#include "fsl/safetensors.hpp"
#include "gpu_testutil.hpp"
#include "testutil.hpp"

namespace {

constexpr double kTol = 1e-4;

// A checkpoint of a seeded random encoder whose BN running statistics are not the identity, so
// eval mode's use of them is checked too.
std::string random_checkpoint(const fsl::Config& c, const fsl::test::TempDir& dir) {
  fsl::Encoder enc(c.features, 1, 64, 11);
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> shift(-0.2f, 0.2f), scale(0.5f, 1.5f);
  for (auto& t : enc.state()) {
    if (t.dtype != fsl::DType::f32) continue;
    float* v = static_cast<float*>(t.data);
    if (t.name.find("running_mean") != std::string::npos)
      for (int64_t i = 0; i < t.numel(); ++i) v[i] = shift(rng);
    if (t.name.find("running_var") != std::string::npos)
      for (int64_t i = 0; i < t.numel(); ++i) v[i] = scale(rng);
  }
  const std::string path = (dir / "random.safetensors").string();
  fsl::save_checkpoint(path, enc);
  return path;
}

void expect_cuda_matches_cpu(const std::string& arch) {
  SKIP_WITHOUT_GPU();
  fsl::test::TempDir dir;
  fsl::Config c;
  c.features.arch = arch;
  c.eval.batch_size = 5;  // 12 windows: three GPU batches
  const std::string ckpt = random_checkpoint(c, dir);
  c.runtime.device = "cpu";
  fsl::EncoderEmbedder cpu(c, ckpt, 1.5, 2.0);
  c.runtime.device = "cuda";
  fsl::EncoderEmbedder gpu(c, ckpt, 1.5, 2.0);
  ASSERT_EQ(gpu.dim(), cpu.dim());
  EXPECT_EQ(gpu.map_stride(), 0) << "shared maps are CPU only";
  std::mt19937 rng(9);
  std::normal_distribution<float> feature(1.5f, 3.f);
  for (int T : {17, 40, 96}) {  // 96 > the first plan's 64 frames: both rebuild
    const int B = 12, M = c.features.n_mels;
    std::vector<float> x(size_t(B) * T * M);
    for (auto& v : x) v = feature(rng);
    std::vector<float> want(size_t(B) * cpu.dim()), got(want.size());
    cpu.embed(x.data(), B, T, M, want.data());
    gpu.embed(x.data(), B, T, M, got.data());
    EXPECT_LE(fsl::test::relative_frobenius(got, want), kTol) << arch << " T " << T;
  }
}

TEST(GpuDetect, CudaEmbedderMatchesCpuV1) { expect_cuda_matches_cpu("v1"); }
TEST(GpuDetect, CudaEmbedderMatchesCpuV2) { expect_cuda_matches_cpu("v2"); }

}  // namespace
