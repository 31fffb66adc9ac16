// Adam over one flat parameter buffer (PyTorch's torch.optim.Adam: bias correction, eps outside
// the square root, no weight decay) and StepLR by epoch.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "fsl/tensor.hpp"

namespace fsl {

struct AdamParams {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
};

// The op: one Adam step over n elements at step t (1-based). p (n), g (n), m (n), v (n).
void adam_step_cpu(float* p, const float* g, float* m, float* v, int64_t n, int64_t t,
                   const AdamParams& a);

class Adam {
 public:
  explicit Adam(size_t n, AdamParams params = {});
  // One step: params -= update(grads). Sizes must be the constructor's n.
  void step(std::span<float> params, std::span<const float> grads);
  void set_lr(float lr) { p_.lr = lr; }
  float lr() const { return p_.lr; }
  int64_t step_count() const { return t_; }
  // Moments and step as named tensors ("optimizer.exp_avg", "optimizer.exp_avg_sq",
  // "optimizer.step" int64 scalar): views to save in, or load into, a checkpoint.
  std::vector<NamedTensor> state();

 private:
  AdamParams p_;
  std::vector<float> m_, v_;
  int64_t t_ = 0;
};

// lr(epoch) = base_lr * gamma^(floor(epoch / step_size)), epoch counted from 0 (torch StepLR).
struct StepLR {
  double base_lr = 1e-3;
  int step_size = 10;
  double gamma = 0.65;
  double lr_at(int epoch) const;
};

}  // namespace fsl
