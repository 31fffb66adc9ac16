// Helpers shared by the gradient checks (test_grad_ops, test_grad_model): random double inputs
// and the dot product that turns an output into a scalar loss.
#pragma once
#include <cstdint>
#include <random>
#include <vector>

namespace fsl::test {

using Vec = std::vector<double>;

inline Vec randn(size_t n, uint64_t seed, double scale = 1.0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> d(0.0, scale);
  Vec v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

inline double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

}  // namespace fsl::test
