// CudaEncoder: fsl::Encoder (include/fsl/model.hpp) on the GPU, the same blocks in the same order
// over the ops of include/fsl/cuda_ops.hpp. Parameters, gradients and BN running statistics live
// in device buffers with the CPU encoder's flat layout (so a parameter vector moves between the
// backends as is); activations in one device arena planned for max_batch x max_frames; the conv
// plans for that shape are made at construction. forward/backward allocate nothing.
// The block graph, the parameter layout, the initialisation (equal to fsl::Encoder's for the
// same seed) and the checkpoint names are fsl::Encoder's: both run EncoderCore
// (include/fsl/encoder_graph.hpp); this class owns the device memory.
//
// This header needs no CUDA headers: without FSL_HAVE_CUDA, src/cuda_ops_stub.cpp makes the
// constructor throw ("built without CUDA"). TF32 is off unless allow_tf32.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "fsl/config.hpp"
#include "fsl/tensor.hpp"

namespace fsl {

class CudaContext;

class CudaEncoder {
 public:
  // Throws fsl::Error for an invalid config (as fsl::Encoder) or when no CUDA device is usable.
  CudaEncoder(const FeaturesConfig& cfg, int max_batch, int max_frames, uint64_t seed,
              bool allow_tf32 = false);
  ~CudaEncoder();
  CudaEncoder(const CudaEncoder&) = delete;
  CudaEncoder& operator=(const CudaEncoder&) = delete;

  // x (B, frames, n_mels) device -> emb (B, dim()) device; x must stay unchanged until
  // backward(). Asynchronous on context().stream().
  void forward(const float* x, int B, int frames, bool training, float* emb);
  // After forward(..., training = true): grads() += d loss / d params, given demb (B, dim())
  // device.
  void backward(const float* demb);

  float* params();  // device, num_params() floats, fsl::Encoder's layout
  float* grads();   // device
  size_t num_params() const;
  void zero_grad();
  int dim() const;
  int min_frames() const;
  int max_batch() const;
  int max_frames() const;
  const FeaturesConfig& config() const;
  CudaContext& context();

  // Every parameter and buffer as host views with PyTorch names (fsl::Encoder::state order):
  // waits for the device, then downloads. load_state() uploads what was written into the views
  // of the last state() call (e.g. by fsl::load_checkpoint).
  std::vector<NamedTensor> state();
  void load_state();
  void freeze_dropout(bool frozen);
  void set_dropout_seed(uint64_t seed);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fsl
