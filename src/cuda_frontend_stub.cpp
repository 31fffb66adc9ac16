// CudaFrontend when the library is built without CUDA: callers can use the API unconditionally;
// cuda_device_available() says why there is no GPU and the constructor throws.
#ifndef FSL_HAVE_CUDA
#include "fsl/cuda_frontend.hpp"
#include "fsl/error.hpp"

namespace fsl {

bool cuda_device_available(std::string* why) {
  if (why) *why = "built without CUDA";
  return false;
}

struct CudaFrontend::Impl {};

CudaFrontend::CudaFrontend(const FrontendParams& p, size_t) : FeatureExtractor(p) {
  fail("CUDA front end: built without CUDA");
}
CudaFrontend::~CudaFrontend() = default;

void CudaFrontend::compute_into(const float*, size_t, const std::vector<std::string>&, float*,
                                float*) {
  fail("CUDA front end: built without CUDA");
}

void CudaFrontend::compute_device(const float*, size_t, const std::vector<std::string>&, float*,
                                  float*) {
  fail("CUDA front end: built without CUDA");
}

size_t CudaFrontend::frames_per_chunk() const { return 0; }

}  // namespace fsl
#endif  // FSL_HAVE_CUDA
