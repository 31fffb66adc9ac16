// The encoder as an Embedder: eval mode (BN running statistics, no dropout), input normalised
// with the global training mean/std of the feature type.
#include <filesystem>

#include "fsl/detect.hpp"
#include "fsl/error.hpp"
#include "fsl/model.hpp"
#include "fsl/safetensors.hpp"

namespace fsl {

EncoderEmbedder::EncoderEmbedder(const Config& cfg, const std::string& checkpoint, double mean,
                                 double std)
    : cfg_(cfg.features),
      checkpoint_(checkpoint),
      requested_batch_(std::max(1, cfg.eval.batch_size)),
      mean_(static_cast<float>(mean)),
      inv_std_(std > 0 ? static_cast<float>(1.0 / std) : 1.f) {
  if (!std::filesystem::exists(checkpoint))
    fail(checkpoint, ": checkpoint not found (train with fsl_train, or pass --checkpoint)");
  build(64);
}

EncoderEmbedder::~EncoderEmbedder() = default;

// Windows per forward: eval.batch_size, but at most kFrameBudget frames in all, so the activation
// arena (planned for batch x frames) stays near the training episode's size whatever the
// adaptive segment length (a 200-frame segment at batch 256 would need tens of GB).
constexpr int kFrameBudget = 200 * 17;

void EncoderEmbedder::build(int max_frames) {
  batch_ = std::max(1, std::min(requested_batch_, kFrameBudget / std::max(1, max_frames)));
  encoder_ = std::make_unique<Encoder>(cfg_, batch_, max_frames, 0);
  load_checkpoint(checkpoint_, *encoder_);  // again on a rebuild: the weights are small
}

int EncoderEmbedder::dim() const { return encoder_->dim(); }

void EncoderEmbedder::embed(const float* windows, int B, int T, int M, float* out) {
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
  for (int b0 = 0; b0 < B; b0 += batch_) {
    int nb = std::min(batch_, B - b0);
    encoder_->forward(normalised_.data() + size_t(b0) * T * M, nb, T, false,
                      out + size_t(b0) * encoder_->dim());
  }
}

void EncoderEmbedder::set_file_normalisation(const std::vector<float>& mean,
                                             const std::vector<float>& inv_std) {
  if (mean.size() != inv_std.size())
    fail("file normalisation: ", mean.size(), " means but ", inv_std.size(), " deviations");
  file_mean_ = mean;
  file_inv_std_ = inv_std;
}

}  // namespace fsl
