// Adam on the GPU: one fused kernel over the flat parameter buffer (om::adam_update per element,
// the same bias corrections as adam_step_cpu, computed on the host in double).
#include <cmath>

#include "fsl/cuda_ops.hpp"
#include "fsl/error.hpp"
#include "fsl/op_math.hpp"
#include "ops_common.hpp"

namespace fsl::cuda {

namespace {
__global__ void adam_kernel(float* p, const float* g, float* m, float* v, int64_t n, float lr,
                            float beta1, float beta2, float eps, float bc1, float bc2) {
  FSL_KERNEL_LOOP(i, n) {
    float pi = p[i], mi = m[i], vi = v[i];
    om::adam_update(pi, g[i], mi, vi, lr, beta1, beta2, eps, bc1, bc2);
    p[i] = pi, m[i] = mi, v[i] = vi;
  }
}
}  // namespace

void adam_step(CudaContext& ctx, float* p, const float* g, float* m, float* v, int64_t n, int64_t t,
               const AdamParams& a) {
  const float bc1 = float(1.0 - std::pow(double(a.beta1), double(t)));
  const float bc2 = float(1.0 - std::pow(double(a.beta2), double(t)));
  adam_kernel<<<grid_for(n), kThreads, 0, ctx.stream()>>>(p, g, m, v, n, a.lr, a.beta1, a.beta2,
                                                          a.eps, bc1, bc2);
  FSL_CUDA_CHECK_LAUNCH();
}

CudaAdam::CudaAdam(size_t n, AdamParams params)
    : p_(params), n_(n), m_(n), v_(n), host_m_(n), host_v_(n) {}

void CudaAdam::step(CudaContext& ctx, float* params, const float* grads) {
  ++t_;
  adam_step(ctx, params, grads, m_.get(), v_.get(), int64_t(n_), t_, p_);
}

std::vector<NamedTensor> CudaAdam::state() {
  FSL_CUDA_CHECK(cudaDeviceSynchronize());
  host_m_ = m_.download();
  host_v_ = v_.download();
  const int64_t n = int64_t(n_);
  return {{"optimizer.exp_avg", {n}, DType::f32, host_m_.data()},
          {"optimizer.exp_avg_sq", {n}, DType::f32, host_v_.data()},
          {"optimizer.step", {}, DType::i64, &t_}};
}

void CudaAdam::load_state() {
  m_.upload(host_m_);
  v_.upload(host_v_);
}

}  // namespace fsl::cuda
