// The encoder as an Embedder: eval mode (BN running statistics, no dropout), input normalised
// with the global training mean/std of the feature type. On the CPU the forward is
// EncoderInference's (BN folded, windows spread over runtime.num_workers threads); on cuda it is
// the CUDA training backend's embed(), the encoder code that training runs on the GPU.
#include <algorithm>
#include <filesystem>

#include "fsl/detect.hpp"
#include "fsl/error.hpp"
#include "fsl/model.hpp"
#include "fsl/model_infer.hpp"
#include "fsl/safetensors.hpp"
#include "fsl/train_backend.hpp"

namespace fsl {

EncoderEmbedder::EncoderEmbedder(const Config& cfg, const std::string& checkpoint, double mean,
                                 double std)
    : config_(cfg),
      checkpoint_(checkpoint),
      requested_batch_(std::max(1, cfg.eval.batch_size)),
      threads_(std::max(1, cfg.runtime.num_workers)),
      mean_(static_cast<float>(mean)),
      inv_std_(std > 0 ? static_cast<float>(1.0 / std) : 1.f) {
  if (!std::filesystem::exists(checkpoint))
    fail(checkpoint, ": checkpoint not found (train with fsl_train, or pass --checkpoint)");
  on_gpu_ = resolve_device(cfg.runtime, Stage::detection) == "cuda";
  // runtime.tf32 is for training; detection stays fp32 so its embeddings are the CPU's.
  config_.runtime.tf32 = false;
  build(64);
}

EncoderEmbedder::~EncoderEmbedder() = default;

// Windows per reference forward (v2 only; v1's EncoderInference needs no activation arena):
// eval.batch_size, but at most kFrameBudget frames in all, so the arena (planned for batch x
// frames) stays near the training episode's size whatever the adaptive segment length (a
// 200-frame segment at batch 256 would need tens of GB).
constexpr int kFrameBudget = 200 * 17;
// The CUDA backend plans a training arena (every activation kept for a backward) for batch x
// frames: a few training episodes' worth of frames keeps it to a few GB of device memory while
// a batch still fills the GPU.
constexpr int kGpuFrameBudget = 4 * kFrameBudget;

void EncoderEmbedder::build(int max_frames) {
  max_frames_ = max_frames;
  if (on_gpu_) {
    gpu_batch_ = std::max(1, std::min(requested_batch_, kGpuFrameBudget / std::max(1, max_frames)));
    gpu_.reset();  // its device memory first
    gpu_ = make_train_backend("cuda", config_, gpu_batch_, max_frames);
    gpu_->load(checkpoint_, false);  // again on a rebuild: the weights are small
    return;
  }
  const int batch =
      cfg_.arch == "v1"
          ? 1
          : std::max(1, std::min(requested_batch_, kFrameBudget / std::max(1, max_frames)));
  infer_.reset();
  encoder_ = std::make_unique<Encoder>(cfg_, batch, max_frames, 0);
  load_checkpoint(checkpoint_, *encoder_);  // again on a rebuild: the weights are small
  infer_ = std::make_unique<EncoderInference>(*encoder_, threads_);
}

int EncoderEmbedder::dim() const { return on_gpu_ ? gpu_->dim() : encoder_->dim(); }

// x (B, T, M) normalised into normalised_ (the training statistics, or the file's per band).
const float* EncoderEmbedder::normalise(const float* windows, int B, int T, int M) {
  if (M != cfg_.n_mels)
    fail("features have ", M, " mel bins, the encoder expects features.n_mels = ", cfg_.n_mels);
  if (T > max_frames_) build(T);          // a longer segment: re-plan the activations
  normalised_.resize(size_t(B) * T * M);  // (B, T, M)
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
  const float* x = normalise(windows, B, T, M);  // first: it may rebuild infer_ / gpu_
  if (!on_gpu_) {
    infer_->forward(x, B, T, out);
    return;
  }
  const size_t window = size_t(T) * M;
  for (int b = 0; b < B; b += gpu_batch_) {
    const int n = std::min(gpu_batch_, B - b);
    const std::vector<float> emb = gpu_->embed(x + b * window, n, T);  // (n, dim)
    std::copy(emb.begin(), emb.end(), out + size_t(b) * gpu_->dim());
  }
}

// Shared maps are EncoderInference's: 0 on cuda turns eval.shared_maps off there.
int EncoderEmbedder::map_stride() const { return on_gpu_ ? 0 : infer_->map_stride(); }

size_t EncoderEmbedder::map_floats(int T) const { return on_gpu_ ? 0 : infer_->map_floats(T); }

void EncoderEmbedder::run_maps(const float* runs, int B, int T, int M, float* maps) {
  if (on_gpu_) Embedder::run_maps(runs, B, T, M, maps);  // not offered: the base class says so
  const float* x = normalise(runs, B, T, M);             // first: it may rebuild infer_
  infer_->maps(x, B, T, maps);
}

void EncoderEmbedder::pool_rows(const float* maps, int T, int r0, int rows, float* out) const {
  if (on_gpu_) Embedder::pool_rows(maps, T, r0, rows, out);
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
