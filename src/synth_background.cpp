// Backgrounds (coloured, non-stationary noise, bursts, chorus) and the randomised channel
// (EQ, band limits, reverberation, gain changes, clipping).
#include <algorithm>
#include <cmath>
#include <complex>

#include "fsl/synth.hpp"
#include "synth_rng.hpp"

namespace fsl {

using namespace synth_detail;

namespace {

void scale_to_unit_rms(std::vector<float>& x) {
  double ms = mean_square(x.data(), x.size());
  if (ms <= 0) return;
  float g = float(1.0 / std::sqrt(ms));
  for (auto& v : x) v *= g;
}

// Coloured noise, unit RMS. Pink: Paul Kellet's three-pole approximation of a 1/f slope.
std::vector<float> coloured_noise(NoiseColour colour, std::mt19937_64& rng, size_t n) {
  std::vector<float> x(n);
  fill_gauss(rng, x.data(), n);
  if (colour == NoiseColour::pink) {
    double b0 = 0, b1 = 0, b2 = 0;
    for (auto& v : x) {
      b0 = 0.99765 * b0 + v * 0.0990460;
      b1 = 0.96300 * b1 + v * 0.2965164;
      b2 = 0.57000 * b2 + v * 1.0526913;
      v = float(b0 + b1 + b2 + v * 0.1848);
    }
  } else if (colour == NoiseColour::brown) {
    double y = 0;
    for (auto& v : x) v = float(y = 0.995 * y + v);
  }
  scale_to_unit_rms(x);
  return x;
}

// Piecewise-linear gain (in dB between knots every 2-8 s), applied in place to x[s0, s0+n).
void apply_slow_gain(float* x, size_t n, double swing_db, std::mt19937_64& rng, int sr) {
  if (swing_db <= 0 || n == 0) return;
  size_t i = 0;
  double g0 = db_to_amp(uniform(rng, -swing_db, swing_db));
  while (i < n) {
    size_t len = std::min(n - i, size_t(uniform(rng, 2, 8) * sr) + 1);
    double g1 = db_to_amp(uniform(rng, -swing_db, swing_db));
    for (size_t k = 0; k < len; ++k) x[i + k] *= float(g0 + (g1 - g0) * double(k) / double(len));
    i += len;
    g0 = g1;
  }
}

// Fade-in/out window of a burst, `fade` samples each side.
inline float burst_window(size_t i, size_t n, size_t fade) {
  size_t d = std::min(i, n - 1 - i);
  return d >= fade ? 1.0f : float(0.5 - 0.5 * std::cos(M_PI * double(d) / double(fade)));
}

void add_rain(std::vector<float>& bed, std::mt19937_64& rng, int sr, double level_db) {
  size_t n = std::min(bed.size(), size_t(uniform(rng, 1, 8) * sr));
  size_t s0 = size_t(uniform(rng) * double(bed.size() - n));
  std::vector<float> r(n);
  fill_gauss(rng, r.data(), n);
  for (size_t i = n - 1; i > 0; --i) r[i] -= r[i - 1];  // first difference: a bright hiss
  // Droplets: exponentially decaying ticks of random sign.
  double rate = uniform(rng, 50, 300), tau = uniform(rng, 0.001, 0.005) * sr;
  for (double t = 0; t < double(n);) {
    size_t s = size_t(t);
    float a = float(uniform(rng, 2, 10) * (chance(rng, 0.5) ? 1 : -1));
    for (size_t k = 0; s + k < n && k < size_t(5 * tau); ++k)
      r[s + k] += a * float(std::exp(-double(k) / tau));
    t += -std::log(1.0 - uniform(rng)) * sr / rate;
  }
  scale_to_unit_rms(r);
  float g = float(db_to_amp(level_db));
  size_t fade = std::min(n / 2, size_t(0.3 * sr));
  for (size_t i = 0; i < n; ++i) bed[s0 + i] += g * burst_window(i, n, fade) * r[i];
}

void add_wind(std::vector<float>& bed, std::mt19937_64& rng, int sr, double level_db) {
  size_t n = std::min(bed.size(), size_t(uniform(rng, 2, 10) * sr));
  size_t s0 = size_t(uniform(rng) * double(bed.size() - n));
  std::vector<float> w = coloured_noise(NoiseColour::brown, rng, n);
  double a = std::exp(-kTwoPi * uniform(rng, 80, 500) / sr), s1 = 0, s2 = 0;
  for (auto& v : w) {  // two one-pole low-pass stages: gusts rumble
    s1 = a * s1 + (1 - a) * v;
    s2 = a * s2 + (1 - a) * s1;
    v = float(s2);
  }
  scale_to_unit_rms(w);
  double fm = uniform(rng, 0.1, 1.0) / sr, ph = uniform(rng, 0, kTwoPi);
  float g = float(db_to_amp(level_db));
  size_t fade = std::min(n / 2, size_t(0.5 * sr));
  for (size_t i = 0; i < n; ++i) {
    float gust = float(0.6 + 0.4 * std::sin(ph + kTwoPi * fm * double(i)));
    bed[s0 + i] += g * gust * burst_window(i, n, fade) * w[i];
  }
}

int poisson_count(std::mt19937_64& rng, double mean) {  // small means: inversion by products
  double l = std::exp(-mean), p = uniform(rng);
  int k = 0;
  while (p > l && k < 10000) {
    p *= uniform(rng);
    ++k;
  }
  return k;
}

// RBJ biquad, direct form I, in place.
struct Biquad {
  double b0, b1, b2, a1, a2;
  void run(std::vector<float>& x) const {
    double x1 = 0, x2 = 0, y1 = 0, y2 = 0;
    for (auto& v : x) {
      double y = b0 * v + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2;
      x2 = x1, x1 = v, y2 = y1, y1 = y;
      v = float(y);
    }
  }
};

enum class BiquadKind { peak, lowpass, highpass };

Biquad make_biquad(BiquadKind kind, double f, double q, double gain_db, int sr) {
  double w = kTwoPi * f / sr, cw = std::cos(w), alpha = std::sin(w) / (2 * q);
  double A = std::pow(10.0, gain_db / 40.0), b0, b1, b2, a0, a1, a2;
  if (kind == BiquadKind::peak) {
    b0 = 1 + alpha * A, b1 = -2 * cw, b2 = 1 - alpha * A;
    a0 = 1 + alpha / A, a1 = -2 * cw, a2 = 1 - alpha / A;
  } else if (kind == BiquadKind::lowpass) {
    b0 = (1 - cw) / 2, b1 = 1 - cw, b2 = (1 - cw) / 2;
    a0 = 1 + alpha, a1 = -2 * cw, a2 = 1 - alpha;
  } else {
    b0 = (1 + cw) / 2, b1 = -(1 + cw), b2 = (1 + cw) / 2;
    a0 = 1 + alpha, a1 = -2 * cw, a2 = 1 - alpha;
  }
  return {b0 / a0, b1 / a0, b2 / a0, a1 / a0, a2 / a0};
}

// In-place iterative radix-2 FFT; n a power of two; inverse without the 1/n.
void fft(std::vector<std::complex<double>>& a, bool inverse) {
  const size_t n = a.size();
  for (size_t i = 1, j = 0; i < n; ++i) {
    size_t bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) std::swap(a[i], a[j]);
  }
  for (size_t len = 2; len <= n; len <<= 1) {
    double ang = (inverse ? kTwoPi : -kTwoPi) / double(len);
    std::complex<double> wl(std::cos(ang), std::sin(ang));
    for (size_t i = 0; i < n; i += len) {
      std::complex<double> w(1, 0);
      for (size_t k = 0; k < len / 2; ++k) {
        auto u = a[i + k], v = a[i + k + len / 2] * w;
        a[i + k] = u + v;
        a[i + k + len / 2] = u - v;
        w *= wl;
      }
    }
  }
}

}  // namespace

std::vector<float> convolve_same(const std::vector<float>& x, const std::vector<float>& h) {
  const size_t n = x.size(), l = std::max<size_t>(1, h.size());
  size_t m = 1;
  while (m < 2 * l) m <<= 1;
  m = std::max<size_t>(m, 4096);
  const size_t block = m - l + 1;  // input samples per FFT: block + l - 1 = m
  std::vector<std::complex<double>> H(m), buf(m);
  for (size_t i = 0; i < h.size(); ++i) H[i] = h[i];
  fft(H, false);
  std::vector<float> y(n, 0.0f);
  // Two real blocks per complex FFT (one in the real part, one in the imaginary part): h is
  // real, so the two convolutions come back separated in the real and imaginary parts.
  for (size_t s = 0; s < n; s += 2 * block) {
    std::fill(buf.begin(), buf.end(), std::complex<double>(0, 0));
    for (size_t i = 0; i < block && s + i < n; ++i) buf[i].real(x[s + i]);
    for (size_t i = 0; i < block && s + block + i < n; ++i) buf[i].imag(x[s + block + i]);
    fft(buf, false);
    for (size_t i = 0; i < m; ++i) buf[i] *= H[i];
    fft(buf, true);
    for (size_t i = 0; i < m; ++i) {
      if (s + i < n) y[s + i] += float(buf[i].real() / double(m));
      if (s + block + i < n) y[s + block + i] += float(buf[i].imag() / double(m));
    }
  }
  return y;
}

BackgroundSpec draw_background(std::mt19937_64& rng, const SynthOptions& opt, double max_hz) {
  BackgroundSpec bg;
  bg.colour = NoiseColour(uniform_int(rng, 0, 2));
  bg.level_swing_db = uniform(rng, 0, opt.randomise ? 9 : 6);
  bg.rain_per_min = chance(rng, 0.5) ? uniform(rng, 0.2, 2.0) : 0.0;
  bg.wind_per_min = chance(rng, 0.5) ? uniform(rng, 0.2, 2.0) : 0.0;
  bg.burst_db = uniform(rng, 0, opt.randomise ? 14 : 10);
  int callers = uniform_int(rng, 0, 3);
  for (int i = 0; i < callers; ++i) bg.chorus.push_back(draw_class(rng, opt, max_hz));
  bg.chorus_per_s = callers ? uniform(rng, 0.3, 3.0) : 0.0;
  bg.chorus_db = uniform(rng, -15, -3);
  return bg;
}

std::vector<float> render_background(const BackgroundSpec& bg, std::mt19937_64& rng, int sr,
                                     size_t n) {
  std::vector<float> bed = coloured_noise(bg.colour, rng, n);
  if (n < size_t(sr)) return bed;
  const double minutes = double(n) / sr / 60.0;
  for (int k = poisson_count(rng, bg.rain_per_min * minutes); k > 0; --k)
    add_rain(bed, rng, sr, bg.burst_db + uniform(rng, -3, 3));
  for (int k = poisson_count(rng, bg.wind_per_min * minutes); k > 0; --k)
    add_wind(bed, rng, sr, bg.burst_db + uniform(rng, 0, 6));
  if (!bg.chorus.empty()) {
    int calls = poisson_count(rng, bg.chorus_per_s * double(n) / sr);
    for (int k = 0; k < calls; ++k) {
      const CallClass& c = bg.chorus[size_t(uniform_int(rng, 0, int(bg.chorus.size()) - 1))];
      std::vector<float> y = render_call(c, rng, sr);
      if (y.size() >= n) continue;
      size_t s0 = size_t(uniform(rng) * double(n - y.size()));
      float g = float(db_to_amp(bg.chorus_db + uniform(rng, -4, 4)));
      for (size_t i = 0; i < y.size(); ++i) bed[s0 + i] += g * y[i];
    }
  }
  apply_slow_gain(bed.data(), n, bg.level_swing_db, rng, sr);
  return bed;
}

void apply_channel(std::vector<float>& x, std::mt19937_64& rng, int sr) {
  if (x.empty()) return;
  const double nyq = 0.5 * sr;
  for (int k = uniform_int(rng, 0, 3); k > 0; --k)  // random EQ
    make_biquad(BiquadKind::peak, log_uniform(rng, 100, 0.8 * nyq), uniform(rng, 0.5, 2.0),
                uniform(rng, -9, 9), sr)
        .run(x);
  if (chance(rng, 0.4))  // band limits of a cheap recorder
    make_biquad(BiquadKind::lowpass, log_uniform(rng, std::min(4000.0, 0.6 * nyq), 0.9 * nyq),
                0.707, 0, sr)
        .run(x);
  if (chance(rng, 0.4))
    make_biquad(BiquadKind::highpass, log_uniform(rng, 40, 400), 0.707, 0, sr).run(x);
  if (chance(rng, 0.6)) {  // reverberation: direct path plus exponentially decaying noise
    double rt60 = uniform(rng, 0.1, 1.0), wet = uniform(rng, 0.1, 0.6);
    std::vector<float> h(std::max<size_t>(2, size_t(rt60 * sr)));
    fill_gauss(rng, h.data(), h.size());
    double decay = 6.907755 / (rt60 * sr);  // ln(1000): -60 dB at rt60
    double e = 0;
    for (size_t i = 0; i < h.size(); ++i) {
      h[i] *= float(std::exp(-decay * double(i)));
      e += double(h[i]) * h[i];
    }
    float g = float(wet / std::sqrt(e));
    for (auto& v : h) v *= g;
    h[0] += 1.0f;
    x = convolve_same(x, h);
  }
  apply_slow_gain(x.data(), x.size(), uniform(rng, 0, 6), rng, sr);
  if (chance(rng, 0.15)) {  // clipping: overdriven input stage
    float peak = 0;
    for (float v : x) peak = std::max(peak, std::fabs(v));
    if (peak > 0) {
      float drive = float(uniform(rng, 1.2, 3.0)) / peak;
      for (auto& v : x) v = std::clamp(v * drive, -1.0f, 1.0f);
    }
  }
}

}  // namespace fsl
