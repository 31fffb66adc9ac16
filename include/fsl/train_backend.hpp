// The trainer's device seam: what src/train.cpp's loop needs from an encoder + Adam on one device.
// The loop (episodes, StepLR, validation, early stopping, checkpoint metadata) stays on the host
// and is the same for both backends:
//   "cpu"  - fsl::Encoder + fsl::Adam + the prototypical losses of fsl/loss.hpp (the reference);
//   "cuda" - fsl::CudaEncoder + cuda::CudaAdam + cuda::CudaProtoLoss: per episode x is uploaded
//            once, forward / loss / backward / Adam stay on the device, only the loss and the
//            accuracy come back.
// Both write the same checkpoints (save_checkpoint's tensor names, metadata and Adam state), so a
// run may resume on the other backend, and fsl_eval / PyTorch read either.
//
// This header needs no CUDA headers. Built without CUDA, make_train_backend("cuda", ...) throws.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "fsl/config.hpp"
#include "fsl/loss.hpp"
#include "fsl/safetensors.hpp"

namespace fsl {

class TrainBackend {
 public:
  virtual ~TrainBackend() = default;

  virtual const char* device() const = 0;  // "cpu" or "cuda"
  virtual size_t num_params() const = 0;
  virtual int min_frames() const = 0;  // the encoder's shortest input
  virtual int dim() const = 0;         // the embedding's length

  // One training step: x (B, frames, n_mels) host, labels (B) host, B = labels.size() ->
  // forward (training: batch statistics, dropout), the prototypical loss of the config
  // (train_param.negative_train_contrast, n_shot); then, only when the loss is finite, backward
  // and one Adam step. x may be reused by the caller as soon as this returns.
  virtual LossResult train_step(const float* x, const std::vector<int>& labels, int frames) = 0;
  // Evaluation forward (running statistics, no dropout) and the loss; no gradient, no step.
  virtual LossResult eval_step(const float* x, const std::vector<int>& labels, int frames) = 0;
  // Evaluation forward only: x (B, frames, n_mels) host -> embeddings (B, dim) host.
  virtual std::vector<float> embed(const float* x, int B, int frames) = 0;

  virtual void set_lr(float lr) = 0;
  // Restarts the dropout stream (fsl::Encoder::set_dropout_seed): the same masks on both backends.
  virtual void set_dropout_seed(uint64_t seed) = 0;

  // The encoder's state (+ the Adam state when with_optimizer) and `metadata`, written
  // atomically by fsl::save_checkpoint, the same file from either backend.
  void save(const std::filesystem::path& path, bool with_optimizer,
            const std::map<std::string, std::string>& metadata);
  // fsl::load_checkpoint: the encoder's tensors (and the Adam state, which must then be present);
  // returns the file (its metadata). Errors name the file.
  Safetensors load(const std::filesystem::path& path, bool with_optimizer);

  // The flat parameter vector in fsl::Encoder's layout, copied to the host (tests).
  virtual std::vector<float> params() = 0;

 protected:
  // Host views of the encoder's and Adam's state (the CUDA backend downloads into them first).
  virtual std::vector<NamedTensor> encoder_state() = 0;
  virtual std::vector<NamedTensor> optimizer_state() = 0;
  virtual const FeaturesConfig& features() const = 0;
  // After load() wrote into the views of the last *_state() calls (the CUDA backend uploads).
  virtual void loaded(bool /*with_optimizer*/) {}
};

// A backend on `device` ("cpu" | "cuda") for episodes of up to max_batch x max_frames x
// c.features.n_mels: the encoder seeded with train_param.seed, Adam at train_param.lr_rate,
// TF32 (cuda only) per runtime.tf32.
std::unique_ptr<TrainBackend> make_train_backend(const std::string& device, const Config& c,
                                                 int max_batch, int max_frames);

// The CUDA backend alone (src/train_backend_cuda.cpp); throws fsl::Error without CUDA.
std::unique_ptr<TrainBackend> make_cuda_train_backend(const Config& c, int max_batch,
                                                      int max_frames);

}  // namespace fsl
