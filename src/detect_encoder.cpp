// The encoder as an Embedder: eval mode (BN running statistics, no dropout), input normalised
// with the global training mean/std of the feature type; the forward is EncoderInference's (BN
// folded, windows spread over runtime.num_workers threads).
#include <filesystem>

#include "fsl/detect.hpp"
#include "fsl/error.hpp"
#include "fsl/model.hpp"
#include "fsl/model_infer.hpp"
#include "fsl/safetensors.hpp"

namespace fsl {

EncoderEmbedder::EncoderEmbedder(const Config& cfg, const std::string& checkpoint, double mean,
                                 double std)
    : cfg_(cfg.features),
      checkpoint_(checkpoint),
      requested_batch_(std::max(1, cfg.eval.batch_size)),
      threads_(std::max(1, cfg.runtime.num_workers)),
      mean_(static_cast<float>(mean)),
      inv_std_(std > 0 ? static_cast<float>(1.0 / std) : 1.f) {
  if (!std::filesystem::exists(checkpoint))
    fail(checkpoint, ": checkpoint not found (train with fsl_train, or pass --checkpoint)");
  build(64);
}

EncoderEmbedder::~EncoderEmbedder() = default;

// Windows per reference forward (v2 only; v1's EncoderInference needs no activation arena):
// eval.batch_size, but at most kFrameBudget frames in all, so the arena (planned for batch x
// frames) stays near the training episode's size whatever the adaptive segment length (a
// 200-frame segment at batch 256 would need tens of GB).
constexpr int kFrameBudget = 200 * 17;

void EncoderEmbedder::build(int max_frames) {
  const int batch =
      cfg_.arch == "v1"
          ? 1
          : std::max(1, std::min(requested_batch_, kFrameBudget / std::max(1, max_frames)));
  infer_.reset();
  encoder_ = std::make_unique<Encoder>(cfg_, batch, max_frames, 0);
  load_checkpoint(checkpoint_, *encoder_);  // again on a rebuild: the weights are small
  infer_ = std::make_unique<EncoderInference>(*encoder_, threads_);
}

int EncoderEmbedder::dim() const { return encoder_->dim(); }

// x (B, T, M) normalised into normalised_ (the training statistics, or the file's per band).
const float* EncoderEmbedder::normalise(const float* windows, int B, int T, int M) {
  if (M != cfg_.n_mels)
    fail("features have ", M, " mel bins, the encoder expects features.n_mels = ", cfg_.n_mels);
  if (T > encoder_->max_frames()) build(T);  // a longer segment: re-plan the activations
  normalised_.resize(size_t(B) * T * M);     // (B, T, M)
  if (file_mean_.size() == size_t(M)) {
    for (size_t r = 0; r < size_t(B) * T; ++r)
      for (int m = 0; m < M; ++m)
        normalised_[r * M + m] = (windows[r * M + m] - file_mean_[m]) * file_inv_std_[m];
  } else {
    for (size_t i = 0; i < normalised_.size(); ++i)
      normalised_[i] = (windows[i] - mean_) * inv_std_;
  }
  return normalised_.data();
}

void EncoderEmbedder::embed(const float* windows, int B, int T, int M, float* out) {
  const float* x = normalise(windows, B, T, M);  // first: it may rebuild infer_
  infer_->forward(x, B, T, out);
}

int EncoderEmbedder::map_stride() const { return infer_->map_stride(); }

size_t EncoderEmbedder::map_floats(int T) const { return infer_->map_floats(T); }

void EncoderEmbedder::run_maps(const float* runs, int B, int T, int M, float* maps) {
  const float* x = normalise(runs, B, T, M);  // first: it may rebuild infer_
  infer_->maps(x, B, T, maps);
}

void EncoderEmbedder::pool_rows(const float* maps, int T, int r0, int rows, float* out) const {
  infer_->pool_rows(maps, T, r0, rows, out);
}

void EncoderEmbedder::set_file_normalisation(const std::vector<float>& mean,
                                             const std::vector<float>& inv_std) {
  if (mean.size() != inv_std.size())
    fail("file normalisation: ", mean.size(), " means but ", inv_std.size(), " deviations");
  file_mean_ = mean;
  file_inv_std_ = inv_std;
}

}  // namespace fsl
