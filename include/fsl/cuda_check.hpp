// One checking macro for every CUDA runtime, cuFFT, cuBLAS and cuDNN call:
//   FSL_CUDA_CHECK(cudaMalloc(&p, bytes));
// On failure it throws fsl::Error("<file>:<line>: <call>: <library>: <message>").
// Only for code built with CUDA (cuda/*.cu, or .cpp files under #ifdef FSL_HAVE_CUDA).
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <cufft.h>

#include <string>

#include "fsl/error.hpp"

namespace fsl::cuda_detail {

inline const char* cufft_message(cufftResult r) {
  switch (r) {
    case CUFFT_SUCCESS: return "success";
    case CUFFT_INVALID_PLAN: return "invalid plan";
    case CUFFT_ALLOC_FAILED: return "allocation failed";
    case CUFFT_INVALID_TYPE: return "invalid type";
    case CUFFT_INVALID_VALUE: return "invalid value";
    case CUFFT_INTERNAL_ERROR: return "internal error";
    case CUFFT_EXEC_FAILED: return "execution failed";
    case CUFFT_SETUP_FAILED: return "setup failed (no driver or device?)";
    case CUFFT_INVALID_SIZE: return "invalid size";
    case CUFFT_UNALIGNED_DATA: return "unaligned data";
    case CUFFT_INVALID_DEVICE: return "invalid device";
    case CUFFT_NO_WORKSPACE: return "no workspace";
    case CUFFT_NOT_IMPLEMENTED: return "not implemented";
    case CUFFT_NOT_SUPPORTED: return "not supported";
    default: return "unknown cuFFT error";
  }
}

// Each returns true on success, else fills `what` with "<library>: <message>".
inline bool ok(cudaError_t s, std::string& what) {
  if (s == cudaSuccess) return true;
  what = std::string("CUDA: ") + cudaGetErrorName(s) + ": " + cudaGetErrorString(s);
  return false;
}
inline bool ok(cufftResult s, std::string& what) {
  if (s == CUFFT_SUCCESS) return true;
  what = std::string("cuFFT: ") + cufft_message(s) + " (" + std::to_string(int(s)) + ")";
  return false;
}
inline bool ok(cublasStatus_t s, std::string& what) {
  if (s == CUBLAS_STATUS_SUCCESS) return true;
  what = std::string("cuBLAS: ") + cublasGetStatusName(s) + ": " + cublasGetStatusString(s);
  return false;
}
inline bool ok(cudnnStatus_t s, std::string& what) {
  if (s == CUDNN_STATUS_SUCCESS) return true;
  what = std::string("cuDNN: ") + cudnnGetErrorString(s);
  return false;
}

template <typename Status>
inline void check(Status s, const char* call, const char* file, int line) {
  std::string what;
  if (!ok(s, what)) fail(file, ":", line, ": ", call, ": ", what);
}

}  // namespace fsl::cuda_detail

#define FSL_CUDA_CHECK(call) ::fsl::cuda_detail::check((call), #call, __FILE__, __LINE__)
