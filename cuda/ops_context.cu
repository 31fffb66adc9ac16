// CudaContext (handles, stream, convolution plans, workspace), DeviceArena and DeviceBuffer.
#include <algorithm>
#include <cstdlib>
#include <string>

#include "fsl/cuda_check.hpp"
#include "fsl/cuda_context.hpp"
#include "fsl/cuda_frontend.hpp"
#include "fsl/error.hpp"

namespace fsl {

CudaContext::CudaContext(bool allow_tf32) {
  const char* env = std::getenv("FSL_CUDA_TF32");
  tf32_ = allow_tf32 || (env && std::string(env) == "1");
  std::string why;
  if (!cuda_device_available(&why)) fail("CUDA backend: ", why);
  // A blocking stream: the synchronous cudaMemcpy/cudaMemset of DeviceBuffer (legacy default
  // stream) are ordered with the ops' kernels without extra events.
  FSL_CUDA_CHECK(cudaStreamCreate(&stream_));
  FSL_CUDA_CHECK(cudnnCreate(&cudnn_));
  FSL_CUDA_CHECK(cudnnSetStream(cudnn_, stream_));
  FSL_CUDA_CHECK(cublasCreate(&cublas_));
  FSL_CUDA_CHECK(cublasSetStream(cublas_, stream_));
  // Pedantic: plain fp32 FMA, no TF32 and no reduced-precision shortcuts (as OpenBLAS on the CPU).
  FSL_CUDA_CHECK(
      cublasSetMathMode(cublas_, tf32_ ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_PEDANTIC_MATH));
}

CudaContext::~CudaContext() {
  // No throwing here: a failing release at exit has nobody to report to.
  for (auto& [key, p] : plans_) {
    cudnnDestroyTensorDescriptor(p.x);
    cudnnDestroyTensorDescriptor(p.y);
    cudnnDestroyTensorDescriptor(p.bias);
    cudnnDestroyFilterDescriptor(p.w);
    cudnnDestroyConvolutionDescriptor(p.conv);
  }
  if (workspace_) cudaFree(workspace_);
  if (scratch_) cudaFree(scratch_);
  if (cublas_) cublasDestroy(cublas_);
  if (cudnn_) cudnnDestroy(cudnn_);
  if (stream_) cudaStreamDestroy(stream_);
}

void CudaContext::synchronize() const { FSL_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

void CudaContext::grow_workspace(size_t bytes) {
  if (bytes <= workspace_bytes_) return;
  FSL_CUDA_CHECK(cudaStreamSynchronize(stream_));  // the old workspace may still be in use
  if (workspace_) FSL_CUDA_CHECK(cudaFree(workspace_));
  workspace_ = nullptr;
  FSL_CUDA_CHECK(cudaMalloc(&workspace_, bytes));
  workspace_bytes_ = bytes;
}

double* CudaContext::reduction_scratch(size_t doubles) {
  if (doubles <= scratch_doubles_) return scratch_;
  FSL_CUDA_CHECK(cudaStreamSynchronize(stream_));  // the old scratch may still be in use
  if (scratch_) FSL_CUDA_CHECK(cudaFree(scratch_));
  scratch_ = nullptr;
  FSL_CUDA_CHECK(cudaMalloc(&scratch_, doubles * sizeof(double)));
  scratch_doubles_ = doubles;
  return scratch_;
}

namespace {

// The fastest measured algorithm that succeeded, fits kMaxWorkspaceBytes, keeps to FMA math
// unless TF32 is allowed, and (when asked) is deterministic; failing that the fastest that ran.
template <typename Perf>
Perf pick_algorithm(const Perf* perf, int count, bool tf32, bool want_deterministic,
                    const char* what) {
  for (int pass = 0; pass < 2; ++pass)
    for (int i = 0; i < count; ++i) {
      const Perf& p = perf[i];
      if (p.status != CUDNN_STATUS_SUCCESS || p.memory > CudaContext::kMaxWorkspaceBytes) continue;
      if (pass == 0 && !tf32 && p.mathType != CUDNN_FMA_MATH) continue;
      if (pass == 0 && want_deterministic && p.determinism != CUDNN_DETERMINISTIC) continue;
      return p;
    }
  fail("cuDNN: no usable ", what, " algorithm");
}

}  // namespace

const ConvPlan& CudaContext::conv_plan(int N, int Cin, int H, int W, int Cout, int k) {
  const auto key = std::make_tuple(N, Cin, H, W, Cout, k);
  if (auto it = plans_.find(key); it != plans_.end()) return it->second;
  ConvPlan p;
  p.N = N, p.Cin = Cin, p.H = H, p.W = W, p.Cout = Cout, p.k = k;
  FSL_CUDA_CHECK(cudnnCreateTensorDescriptor(&p.x));
  FSL_CUDA_CHECK(cudnnCreateTensorDescriptor(&p.y));
  FSL_CUDA_CHECK(cudnnCreateTensorDescriptor(&p.bias));
  FSL_CUDA_CHECK(cudnnCreateFilterDescriptor(&p.w));
  FSL_CUDA_CHECK(cudnnCreateConvolutionDescriptor(&p.conv));
  FSL_CUDA_CHECK(
      cudnnSetTensor4dDescriptor(p.x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, N, Cin, H, W));
  FSL_CUDA_CHECK(
      cudnnSetTensor4dDescriptor(p.y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, N, Cout, H, W));
  FSL_CUDA_CHECK(
      cudnnSetTensor4dDescriptor(p.bias, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, Cout, 1, 1));
  FSL_CUDA_CHECK(
      cudnnSetFilter4dDescriptor(p.w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, Cout, Cin, k, k));
  FSL_CUDA_CHECK(cudnnSetConvolution2dDescriptor(p.conv, k / 2, k / 2, 1, 1, 1, 1,
                                                 CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  FSL_CUDA_CHECK(cudnnSetConvolutionMathType(p.conv, tf32_ ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH));

  // cudnnFind* times every algorithm on this shape (it allocates its own buffers: planning only).
  int got = 0;
  cudnnConvolutionFwdAlgoPerf_t fwd[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
  FSL_CUDA_CHECK(cudnnFindConvolutionForwardAlgorithm(cudnn_, p.x, p.w, p.conv, p.y,
                                                      CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, fwd));
  const auto f = pick_algorithm(fwd, got, tf32_, false, "convolution forward");
  cudnnConvolutionBwdDataAlgoPerf_t bd[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
  FSL_CUDA_CHECK(cudnnFindConvolutionBackwardDataAlgorithm(
      cudnn_, p.w, p.y, p.conv, p.x, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &got, bd));
  const auto d = pick_algorithm(bd, got, tf32_, true, "convolution backward-data");
  cudnnConvolutionBwdFilterAlgoPerf_t bf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
  FSL_CUDA_CHECK(cudnnFindConvolutionBackwardFilterAlgorithm(
      cudnn_, p.x, p.y, p.conv, p.w, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &got, bf));
  const auto g = pick_algorithm(bf, got, tf32_, true, "convolution backward-filter");
  p.fwd = f.algo, p.bwd_data = d.algo, p.bwd_filter = g.algo;
  p.workspace = std::max({f.memory, d.memory, g.memory});
  grow_workspace(p.workspace);
  return plans_.emplace(key, p).first->second;
}

DeviceArena::~DeviceArena() {
  if (base_) cudaFree(base_);
}

void DeviceArena::allocate(size_t bytes) {
  if (base_) FSL_CUDA_CHECK(cudaFree(base_));
  base_ = nullptr;
  capacity_ = used_ = 0;
  FSL_CUDA_CHECK(cudaMalloc(&base_, bytes ? bytes : kAlign));
  FSL_CUDA_CHECK(cudaMemset(base_, 0, bytes ? bytes : kAlign));
  capacity_ = bytes;
}

void* DeviceArena::take_bytes(size_t bytes) {
  const size_t n = aligned(bytes);
  if (used_ + n > capacity_)
    fail("DeviceArena: request of ", bytes, " bytes exceeds the planned ", capacity_, " (", used_,
         " used): a planning bug");
  void* p = base_ + used_;
  used_ += n;
  return p;
}

template <typename T>
DeviceBuffer<T>::DeviceBuffer(size_t n) : n_(n) {
  FSL_CUDA_CHECK(cudaMalloc(&p_, sizeof(T) * (n ? n : 1)));
  FSL_CUDA_CHECK(cudaMemset(p_, 0, sizeof(T) * (n ? n : 1)));
}
template <typename T>
DeviceBuffer<T>::DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) {
  upload(host);
}
template <typename T>
DeviceBuffer<T>::~DeviceBuffer() {
  if (p_) cudaFree(p_);
}
template <typename T>
void DeviceBuffer<T>::upload(const T* host, size_t n) {
  if (n > n_) fail("DeviceBuffer: upload of ", n, " elements into ", n_);
  if (n) FSL_CUDA_CHECK(cudaMemcpy(p_, host, n * sizeof(T), cudaMemcpyHostToDevice));
}
template <typename T>
std::vector<T> DeviceBuffer<T>::download() const {
  std::vector<T> h(n_);
  if (n_) FSL_CUDA_CHECK(cudaMemcpy(h.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost));
  return h;
}
template class DeviceBuffer<float>;
template class DeviceBuffer<double>;
template class DeviceBuffer<int32_t>;
template class DeviceBuffer<int64_t>;

}  // namespace fsl
