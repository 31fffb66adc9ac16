// CudaEncoder when the library is built without CUDA: callers may name it unconditionally; the
// constructor throws (the same one-line error as the CUDA front end's stub).
#ifndef FSL_HAVE_CUDA
#include "fsl/cuda_encoder.hpp"
#include "fsl/error.hpp"

namespace fsl {

struct CudaEncoder::Impl {};

CudaEncoder::CudaEncoder(const FeaturesConfig&, int, int, uint64_t, bool) {
  fail("CUDA encoder: built without CUDA");
}
CudaEncoder::~CudaEncoder() = default;
void CudaEncoder::forward(const float*, int, int, bool, float*) {}
void CudaEncoder::backward(const float*) {}
float* CudaEncoder::params() { return nullptr; }
float* CudaEncoder::grads() { return nullptr; }
size_t CudaEncoder::num_params() const { return 0; }
void CudaEncoder::zero_grad() {}
int CudaEncoder::dim() const { return 0; }
int CudaEncoder::min_frames() const { return 0; }
int CudaEncoder::max_batch() const { return 0; }
int CudaEncoder::max_frames() const { return 0; }
const FeaturesConfig& CudaEncoder::config() const {
  static const FeaturesConfig none;
  return none;
}
CudaContext& CudaEncoder::context() { fail("CUDA encoder: built without CUDA"); }
std::vector<NamedTensor> CudaEncoder::state() { return {}; }
void CudaEncoder::load_state() {}
void CudaEncoder::freeze_dropout(bool) {}
void CudaEncoder::set_dropout_seed(uint64_t) {}

}  // namespace fsl
#endif  // FSL_HAVE_CUDA
