// Random draws for the synthesiser, written out so that results do not depend on the standard
// library's distribution implementations (std::normal_distribution differs between vendors).
#pragma once
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "fsl/op_math.hpp"

namespace fsl::synth_detail {

constexpr double kTwoPi = 6.283185307179586;

// Uniform in [0, 1).
inline double uniform(std::mt19937_64& rng) { return double(rng() >> 11) * 0x1.0p-53; }
inline double uniform(std::mt19937_64& rng, double lo, double hi) {
  return lo + (hi - lo) * uniform(rng);
}
// Log-uniform in [lo, hi] (frequencies, durations).
inline double log_uniform(std::mt19937_64& rng, double lo, double hi) {
  return lo * std::exp(std::log(hi / lo) * uniform(rng));
}
inline int uniform_int(std::mt19937_64& rng, int lo, int hi) {  // inclusive
  return lo + int(rng() % uint64_t(hi - lo + 1));
}
inline bool chance(std::mt19937_64& rng, double p) { return uniform(rng) < p; }

// Standard normal (Box-Muller; one value per call, simple and deterministic).
inline double gauss(std::mt19937_64& rng) {
  double u1 = 1.0 - uniform(rng);  // (0, 1]
  double u2 = uniform(rng);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(kTwoPi * u2);
}

// n standard normal samples (Marsaglia's polar method: two per accepted pair, no trigonometry).
inline void fill_gauss(std::mt19937_64& rng, float* out, size_t n) {
  size_t i = 0;
  while (i < n) {
    double a = 2.0 * uniform(rng) - 1.0, b = 2.0 * uniform(rng) - 1.0, s = a * a + b * b;
    if (s >= 1.0 || s == 0.0) continue;
    double r = std::sqrt(-2.0 * std::log(s) / s);
    out[i++] = float(a * r);
    if (i < n) out[i++] = float(b * r);
  }
}

// A seed for item `index` of stream `stream`, independent of how items are scheduled.
inline uint64_t derive_seed(uint64_t seed, uint64_t stream, uint64_t index) {
  return om::splitmix_finalise(seed * 0x9E3779B97F4A7C15ull + stream * 0xBF58476D1CE4E5B9ull +
                               index + 1);
}

inline double mean_square(const float* x, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += double(x[i]) * x[i];
  return n ? s / double(n) : 0.0;
}

inline double db_to_amp(double db) { return std::pow(10.0, db / 20.0); }

}  // namespace fsl::synth_detail
