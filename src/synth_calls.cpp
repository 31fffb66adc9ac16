// Parametric animal-like calls: class drawing, confusers, and rendering one instance.
#include <algorithm>
#include <cmath>

#include "fsl/error.hpp"
#include "fsl/synth.hpp"
#include "synth_rng.hpp"

namespace fsl {

using namespace synth_detail;

const char* to_string(CallShape shape) {
  switch (shape) {
    case CallShape::sweep:
      return "sweep";
    case CallShape::harmonic:
      return "harmonic";
    case CallShape::trill:
      return "trill";
    case CallShape::pulse_train:
      return "pulse_train";
    case CallShape::click:
      return "click";
    case CallShape::noisy:
      return "noisy";
  }
  return "?";
}

const char* to_string(Contour contour) {
  switch (contour) {
    case Contour::up:
      return "up";
    case Contour::down:
      return "down";
    case Contour::u:
      return "u";
    case Contour::inverted_u:
      return "inverted_u";
    case Contour::step:
      return "step";
    case Contour::flat:
      return "flat";
  }
  return "?";
}

namespace {

constexpr double kMinRamp = 0.002;  // s: shortest attack/release, bounds spectral splatter

bool is_pulsed(CallShape s) { return s == CallShape::pulse_train || s == CallShape::click; }

// Position in [0, 1] of the contour at relative time u in [0, 1] (0: f_lo, 1: f_hi, log scale).
inline double contour_at(Contour c, double u) {
  switch (c) {
    case Contour::up:
      return u;
    case Contour::down:
      return 1.0 - u;
    case Contour::u:
      return 1.0 - std::sin(M_PI * u);
    case Contour::inverted_u:
      return std::sin(M_PI * u);
    case Contour::step: {  // low, then a fast (10% of the call) smooth rise, then high
      double v = std::clamp((u - 0.45) / 0.1, 0.0, 1.0);
      return v * v * (3 - 2 * v);
    }
    case Contour::flat:
      return 0.5;
  }
  return 0.5;
}

double shortest_instance(const CallClass& c) {
  return c.duration * std::exp(-3 * c.duration_jitter);
}

// Spectral spread of the amplitude ramps and pulse windows, Hz.
double splatter_hz(const CallClass& c) {
  if (is_pulsed(c.shape)) return 2.0 / c.pulse_len;
  double ramp = std::max(kMinRamp, std::min(c.attack, c.release) * shortest_instance(c));
  return 1.5 / ramp;
}

// Keeps the class's band under max_hz: fewer partials first, then a lower pitch.
void fit_band(CallClass& c, double max_hz) {
  for (int guard = 0; guard < 40 && call_band(c).second > max_hz; ++guard) {
    if (c.partials > 1) {
      --c.partials;
    } else {
      c.f_lo *= 0.9;
      c.f_hi *= 0.9;
    }
  }
}

void draw_partials(CallClass& c, std::mt19937_64& rng, int max_partials) {
  c.partials = uniform_int(rng, 1, max_partials);
  c.partial_amp = {1, 0, 0, 0, 0, 0};
  for (int h = 1; h < c.partials; ++h) c.partial_amp[h] = float(uniform(rng, 0.1, 1.0));
  if (c.partials > 1 && chance(rng, 0.3)) c.partial_amp[0] = float(uniform(rng, 0.2, 0.6));
}

void draw_rhythm(CallClass& c, std::mt19937_64& rng) {
  for (auto& r : c.rhythm) r = float(uniform(rng, 0.5, 1.5));
  if (chance(rng, 0.4)) c.rhythm = {1, 1, 1, 1};  // regular
  c.rhythm_jitter = uniform(rng, 0.0, 0.15);
}

}  // namespace

std::pair<double, double> call_band(const CallClass& c) {
  double p_lo = std::exp(-3 * c.pitch_jitter), p_hi = std::exp(3 * c.pitch_jitter);
  double spread = splatter_hz(c);
  if (c.shape == CallShape::click || c.shape == CallShape::noisy) {
    double fc = 0.5 * (c.f_lo + c.f_hi), half = 0.5 * (c.f_hi - c.f_lo);
    return {std::max(0.0, fc * p_lo - half - spread), fc * p_hi + half + spread};
  }
  double lo = c.f_lo * p_lo, hi = c.f_hi * p_hi * c.partials;
  if (c.shape == CallShape::trill) {
    if (c.fm_trill) {
      lo *= 1 - c.mod_depth;
      hi *= 1 + c.mod_depth;
    }
    spread += c.mod_rate;
  }
  return {std::max(0.0, lo - spread), hi + spread};
}

CallClass draw_class(std::mt19937_64& rng, const SynthOptions& opt, double max_hz) {
  const bool wide = opt.randomise;
  const double band_lo = wide ? 100 : 300, band_hi = std::min(max_hz, wide ? 11000.0 : 8000.0);
  const double dur_lo = wide ? 0.010 : 0.030, dur_hi = wide ? 3.0 : 1.0;
  CallClass c;
  c.shape = CallShape(uniform_int(rng, 0, 5));
  c.contour = Contour(uniform_int(rng, 0, 4));
  c.duration = log_uniform(rng, dur_lo, dur_hi);
  c.duration_jitter = uniform(rng, 0.03, wide ? 0.25 : 0.15);
  c.pitch_jitter = uniform(rng, 0.01, wide ? 0.08 : 0.05);
  c.shape_jitter = uniform(rng, 0.02, wide ? 0.3 : 0.15);
  c.attack = uniform(rng, 0.05, 0.4);
  c.release = uniform(rng, 0.1, 0.5);
  double f0 = log_uniform(rng, band_lo, band_hi / 1.3);
  double ratio = log_uniform(rng, 1.15, wide ? 4.0 : 2.5);
  c.f_lo = f0;
  c.f_hi = std::min(f0 * ratio, band_hi);
  switch (c.shape) {
    case CallShape::sweep:
      draw_partials(c, rng, 3);
      break;
    case CallShape::harmonic:
      draw_partials(c, rng, 6);
      c.partials = std::max(c.partials, 3);
      for (int h = 1; h < c.partials; ++h)
        if (c.partial_amp[h] == 0) c.partial_amp[h] = float(uniform(rng, 0.1, 1.0));
      c.f_lo = log_uniform(rng, band_lo, std::max(band_lo * 1.01, band_hi / 4));
      c.f_hi = c.f_lo * log_uniform(rng, 1.0, 1.3);
      if (c.f_hi / c.f_lo < 1.05) c.contour = Contour::flat;
      break;
    case CallShape::trill:
      draw_partials(c, rng, 2);
      c.duration = std::max(c.duration, wide ? 0.08 : 0.15);
      c.fm_trill = chance(rng, 0.5);
      c.mod_rate = std::max(log_uniform(rng, 4, 80), 3.0 / c.duration);
      c.mod_depth = c.fm_trill ? uniform(rng, 0.03, 0.15) : uniform(rng, 0.5, 1.0);
      break;
    case CallShape::pulse_train:
      c.partials = 1;
      c.duration = std::max(c.duration, wide ? 0.06 : 0.15);
      c.mod_rate = std::max(log_uniform(rng, 5, 60), 4.0 / c.duration);
      c.pulse_len = uniform(rng, 0.2, 0.6) / c.mod_rate;
      c.pulse_len = std::clamp(c.pulse_len, 0.004, 0.05);
      draw_rhythm(c, rng);
      break;
    case CallShape::click: {
      c.duration = std::max(c.duration, wide ? 0.02 : 0.04);
      c.mod_rate = std::max(log_uniform(rng, 15, 200), 3.0 / c.duration);
      c.pulse_len = uniform(rng, 0.0015, 0.004);
      double fc = log_uniform(rng, band_lo + 2.5 / c.pulse_len,
                              std::max(band_lo + 2.6 / c.pulse_len, band_hi * 0.8));
      double half = uniform(rng, 0.0, 0.1) * fc;
      c.f_lo = fc - half;
      c.f_hi = fc + half;
      draw_rhythm(c, rng);
      break;
    }
    case CallShape::noisy: {
      double fc = log_uniform(rng, band_lo * 1.5, band_hi * 0.8);
      double half = fc * uniform(rng, 0.1, 0.45);
      c.f_lo = fc - half;
      c.f_hi = fc + half;
      break;
    }
  }
  fit_band(c, max_hz);
  return c;
}

CallClass draw_confuser(const CallClass& target, std::mt19937_64& rng, const SynthOptions& opt) {
  (void)opt;
  CallClass c = target;
  c.name.clear();
  c.duration = target.duration * uniform(rng, 0.8, 1.25);  // similar length: shape is the cue
  auto other_contour = [&](Contour not_this) {
    Contour k;
    do k = Contour(uniform_int(rng, 0, 4));
    while (k == not_this);
    return k;
  };
  const auto band = call_band(target);  // not a structured binding: clang 14 cannot capture one
  const double band_lo = band.first, band_hi = band.second;
  const double pad = splatter_hz(target);
  auto to_band_shape = [&](CallShape s) {  // click / noisy covering the target's band
    c.shape = s;
    c.partials = 1;
    double lo = band_lo + pad, hi = std::max(band_hi - pad, lo * 1.1);
    c.f_lo = lo;
    c.f_hi = hi;
    if (s == CallShape::click) {
      c.pulse_len = std::clamp(4.0 / (hi - lo + 1.0), 0.0015, 0.004);
      c.mod_rate = std::max(log_uniform(rng, 15, 200), 3.0 / c.duration);
      draw_rhythm(c, rng);
    }
  };
  const int pick = uniform_int(rng, 0, 1);
  switch (target.shape) {
    case CallShape::sweep:
    case CallShape::harmonic:
      if (pick == 0 || target.f_hi / target.f_lo < 1.1) {
        if (target.f_hi / target.f_lo < 1.1) {  // a flat stack: make it sweep inside the band
          c.f_hi = target.f_lo * 1.3;
        }
        c.contour = other_contour(target.contour);
      } else {
        c.shape = CallShape::trill;
        c.fm_trill = chance(rng, 0.5);
        c.mod_rate = std::max(log_uniform(rng, 6, 60), 3.0 / c.duration);
        c.mod_depth = c.fm_trill ? uniform(rng, 0.03, 0.1) : uniform(rng, 0.6, 1.0);
      }
      break;
    case CallShape::trill:
      if (pick == 0) {
        c.mod_rate =
            target.mod_rate * (chance(rng, 0.5) ? uniform(rng, 2, 3) : 1 / uniform(rng, 2, 3));
        c.mod_rate = std::max(c.mod_rate, 3.0 / c.duration);
        c.fm_trill = !target.fm_trill;
        c.mod_depth = c.fm_trill ? uniform(rng, 0.03, 0.1) : uniform(rng, 0.6, 1.0);
      } else {
        c.shape = CallShape::pulse_train;
        c.partials = 1;
        c.mod_rate = std::max(target.mod_rate * uniform(rng, 0.3, 0.6), 4.0 / c.duration);
        c.pulse_len = std::clamp(0.4 / c.mod_rate, 0.004, 0.05);
        draw_rhythm(c, rng);
      }
      break;
    case CallShape::pulse_train:
      if (pick == 0) {
        c.mod_rate =
            target.mod_rate * (chance(rng, 0.5) ? uniform(rng, 2, 3) : 1 / uniform(rng, 2, 3));
        c.mod_rate = std::max(c.mod_rate, 4.0 / c.duration);
        c.pulse_len = std::clamp(0.4 / c.mod_rate, 0.004, 0.05);
        draw_rhythm(c, rng);
        c.contour = other_contour(target.contour);
      } else {
        c.shape = CallShape::trill;
        c.fm_trill = true;
        c.mod_rate = std::max(target.mod_rate * uniform(rng, 1.5, 3), 3.0 / c.duration);
        c.mod_depth = uniform(rng, 0.03, 0.1);
      }
      break;
    case CallShape::click:
      if (pick == 0) {
        c.mod_rate = std::max(target.mod_rate * (chance(rng, 0.5) ? 2.5 : 0.4), 3.0 / c.duration);
        draw_rhythm(c, rng);
      } else {
        to_band_shape(CallShape::noisy);
      }
      break;
    case CallShape::noisy:
      to_band_shape(CallShape::click);
      break;
  }
  fit_band(c, band_hi * 1.1);
  return c;
}

std::vector<float> render_call(const CallClass& c, std::mt19937_64& rng, int sr) {
  const double dur = std::clamp(c.duration * std::exp(c.duration_jitter * gauss(rng)), 0.008, 4.0);
  const double pitch = std::exp(c.pitch_jitter * gauss(rng));
  const double kappa = std::exp(c.shape_jitter * gauss(rng));  // contour curvature
  const double nyq_guard = 0.45 * sr;
  const size_t n = std::max<size_t>(8, size_t(std::lround(dur * sr)));
  const double lo = c.f_lo * pitch, hi = c.f_hi * pitch, log_ratio = std::log(hi / lo);
  std::vector<float> y(n, 0.0f);
  auto freq_at = [&](double u) {
    return lo * std::exp(log_ratio * contour_at(c.contour, std::pow(u, kappa)));
  };

  if (is_pulsed(c.shape)) {
    // Pulses (Hann-windowed tone bursts) at a rhythm; the train ends with its last whole pulse.
    const bool click = c.shape == CallShape::click;
    const size_t len = std::max<size_t>(4, size_t(c.pulse_len * sr));
    double t = 0;
    size_t end = 0;
    for (int k = 0; t * sr + len <= n; ++k) {
      double f = click ? 0.5 * (lo + hi) : freq_at(t / dur);
      double phase0 = uniform(rng, 0, kTwoPi), w = kTwoPi * f / sr;
      double amp = 1.0 + 0.3 * gauss(rng);
      size_t s0 = size_t(t * sr);
      for (size_t i = 0; i < len; ++i) {
        double win = 0.5 - 0.5 * std::cos(kTwoPi * (i + 0.5) / len);
        y[s0 + i] += float(amp * win * std::sin(phase0 + w * i));
      }
      end = s0 + len;
      double ioi = c.rhythm[k % 4] / c.mod_rate * (1.0 + c.rhythm_jitter * gauss(rng));
      t += std::max(ioi, 1.2 * c.pulse_len);
    }
    y.resize(std::max<size_t>(end, 8));
  } else if (c.shape == CallShape::noisy) {
    // Band noise: quadrature components low-passed (4 one-pole stages) and shifted to fc.
    const double fc = 0.5 * (lo + hi), half = 0.5 * (hi - lo);
    const double a = std::exp(-kTwoPi * (0.5 * half) / sr);
    std::vector<float> gi(n), gq(n);
    fill_gauss(rng, gi.data(), n);
    fill_gauss(rng, gq.data(), n);
    double si[4] = {0, 0, 0, 0}, sq[4] = {0, 0, 0, 0};
    const double w = kTwoPi * fc / sr;
    for (size_t i = 0; i < n; ++i) {
      double vi = gi[i], vq = gq[i];
      for (int s = 0; s < 4; ++s) {
        si[s] = a * si[s] + (1 - a) * vi;
        sq[s] = a * sq[s] + (1 - a) * vq;
        vi = si[s];
        vq = sq[s];
      }
      y[i] = float(vi * std::cos(w * i) - vq * std::sin(w * i));
    }
  } else {
    // Tonal: instantaneous frequency along the contour, optional FM/AM trill, partials.
    std::vector<double> phase(n);
    double ph = uniform(rng, 0, kTwoPi);
    const bool trill = c.shape == CallShape::trill;
    const double wm = kTwoPi * c.mod_rate / sr, mod_phase = uniform(rng, 0, kTwoPi);
    for (size_t i = 0; i < n; ++i) {
      double f = freq_at(double(i) / double(n - 1));
      if (trill && c.fm_trill) f *= 1.0 + c.mod_depth * std::sin(mod_phase + wm * i);
      phase[i] = ph;
      ph += kTwoPi * f / sr;
    }
    const double top_f = hi * (trill && c.fm_trill ? 1 + c.mod_depth : 1.0);
    for (int h = 1; h <= c.partials; ++h) {
      float a = c.partial_amp[h - 1];
      if (a == 0 || h * top_f > nyq_guard) continue;
      for (size_t i = 0; i < n; ++i) y[i] += a * float(std::sin(h * phase[i]));
    }
    if (trill && !c.fm_trill)
      for (size_t i = 0; i < n; ++i)
        y[i] *= float(1.0 - c.mod_depth * (0.5 + 0.5 * std::cos(mod_phase + wm * i)));
  }

  if (!is_pulsed(c.shape)) {  // raised-cosine attack and release
    const size_t m = y.size();
    size_t na = std::min(m / 2, size_t(std::max(kMinRamp, c.attack * dur) * sr));
    size_t nr = std::min(m / 2, size_t(std::max(kMinRamp, c.release * dur) * sr));
    for (size_t i = 0; i < na; ++i) y[i] *= float(0.5 - 0.5 * std::cos(M_PI * (i + 0.5) / na));
    for (size_t i = 0; i < nr; ++i)
      y[m - 1 - i] *= float(0.5 - 0.5 * std::cos(M_PI * (i + 0.5) / nr));
  }
  double ms = mean_square(y.data(), y.size());
  if (ms > 0) {
    float g = float(1.0 / std::sqrt(ms));
    for (auto& v : y) v *= g;
  }
  return y;
}

}  // namespace fsl
