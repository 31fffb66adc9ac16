// CudaContext: everything the CUDA ops share, made once: the stream, the cuDNN and cuBLAS
// handles (bound to the stream), the convolution plans (descriptors + algorithms found once per
// shape) and the one cuDNN workspace, grown only when a new plan needs more. Plus DeviceArena, the
// device twin of fsl::Arena (plan the sizes, allocate once, hand out aligned blocks).
//
// Only for code built with CUDA (cuda/*.cu, or .cpp files under #ifdef FSL_HAVE_CUDA).
// TF32 is off by default: convolutions use CUDNN_FMA_MATH and cuBLAS CUBLAS_PEDANTIC_MATH, so
// results follow IEEE fp32 like the CPU backend; CudaContext(true), or the environment variable
// FSL_CUDA_TF32=1 (no config key needed), allows TF32 tensor cores.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <tuple>
#include <utility>
#include <vector>

namespace fsl {

// One conv2d shape (stride 1, padding k/2): its descriptors and the algorithms found for it.
struct ConvPlan {
  int N = 0, Cin = 0, H = 0, W = 0, Cout = 0, k = 0;
  cudnnTensorDescriptor_t x = nullptr, y = nullptr, bias = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  cudnnConvolutionFwdAlgo_t fwd{};
  cudnnConvolutionBwdDataAlgo_t bwd_data{};
  cudnnConvolutionBwdFilterAlgo_t bwd_filter{};
  size_t workspace = 0;  // the largest of the three algorithms' needs
};

class CudaContext {
 public:
  // Throws fsl::Error (with the library's message) when no device can be used.
  explicit CudaContext(bool allow_tf32 = false);
  ~CudaContext();
  CudaContext(const CudaContext&) = delete;
  CudaContext& operator=(const CudaContext&) = delete;

  cudaStream_t stream() const { return stream_; }
  cudnnHandle_t cudnn() const { return cudnn_; }
  cublasHandle_t cublas() const { return cublas_; }
  bool tf32() const { return tf32_; }

  // The plan for this shape: made (algorithms searched, workspace grown) on first request, then
  // cached. Call it for every shape before the training loop so the loop allocates nothing.
  const ConvPlan& conv_plan(int N, int Cin, int H, int W, int Cout, int k);
  void* workspace() const { return workspace_; }
  // At least `doubles` doubles of device scratch for the ops' two-stage reductions (batch norm),
  // grown on first need (a sync + cudaMalloc, so the first training step sizes it), never shrunk.
  double* reduction_scratch(size_t doubles);
  size_t workspace_bytes() const { return workspace_bytes_; }

  void synchronize() const;

  // Limit on one algorithm's workspace: faster algorithms needing more are passed over.
  static constexpr size_t kMaxWorkspaceBytes = size_t(1) << 30;

 private:
  void grow_workspace(size_t bytes);
  cudaStream_t stream_ = nullptr;
  cudnnHandle_t cudnn_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  bool tf32_ = false;
  void* workspace_ = nullptr;
  double* scratch_ = nullptr;
  size_t scratch_doubles_ = 0;
  size_t workspace_bytes_ = 0;
  std::map<std::tuple<int, int, int, int, int, int>, ConvPlan> plans_;
};

// Device memory handed out in 256-byte aligned blocks: reserve() every block (a dry run) to learn
// the total, allocate() once, then take() the same blocks in the same order.
class DeviceArena {
 public:
  DeviceArena() = default;
  ~DeviceArena();
  DeviceArena(const DeviceArena&) = delete;
  DeviceArena& operator=(const DeviceArena&) = delete;

  static constexpr size_t kAlign = 256;
  static size_t aligned(size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

  void allocate(size_t bytes);  // frees any previous block; memory is zeroed
  template <typename T>
  T* take(size_t count) {
    return static_cast<T*>(take_bytes(count * sizeof(T)));
  }
  size_t capacity() const { return capacity_; }
  size_t used() const { return used_; }
  void reset() { used_ = 0; }

 private:
  void* take_bytes(size_t bytes);
  char* base_ = nullptr;
  size_t capacity_ = 0, used_ = 0;
};

// Device memory of n elements of T, freed on destruction; upload/download are synchronous
// (tests, checkpoints, set-up: never in the training step).
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t n);
  explicit DeviceBuffer(const std::vector<T>& host);
  ~DeviceBuffer();
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr, o.n_ = 0; }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    return *this;
  }
  T* get() const { return p_; }
  size_t size() const { return n_; }
  void upload(const T* host, size_t n);  // n <= size()
  void upload(const std::vector<T>& host) { upload(host.data(), host.size()); }
  std::vector<T> download() const;

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

}  // namespace fsl
