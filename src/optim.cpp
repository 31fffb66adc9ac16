#include "fsl/optim.hpp"

#include <cmath>

#include "fsl/error.hpp"
#include "fsl/op_math.hpp"

namespace fsl {

void adam_step_cpu(float* p, const float* g, float* m, float* v, int64_t n, int64_t t,
                   const AdamParams& a) {
  const float bc1 = float(1.0 - std::pow(double(a.beta1), double(t)));
  const float bc2 = float(1.0 - std::pow(double(a.beta2), double(t)));
  for (int64_t i = 0; i < n; ++i)
    om::adam_update(p[i], g[i], m[i], v[i], a.lr, a.beta1, a.beta2, a.eps, bc1, bc2);
}

Adam::Adam(size_t n, AdamParams params) : p_(params), m_(n, 0.0f), v_(n, 0.0f) {}

void Adam::step(std::span<float> params, std::span<const float> grads) {
  if (params.size() != m_.size() || grads.size() != m_.size())
    fail("Adam: ", params.size(), " parameters / ", grads.size(), " gradients, expected ",
         m_.size());
  ++t_;
  adam_step_cpu(params.data(), grads.data(), m_.data(), v_.data(), int64_t(m_.size()), t_, p_);
}

std::vector<NamedTensor> Adam::state() {
  const int64_t n = int64_t(m_.size());
  return {{"optimizer.exp_avg", {n}, DType::f32, m_.data()},
          {"optimizer.exp_avg_sq", {n}, DType::f32, v_.data()},
          {"optimizer.step", {}, DType::i64, &t_}};
}

double StepLR::lr_at(int epoch) const {
  if (step_size <= 0) fail("train_param.scheduler_step_size must be > 0, got ", step_size);
  return base_lr * std::pow(gamma, double(epoch / step_size));
}

}  // namespace fsl
