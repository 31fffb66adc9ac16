// The CUDA front end against the CPU front end (itself checked against librosa in
// test_frontend.cpp). Every test skips, with the reason, where no CUDA device is present.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "fsl/cuda_frontend.hpp"
#include "fsl/error.hpp"
#include "fsl/frontend.hpp"
#include "gpu_testutil.hpp"
#include "testutil.hpp"
#ifdef FSL_HAVE_CUDA
#include <cuda_runtime.h>
#endif

using fsl::test::relative_frobenius;

namespace fsl {
namespace {

std::vector<float> random_signal(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 0.2f);
  std::vector<float> x(n);
  for (auto& v : x) v = d(rng);
  // A quiet stretch and a tone, so PCEN's gain control sees near-silent bands too.
  for (size_t i = n / 3; i < n / 2; ++i) x[i] *= 1e-4f;
  for (size_t i = 0; i < n; ++i) x[i] += 0.1f * std::sin(0.05f * float(i));
  return x;
}

const std::vector<std::string> kTypes{"logmel", "pcen"};

// pcen <= 1e-4 relative Frobenius, except where the CPU's PCEN is rounding noise: a one-sample
// signal with reflect padding is a constant frame, whose spectrum lies below fmin, so every mel
// band holds FFT round-off (~1e-33, pcen ~1e-23) that double FFTs on two devices round
// differently. There, both must be within 1e-6 of zero.
void expect_pcen_close(const std::vector<float>& got, const std::vector<float>& want,
                       const char* name, size_t n, bool reflect) {
  double rms = 0;
  for (float v : want) rms += double(v) * v;
  rms = std::sqrt(rms / double(want.size()));
  if (rms < 1e-6) {
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_LE(std::fabs(got[i] - want[i]), 1e-6) << name << " n " << n << " i " << i;
    return;
  }
  EXPECT_LE(relative_frobenius(got, want), 1e-4) << name << " n " << n << " reflect " << reflect;
}

// GPU (both mel paths) vs CPU on one signal: logmel <= 1e-5, pcen <= 1e-4 (relative Frobenius).
// The reference is the CPU's double STFT, the GPU's own precision (cuFFT D2Z); the CPU's float
// STFT is checked against that same double path by test_frontend_stft.
void expect_gpu_matches_cpu(const FrontendParams& p, const std::vector<float>& x,
                            size_t max_chunk_samples = size_t(1) << 22) {
  FrontendParams double_stft = p;
  double_stft.stft = fsl::StftPath::double_only;
  Frontend cpu(double_stft);
  const auto want = cpu.compute(x.data(), x.size(), kTypes);
  CudaFrontend gpu(p, max_chunk_samples);
  for (CudaMelPath path : {CudaMelPath::kFused, CudaMelPath::kGemm}) {
    gpu.set_mel_path(path);
    const auto got = gpu.compute(x.data(), x.size(), kTypes);
    const char* name = path == CudaMelPath::kFused ? "fused" : "gemm";
    ASSERT_EQ(got.at("logmel").size(), cpu.num_frames(x.size()) * size_t(p.n_mels));
    EXPECT_LE(relative_frobenius(got.at("logmel"), want.at("logmel")), 1e-5)
        << name << " n " << x.size() << " reflect " << p.reflect_pad;
    expect_pcen_close(got.at("pcen"), want.at("pcen"), name, x.size(), p.reflect_pad);
  }
}

TEST(GpuFrontend, MatchesCpuOnRandomSignalsOfOddLengths) {
  SKIP_WITHOUT_GPU();
  FrontendParams p;
  for (size_t n : {size_t(22050 * 3 + 17), size_t(4097), size_t(100003)})
    expect_gpu_matches_cpu(p, random_signal(n, unsigned(n)));
}

TEST(GpuFrontend, ConstantAndReflectPaddingMatchCpu) {
  SKIP_WITHOUT_GPU();
  FrontendParams p;
  for (bool reflect : {false, true}) {
    p.reflect_pad = reflect;
    expect_gpu_matches_cpu(p, random_signal(30011, 3));
    expect_gpu_matches_cpu(p, random_signal(30011, 3), 5000);  // padding seen from small chunks
  }
}

TEST(GpuFrontend, SignalShorterThanFftMatchesCpu) {
  SKIP_WITHOUT_GPU();
  FrontendParams p;
  for (bool reflect : {false, true}) {
    p.reflect_pad = reflect;
    for (size_t n : {size_t(1), size_t(100), size_t(511), size_t(1000)})
      expect_gpu_matches_cpu(p, random_signal(n, unsigned(n) + 1));
  }
}

TEST(GpuFrontend, BaselinePcenHopAndOtherParametersMatchCpu) {
  SKIP_WITHOUT_GPU();
  FrontendParams p;
  p.sr = 16000, p.n_fft = 512, p.hop = 160, p.n_mels = 64, p.fmax = 8000, p.pcen_hop = 512;
  expect_gpu_matches_cpu(p, random_signal(48000 + 7, 9));
}

// Chunks change nothing: framing reads the same samples, the mel of a frame is computed the same
// way, PCEN carries its smoother state. Not bitwise: the scan groups the smoother's maps by chunk
// and tile, and cuFFT's batch size differs, so allow rounding (far below any boundary error).
TEST(GpuFrontend, ChunkedEqualsWholeFile) {
  SKIP_WITHOUT_GPU();
  FrontendParams p;
  for (bool reflect : {false, true}) {
    p.reflect_pad = reflect;
    const std::vector<float> x = random_signal(60001, 11);
    CudaFrontend whole(p, size_t(1) << 24);
    const auto want = whole.compute(x.data(), x.size(), kTypes);
    for (size_t max_chunk : {size_t(1), size_t(1025), size_t(1300), size_t(9000)}) {
      CudaFrontend chunked(p, max_chunk);
      EXPECT_LT(chunked.frames_per_chunk(), whole.frames_per_chunk());
      const auto got = chunked.compute(x.data(), x.size(), kTypes);
      EXPECT_LE(relative_frobenius(got.at("logmel"), want.at("logmel")), 1e-7) << max_chunk;
      EXPECT_LE(relative_frobenius(got.at("pcen"), want.at("pcen")), 1e-6) << max_chunk;
    }
  }
}

TEST(GpuFrontend, OneTypeAloneAndBadRequests) {
  SKIP_WITHOUT_GPU();
  FrontendParams p;
  const std::vector<float> x = random_signal(20000, 5);
  CudaFrontend gpu(p);
  const auto both = gpu.compute(x.data(), x.size(), kTypes);
  const auto pcen_only = gpu.compute(x.data(), x.size(), {"pcen"});
  EXPECT_EQ(pcen_only.size(), 1u);
  EXPECT_EQ(pcen_only.at("pcen"), both.at("pcen"));  // same kernels, same order: bitwise
  const auto logmel_only = gpu.compute(x.data(), x.size(), {"logmel"});
  EXPECT_EQ(logmel_only.size(), 1u);
  EXPECT_EQ(logmel_only.at("logmel"), both.at("logmel"));
  EXPECT_EQ(gpu.compute(x.data(), x.size(), kTypes), both);  // the PCEN state starts afresh
  EXPECT_THROW(gpu.compute(x.data(), x.size(), {"mfcc"}), Error);
  EXPECT_THROW(gpu.compute(x.data(), 0, kTypes), Error);
}

#ifdef FSL_HAVE_CUDA
// Page-locked host floats and device floats for the caller-memory paths; freed on scope exit.
struct PinnedFloats {
  float* p = nullptr;
  size_t n;
  explicit PinnedFloats(size_t n_) : n(n_) {
    if (cudaMallocHost(&p, sizeof(float) * n) != cudaSuccess) throw std::bad_alloc();
  }
  ~PinnedFloats() { cudaFreeHost(p); }
  std::vector<float> vec() const { return std::vector<float>(p, p + n); }
};
struct DeviceFloats {
  float* p = nullptr;
  size_t n;
  explicit DeviceFloats(size_t n_) : n(n_) {
    if (cudaMalloc(&p, sizeof(float) * n) != cudaSuccess) throw std::bad_alloc();
  }
  ~DeviceFloats() { cudaFree(p); }
  std::vector<float> vec() const {
    std::vector<float> v(n);
    EXPECT_EQ(cudaMemcpy(v.data(), p, sizeof(float) * n, cudaMemcpyDeviceToHost), cudaSuccess);
    return v;
  }
};

// compute_into (pageable, pinned, mixed) and compute_device equal compute() bit for bit: the same
// kernels on the same chunks, only the copies differ. Both mel paths, a single chunk and many
// chunks (odd sizes: the last chunk is short), each type alone and both together.
TEST(GpuFrontend, CallerMemoryAndDevicePathsEqualComputeExactly) {
  SKIP_WITHOUT_GPU();
  FrontendParams p;
  const std::vector<float> x = random_signal(300007, 21);
  const size_t size = (1 + x.size() / size_t(p.hop)) * size_t(p.n_mels);
  PinnedFloats px(x.size()), plog(size), ppcen(size);
  std::copy(x.begin(), x.end(), px.p);
  DeviceFloats dx(x.size()), dlog(size), dpcen(size);
  ASSERT_EQ(cudaMemcpy(dx.p, x.data(), sizeof(float) * x.size(), cudaMemcpyHostToDevice),
            cudaSuccess);
  for (size_t max_chunk : {size_t(1) << 22, size_t(20000), size_t(5003)})
    for (CudaMelPath path : {CudaMelPath::kFused, CudaMelPath::kGemm}) {
      CudaFrontend gpu(p, max_chunk);
      gpu.set_mel_path(path);
      const auto want = gpu.compute(x.data(), x.size(), kTypes);
      const std::string where = "chunk " + std::to_string(max_chunk) +
                                (path == CudaMelPath::kFused ? " fused" : " gemm");
      std::vector<float> log(size), pcen(size);
      gpu.compute_into(x.data(), x.size(), kTypes, log.data(), pcen.data());  // pageable
      EXPECT_EQ(log, want.at("logmel")) << where;
      EXPECT_EQ(pcen, want.at("pcen")) << where;
      gpu.compute_into(px.p, x.size(), kTypes, plog.p, ppcen.p);  // pinned, no staging
      EXPECT_EQ(plog.vec(), want.at("logmel")) << where;
      EXPECT_EQ(ppcen.vec(), want.at("pcen")) << where;
      std::fill(log.begin(), log.end(), 0.0f);
      std::fill(ppcen.p, ppcen.p + size, 0.0f);
      gpu.compute_into(px.p, x.size(), kTypes, log.data(), ppcen.p);  // pinned in, mixed out
      EXPECT_EQ(log, want.at("logmel")) << where;
      EXPECT_EQ(ppcen.vec(), want.at("pcen")) << where;
      gpu.compute_device(dx.p, x.size(), kTypes, dlog.p, dpcen.p);
      EXPECT_EQ(dlog.vec(), want.at("logmel")) << where;
      EXPECT_EQ(dpcen.vec(), want.at("pcen")) << where;
      // One type alone: the other output is not touched and may be null.
      ASSERT_EQ(cudaMemset(dpcen.p, 0, sizeof(float) * size), cudaSuccess);
      gpu.compute_device(dx.p, x.size(), {"pcen"}, nullptr, dpcen.p);
      EXPECT_EQ(dpcen.vec(), want.at("pcen")) << where;
      std::fill(plog.p, plog.p + size, 0.0f);
      gpu.compute_into(px.p, x.size(), {"logmel"}, plog.p, nullptr);
      EXPECT_EQ(plog.vec(), want.at("logmel")) << where;
    }
}

// The pipelined chunks equal one whole-file chunk on odd sizes and tiny chunks, through compute()
// and through the pinned and device paths (rounding only, as ChunkedEqualsWholeFile).
TEST(GpuFrontend, PipelinedChunksEqualWholeFileOnOddSizes) {
  SKIP_WITHOUT_GPU();
  FrontendParams p;
  for (size_t n : {size_t(1), size_t(513), size_t(4097), size_t(100003)}) {
    const std::vector<float> x = random_signal(n, unsigned(n) + 5);
    const size_t size = (1 + n / size_t(p.hop)) * size_t(p.n_mels);
    CudaFrontend whole(p, size_t(1) << 24);
    const auto want = whole.compute(x.data(), n, kTypes);
    PinnedFloats px(n), plog(size), ppcen(size);
    std::copy(x.begin(), x.end(), px.p);
    DeviceFloats dx(n), dlog(size), dpcen(size);
    ASSERT_EQ(cudaMemcpy(dx.p, x.data(), sizeof(float) * n, cudaMemcpyHostToDevice), cudaSuccess);
    for (size_t max_chunk : {size_t(1), size_t(1025), size_t(1300), size_t(9000)}) {
      CudaFrontend chunked(p, max_chunk);
      const auto got = chunked.compute(x.data(), n, kTypes);
      chunked.compute_into(px.p, n, kTypes, plog.p, ppcen.p);
      chunked.compute_device(dx.p, n, kTypes, dlog.p, dpcen.p);
      const std::string where = "n " + std::to_string(n) + " chunk " + std::to_string(max_chunk);
      EXPECT_LE(relative_frobenius(got.at("logmel"), want.at("logmel")), 1e-7) << where;
      EXPECT_LE(relative_frobenius(got.at("pcen"), want.at("pcen")), 1e-6) << where;
      EXPECT_EQ(plog.vec(), got.at("logmel")) << where;
      EXPECT_EQ(ppcen.vec(), got.at("pcen")) << where;
      EXPECT_EQ(dlog.vec(), got.at("logmel")) << where;
      EXPECT_EQ(dpcen.vec(), got.at("pcen")) << where;
    }
  }
}

TEST(GpuFrontend, CallerMemoryPathsRejectMissingOrMisplacedBuffers) {
  SKIP_WITHOUT_GPU();
  FrontendParams p;
  const std::vector<float> x = random_signal(5000, 2);
  const size_t size = (1 + x.size() / size_t(p.hop)) * size_t(p.n_mels);
  CudaFrontend gpu(p);
  std::vector<float> log(size), pcen(size);
  DeviceFloats dx(x.size()), dlog(size);
  EXPECT_THROW(gpu.compute_into(x.data(), x.size(), kTypes, log.data(), nullptr), Error);
  EXPECT_THROW(gpu.compute_into(x.data(), 0, kTypes, log.data(), pcen.data()), Error);
  EXPECT_THROW(gpu.compute_into(x.data(), x.size(), {"mfcc"}, log.data(), pcen.data()), Error);
  EXPECT_THROW(gpu.compute_into(dx.p, x.size(), {"logmel"}, log.data(), nullptr), Error);
  EXPECT_THROW(gpu.compute_device(x.data(), x.size(), {"logmel"}, dlog.p, nullptr), Error);
  EXPECT_THROW(gpu.compute_device(dx.p, x.size(), {"logmel"}, log.data(), nullptr), Error);
  EXPECT_THROW(gpu.compute_device(dx.p, x.size(), {"pcen"}, dlog.p, nullptr), Error);
  // Still usable after the refusals.
  gpu.compute_into(x.data(), x.size(), kTypes, log.data(), pcen.data());
  EXPECT_EQ(log, gpu.compute(x.data(), x.size(), {"logmel"}).at("logmel"));
}
#endif  // FSL_HAVE_CUDA

}  // namespace
}  // namespace fsl
