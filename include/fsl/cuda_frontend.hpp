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

// One GPU front end: kPipelineSlots (include/fsl/frontend_scan.hpp) sets of device buffers for
// one chunk, pinned host staging buffers and a stream each, cuFFT plans and cuBLAS handles, all
// made once here. Device memory is bounded by max_chunk_samples (samples per chunk, padding
// context included; values below n_fft+1 mean one frame per chunk): a longer signal is processed
// chunk by chunk with the same results, chunk c+1's upload overlapping chunk c's kernels and
// chunk c-1's download. Default 2^20 samples (47 s at 22.05 kHz, ~4k frames, ~90 MB of device
// buffers per slot): 10 minutes of audio is ~13 chunks, so the pipeline's fill and drain (one
// chunk's upload, one chunk's download) are a small part of the whole, while a chunk still fills
// the GPU (4k frames of 1024-point FFTs). Not thread-safe: share one behind a mutex or make one
// per thread.
class CudaFrontend final : public FeatureExtractor {
 public:
  CudaFrontend(const FrontendParams& p, size_t max_chunk_samples = size_t(1) << 20);
  ~CudaFrontend() override;

  // FeatureExtractor::compute_into: host memory of either kind: page-locked memory
  // (cudaMallocHost, cudaHostRegister) is copied from / to directly; pageable memory is staged
  // through the front end's pinned buffers by a few host threads, overlapped with the GPU's work
  // on the neighbouring chunks. Returns when the outputs are written; a device pointer is an
  // Error (see compute_device). (compute(), which returns fresh vectors, pays their first touch.)
  void compute_into(const float* x, size_t n, const std::vector<std::string>& types,
                    float* logmel_out, float* pcen_out) override;
  const char* name() const override { return "CUDA front end"; }

  // The same features from device memory to device memory (cudaMalloc or managed): no host
  // copies at all. Starts after the work queued on the legacy default stream (a plain
  // cudaMemcpy / cudaMemset of d_x); work on the caller's own streams must be finished first.
  // Returns when the GPU has finished. A host pointer is an Error.
  void compute_device(const float* d_x, size_t n, const std::vector<std::string>& types,
                      float* d_logmel, float* d_pcen);

  void set_mel_path(CudaMelPath path) { mel_path_ = path; }
  size_t frames_per_chunk() const;

 private:
  struct Impl;
  CudaMelPath mel_path_ = CudaMelPath::kFused;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fsl
