// Per-element math of the front end, shared by the CPU front end (src/frontend.cpp) and a CUDA
// front end: window, Slaney mel scale, padding index, log-mel and PCEN formulas. The formulas
// follow librosa's documented behaviour (Slaney mel scale with htk=False, librosa.pcen defaults).
#pragma once
#include <cmath>

#ifdef __CUDACC__
#define FSL_HD __host__ __device__
#else
#define FSL_HD
#endif

namespace fsl::fm {

// Periodic Hann window of length n (scipy get_window('hann', n, fftbins=True)).
FSL_HD inline double hann_periodic(int i, int n) {
  return 0.5 - 0.5 * cos(2.0 * 3.14159265358979323846 * double(i) / double(n));
}

// Slaney mel scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above (6.4x per 27 mels).
constexpr double kMelLinearStep = 200.0 / 3.0;  // Hz per mel below 1 kHz
constexpr double kMelMinLogHz = 1000.0;
constexpr double kMelMinLogMel = kMelMinLogHz / kMelLinearStep;  // 15
FSL_HD inline double mel_log_step() { return log(6.4) / 27.0; }

FSL_HD inline double hz_to_mel_slaney(double hz) {
  if (hz >= kMelMinLogHz) return kMelMinLogMel + log(hz / kMelMinLogHz) / mel_log_step();
  return hz / kMelLinearStep;
}

FSL_HD inline double mel_to_hz_slaney(double mel) {
  if (mel >= kMelMinLogMel) return kMelMinLogHz * exp(mel_log_step() * (mel - kMelMinLogMel));
  return mel * kMelLinearStep;
}

// Centre padding: index j of the signal extended beyond [0, n). Returns the source index, or -1
// where the padded value is zero (constant mode). Reflect mode mirrors without repeating the edge
// sample and keeps mirroring when the pad is longer than the signal (numpy.pad 'reflect').
FSL_HD inline long long pad_source_index(long long j, long long n, bool reflect) {
  if (j >= 0 && j < n) return j;
  if (!reflect) return -1;
  if (n == 1) return 0;
  const long long period = 2 * (n - 1);
  long long k = j % period;
  if (k < 0) k += period;
  return k < n ? k : period - k;
}

// logmel = log(mel + eps).
FSL_HD inline float log_mel(float mel, float eps) { return logf(mel + eps); }

// PCEN smoother coefficient s of y[t] = s*x[t] + (1-s)*y[t-1], from the time constant in seconds
// and the frame rate sr/hop (librosa's closed form for the filter's half-max width).
FSL_HD inline double pcen_smoother_coef(double time_constant, double sr, double hop) {
  const double t_frames = time_constant * sr / hop;
  return (sqrt(1.0 + 4.0 * t_frames * t_frames) - 1.0) / (2.0 * t_frames * t_frames);
}

// Initial smoother state: scipy lfilter_zi of b=[s], a=[1, s-1] is the steady state for a unit
// input, i.e. the smoother starts as if the previous value were 1 (not scaled by the first frame).
FSL_HD inline double pcen_smoother_init() { return 1.0; }

FSL_HD inline double pcen_smoother_step(double prev, double x, double s) {
  return s * x + (1.0 - s) * prev;
}

// One PCEN output from the mel energy e and its smoothed value m:
// bias^power * expm1(power * log1p(e * m^-gain / bias)), with m^-gain computed in log space as
// exp(-gain * (log(eps) + log1p(m / eps))) = (eps + m)^-gain.
struct PcenParams {
  float gain, bias, power, eps;
};

FSL_HD inline float pcen_value(float e, float m, const PcenParams& p) {
  const float agc = expf(-p.gain * logf(p.eps + m));  // = (eps + m)^-gain
  if (p.power == 0.0f) return log1pf(e * agc);
  if (p.bias == 0.0f) return expf(p.power * (logf(e) + logf(agc)));
  if (p.power == 0.5f) {
    // The default: bias^0.5 * (sqrt(1 + z) - 1), written z / (sqrt(1 + z) + 1) to stay exact
    // for small z; one sqrt instead of log1p + expm1.
    const float z = e * agc / p.bias;
    return sqrtf(p.bias) * z / (sqrtf(1.0f + z) + 1.0f);
  }
  return powf(p.bias, p.power) * expm1f(p.power * log1pf(e * agc / p.bias));
}

}  // namespace fsl::fm
