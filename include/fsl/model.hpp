// The encoder (docs/REFERENCE.md §4): ResNet blocks of 64, 128, 64 (+64) channels, each
// conv3x3-BN-act x3 (no act after the third BN), shortcut conv1x1-BN, add, act, maxpool2, dropout;
// v2 applies channel attention to the third BN's output before the add. Then
// AdaptiveAvgPool2d((time_max_pool_dim, embedding_dim / (time_max_pool_dim * 64))) -> flatten.
//
// One flat parameter buffer and one gradient buffer (offsets computed at construction), the BN
// running statistics as buffers, and one activation arena planned for max_batch x max_frames:
// forward/backward allocate nothing. Tensor names follow the PyTorch model's state_dict with an
// `encoder.` prefix; layer4 always exists (as in PyTorch) but is only run when `layer_4`.
//
// T is float for real use; double exists for the finite-difference gradient checks.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "fsl/config.hpp"
#include "fsl/ops.hpp"
#include "fsl/tensor.hpp"

namespace fsl {

class EncoderInference;

template <typename T>
class EncoderT {
 public:
  static constexpr int kMaxBlocks = 4;

  // Throws fsl::Error for an invalid config (arch, non_linearity, embedding_dim not a multiple of
  // time_max_pool_dim * 64, ...). Weights: Kaiming normal (fan_out), BN weight 1, bias 0, seeded.
  EncoderT(const FeaturesConfig& cfg, int max_batch, int max_frames, uint64_t seed);

  // x (B, frames, n_mels) -> emb (B, dim()); B <= max_batch, min_frames() <= frames <= max_frames.
  // x must stay alive and unchanged until backward() (it is the first conv's saved input).
  // training: BN batch statistics (running stats updated) and dropout; else running stats.
  void forward(const T* x, int B, int frames, bool training, T* emb);
  // After forward(..., training = true): grads() += d loss / d params, given demb (B, dim()).
  void backward(const T* demb);

  std::span<T> params() { return params_; }
  std::span<T> grads() { return grads_; }
  void zero_grad();
  int dim() const { return dim_; }
  int min_frames() const { return 1 << num_blocks_; }
  int max_batch() const { return max_batch_; }
  int max_frames() const { return max_frames_; }
  const FeaturesConfig& config() const { return cfg_; }

  // Every parameter and buffer as a named view (PyTorch names), in state_dict order.
  std::vector<NamedTensor> state();
  // Dropout masks are drawn from (seed, forward count); freezing repeats the last mask (tests).
  void freeze_dropout(bool frozen) { dropout_frozen_ = frozen; }
  // Restarts the dropout stream: masks then depend only on (seed, forwards since this call), so
  // a run resumed at an epoch boundary draws the same masks as an uninterrupted one.
  void set_dropout_seed(uint64_t seed) {
    seed_ = seed;
    forward_count_ = 0;
  }

 private:
  friend class EncoderInference;  // reads the blocks' parameter offsets to fold them
  struct Block {
    int cin = 0, c = 0, cr = 0;  // channels in/out, attention hidden width
    // index k: 0..2 = conv1..3 (3x3) with bn1..3, 3 = downsample conv1x1 + BN. -1 = absent.
    int64_t conv_w[4], conv_b[4], bn_w[4], bn_b[4], ca_w1 = -1, ca_w2 = -1;
    int64_t run_mean[4], run_var[4];  // offsets into buffers_
    int bn_count[4];                  // index into batches_tracked_
    // activations for the planned maximum (N, c, H, W) at this block's input resolution
    T *in = nullptr, *conv[4], *act1, *act2, *bn3_out, *sum, *out, *mask;
    T *mean[4], *invstd[4];
    ChannelAttentionSaved<T> ca{};
    int H = 0, W = 0;  // of the last forward
  };
  void plan_parameters();
  void plan_activations();
  void init_weights(uint64_t seed);
  void block_forward(Block& b, const T* x, int N, int H, int W, bool training, uint64_t seed);
  void block_backward(Block& b, T* dout, T* din, int N, bool first);

  FeaturesConfig cfg_;
  Activation act_;
  int max_batch_, max_frames_, num_blocks_, dim_, pool_h_, pool_w_;
  std::vector<Block> blocks_;  // all kMaxBlocks, as PyTorch builds them; num_blocks_ run
  struct Entry {
    std::string name;
    std::vector<int64_t> shape;
    int kind;  // 0 parameter, 1 float buffer, 2 int64 counter
    int64_t offset;
  };
  std::vector<Entry> entries_;
  std::vector<T> params_, grads_, buffers_;
  std::vector<int64_t> batches_tracked_;
  Arena arena_;
  T *col_ = nullptr, *tmp_ = nullptr, *g_[3] = {}, *d_[2] = {};
  const T* input_ = nullptr;
  int last_B_ = 0, last_T_ = 0;
  bool last_training_ = false, dropout_frozen_ = false;
  uint64_t seed_ = 0, forward_count_ = 0;
};

using Encoder = EncoderT<float>;

// Where a state() name lives in the encoder: "encoder.layer<i>.0.<module>.<leaf>".
// block = i - 1; slot = 0..2 for conv<k+1>/bn<k+1>, 3 for downsample.0/.1, -1 for the channel
// attention (ca.fc.0 / ca.fc.2); conv = a convolution weight or bias (conv<k>, downsample.0);
// field = "<module>.<leaf>", leaf = the last part (weight, bias, running_mean, ...). Throws
// fsl::Error for a name outside that pattern. Used by CudaEncoder to map its device buffers.
struct EncoderTensorName {
  int block = -1, slot = -1;
  bool conv = false;
  std::string field, leaf;
};
EncoderTensorName parse_encoder_tensor_name(const std::string& name);

}  // namespace fsl
