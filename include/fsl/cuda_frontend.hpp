// The CUDA front end: the same features as fsl::Frontend (src/frontend.cpp), computed on the GPU.
// Per chunk of a long recording: frame + window + centre-pad (one kernel) -> batched cuFFT
// (double, as the CPU's FFTW) -> power + mel (fused sparse kernel, or power kernel + cuBLAS
// SGEMM) -> log / PCEN (smoother as a parallel scan, state carried across chunks).
// This header needs no CUDA headers: without FSL_HAVE_CUDA, src/cuda_frontend_stub.cpp makes
// cuda_device_available() return false and CudaFrontend's constructor throw.
#pragma once
#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "fsl/frontend.hpp"

namespace fsl {

// True when a CUDA device can be used; otherwise false with the reason in *why (one line).
bool cuda_device_available(std::string* why = nullptr);

// How the mel projection runs; both give the same features, a GPU benchmark says which is faster.
enum class CudaMelPath {
  kFused,  // one kernel: power of the bins each band covers, summed against its triangle
  kGemm,   // power kernel, then cuBLAS SGEMM of (frames, bins) x filterbank^T
};

// One GPU front end: device buffers for one chunk, pinned host staging buffers, a stream, a cuFFT
// plan and a cuBLAS handle, all made once here. Device memory is bounded by max_chunk_samples
// (samples per chunk, padding context included; values below n_fft+1 mean one frame per chunk):
// a longer signal is processed chunk by chunk with identical results. Not thread-safe: share one
// behind a mutex or make one per thread.
class CudaFrontend {
 public:
  CudaFrontend(const FrontendParams& p, size_t max_chunk_samples = size_t(1) << 22);
  ~CudaFrontend();
  CudaFrontend(const CudaFrontend&) = delete;
  CudaFrontend& operator=(const CudaFrontend&) = delete;

  // Same contract as Frontend::compute: type -> (1 + n/hop, n_mels) row-major for each of
  // "logmel", "pcen"; throws Error on an unknown type or n == 0.
  std::map<std::string, std::vector<float>> compute(const float* x, size_t n,
                                                    const std::vector<std::string>& types);

  void set_mel_path(CudaMelPath path) { mel_path_ = path; }
  size_t frames_per_chunk() const;
  const FrontendParams& params() const { return p_; }

 private:
  struct Impl;
  FrontendParams p_;
  CudaMelPath mel_path_ = CudaMelPath::kFused;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fsl
