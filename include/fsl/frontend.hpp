// The front ends' interface, and the CPU front end: STFT (FFTW) -> power -> Slaney mel (banded
// projection) -> logmel / PCEN.
// Matches librosa.feature.melspectrogram (+ log, + librosa.pcen) with periodic Hann, centred
// frames and power 2. Output of every type: (frames, n_mels) float32, row-major.
#pragma once
#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "fsl/config.hpp"

namespace fsl {

// Which STFT computes the power spectrum. automatic: float FFTW per block of frames, and the
// double STFT for each frame where some mel band's power is within reach of float rounding
// noise (the choice depends only on that frame's samples, so outputs are deterministic and the
// same whatever types are requested together). double_only / float_only: for tests and
// measurements (float_only is not accurate enough near silence: no production use).
enum class StftPath { automatic, double_only, float_only };

struct FrontendParams {
  int sr = 22050;
  int n_fft = 1024;
  int hop = 256;
  int n_mels = 128;
  double fmin = 50, fmax = 11025;
  bool reflect_pad = false;  // centre padding: false = zeros (librosa >= 0.10), true = reflect
  double log_eps = 1e-8;
  // librosa.pcen, applied to the mel of x * 2^32
  double pcen_gain = 0.98, pcen_bias = 2.0, pcen_power = 0.5;
  double pcen_time_constant = 0.4, pcen_eps = 1e-6;
  int pcen_hop = 256;  // hop the smoother assumes (512 reproduces the Python baseline)
  StftPath stft = StftPath::automatic;  // not a config key

  static FrontendParams from(const FeaturesConfig& f);
  int n_bins() const { return n_fft / 2 + 1; }
};

// Slaney-normalised mel filterbank, (n_mels, n_fft/2+1) row-major, as librosa.filters.mel with
// htk=False, norm='slaney'.
std::vector<float> mel_filterbank(const FrontendParams& p);

// Feature types computed by Frontend::compute.
const std::vector<std::string>& frontend_types();  // {"logmel", "pcen"}

// Which of the front end's types a request names; an unknown type is an Error that starts with
// `who` (both the CPU and the CUDA front end check requests with this).
struct RequestedTypes {
  bool logmel = false, pcen = false;
};
RequestedTypes parse_requested_types(const std::vector<std::string>& types, const char* who);

// The one interface of both front ends (Frontend here, CudaFrontend in fsl/cuda_frontend.hpp):
// features of a mono signal, (num_frames(n), n_mels) row-major per type.
class FeatureExtractor {
 public:
  explicit FeatureExtractor(const FrontendParams& p) : p_(p) {}
  virtual ~FeatureExtractor() = default;
  FeatureExtractor(const FeatureExtractor&) = delete;
  FeatureExtractor& operator=(const FeatureExtractor&) = delete;

  // x: n mono samples at p.sr. Returns type -> (num_frames(n), n_mels) for each requested type
  // ("logmel", "pcen"), all from one STFT. Throws Error on an unknown type or n == 0.
  std::map<std::string, std::vector<float>> compute(const float* x, size_t n,
                                                    const std::vector<std::string>& types);
  // The same written to caller memory: num_frames(n) * n_mels floats for each requested type
  // (nullptr for a type not requested).
  virtual void compute_into(const float* x, size_t n, const std::vector<std::string>& types,
                            float* logmel_out, float* pcen_out) = 0;
  // What the object's errors start with ("front end", "CUDA front end").
  virtual const char* name() const = 0;
  size_t num_frames(size_t n) const { return 1 + n / size_t(p_.hop); }
  const FrontendParams& params() const { return p_; }

 protected:
  FrontendParams p_;
};

// The front end of a resolved runtime.device ("cpu" | "cuda"). A CPU front end serves one thread
// at a time (make one per worker); a CUDA one may be shared behind the caller's lock.
std::unique_ptr<FeatureExtractor> make_feature_extractor(const std::string& device,
                                                         const FrontendParams& p);

// The CPU front end: FFTW plans and work buffers are made once here. compute_into() uses the
// buffers, so one Frontend serves one thread at a time; make one per worker.
class Frontend final : public FeatureExtractor {
 public:
  explicit Frontend(const FrontendParams& p);
  ~Frontend() override;

  void compute_into(const float* x, size_t n, const std::vector<std::string>& types,
                    float* logmel_out, float* pcen_out) override;
  const char* name() const override { return "front end"; }
  // Frames of the last compute() whose power spectrum took the double STFT.
  size_t double_frames() const { return double_frames_; }

 private:
  void pcen_from_mel(float* rows, size_t n_frames);

  struct Impl;
  std::unique_ptr<Impl> impl_;
  size_t double_frames_ = 0;
};

}  // namespace fsl
