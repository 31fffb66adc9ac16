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
#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "fsl/config.hpp"
#include "fsl/encoder_graph.hpp"
#include "fsl/ops.hpp"
#include "fsl/tensor.hpp"

namespace fsl {

// The encoder's layers on the CPU for EncoderCore: the ops of fsl/ops.hpp with an im2col buffer
// planned for the largest block.
template <typename T>
struct CpuEncoderOps {
  T* col = nullptr;

  template <class Plan>
  void plan_scratch(Plan& pl, const EncoderLayout& L, int /*max_batch*/, int max_frames) {
    int64_t n = 0;
    for (int bi = 0, H = max_frames, W = L.cfg.n_mels; bi < L.num_blocks; ++bi, H /= 2, W /= 2)
      n = std::max(n, conv2d_col_size(std::max(L.blocks[bi].cin, L.blocks[bi].c), H, W, 3));
    col = pl.template get<T>(n);
  }
  void conv2d_forward(T* y, const T* x, const T* w, const T* b, int N, int Cin, int H, int W,
                      int Cout, int k) {
    fsl::conv2d_forward(y, x, w, b, N, Cin, H, W, Cout, k, col);
  }
  void conv2d_backward(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, int N, int Cin,
                       int H, int W, int Cout, int k, bool accumulate_dx) {
    fsl::conv2d_backward(dx, dw, db, dy, x, w, N, Cin, H, W, Cout, k, col, accumulate_dx);
  }
  template <typename... A>
  void batchnorm2d_forward(A... a) {
    fsl::batchnorm2d_forward<T>(a...);
  }
  template <typename... A>
  void batchnorm2d_backward(A... a) {
    fsl::batchnorm2d_backward<T>(a...);
  }
  template <typename... A>
  void activation_forward(A... a) {
    fsl::activation_forward<T>(a...);
  }
  template <typename... A>
  void activation_backward(A... a) {
    fsl::activation_backward<T>(a...);
  }
  template <typename... A>
  void maxpool2d_forward(A... a) {
    fsl::maxpool2d_forward<T>(a...);
  }
  template <typename... A>
  void maxpool2d_backward(A... a) {
    fsl::maxpool2d_backward<T>(a...);
  }
  template <typename... A>
  void dropout_forward(A... a) {
    fsl::dropout_forward<T>(a...);
  }
  template <typename... A>
  void dropout_backward(A... a) {
    fsl::dropout_backward<T>(a...);
  }
  template <typename... A>
  void add_forward(A... a) {
    fsl::add_forward<T>(a...);
  }
  template <typename... A>
  void adaptive_avgpool2d_forward(A... a) {
    fsl::adaptive_avgpool2d_forward<T>(a...);
  }
  template <typename... A>
  void adaptive_avgpool2d_backward(A... a) {
    fsl::adaptive_avgpool2d_backward<T>(a...);
  }
  template <typename... A>
  void channel_attention_forward(A... a) {
    fsl::channel_attention_forward<T>(a...);
  }
  template <typename... A>
  void channel_attention_backward(A... a) {
    fsl::channel_attention_backward<T>(a...);
  }
};

template <typename T>
class EncoderT {
 public:
  static constexpr int kMaxBlocks = EncoderLayout::kMaxBlocks;

  // Throws fsl::Error for an invalid config (arch, non_linearity, embedding_dim not a multiple of
  // time_max_pool_dim * 64, ...). Weights: Kaiming normal (fan_out), BN weight 1, bias 0, seeded.
  EncoderT(const FeaturesConfig& cfg, int max_batch, int max_frames, uint64_t seed);

  // x (B, frames, n_mels) -> emb (B, dim()); B <= max_batch, min_frames() <= frames <= max_frames.
  // x must stay alive and unchanged until backward() (it is the first conv's saved input).
  // training: BN batch statistics (running stats updated) and dropout; else running stats.
  void forward(const T* x, int B, int frames, bool training, T* emb) {
    core_.forward(ops_, buffers(), x, B, frames, training, emb);
  }
  // After forward(..., training = true): grads() += d loss / d params, given demb (B, dim()).
  void backward(const T* demb) { core_.backward(ops_, buffers(), demb); }

  std::span<T> params() { return params_; }
  std::span<T> grads() { return grads_; }
  std::span<const T> params() const { return params_; }
  std::span<const T> running_stats() const { return running_; }  // layout().blocks' run_mean/var
  void zero_grad() { std::fill(grads_.begin(), grads_.end(), T(0)); }
  const EncoderLayout& layout() const { return core_.layout(); }
  int dim() const { return layout().dim; }
  int min_frames() const { return layout().min_frames(); }
  int max_batch() const { return core_.max_batch(); }
  int max_frames() const { return core_.max_frames(); }
  const FeaturesConfig& config() const { return layout().cfg; }

  // Every parameter and buffer as a named view (PyTorch names), in state_dict order.
  std::vector<NamedTensor> state() {
    return layout().state(params_.data(), running_.data(), counters_.data());
  }
  // Dropout masks are drawn from (seed, forward count); freezing repeats the last mask (tests).
  void freeze_dropout(bool frozen) { core_.freeze_dropout(frozen); }
  // Restarts the dropout stream: masks then depend only on (seed, forwards since this call), so
  // a run resumed at an epoch boundary draws the same masks as an uninterrupted one.
  void set_dropout_seed(uint64_t seed) { core_.set_dropout_seed(seed); }

 private:
  EncoderBuffers<T> buffers() {
    return {params_.data(), grads_.data(), running_.data(), counters_.data()};
  }

  EncoderCore<T, CpuEncoderOps<T>> core_;
  CpuEncoderOps<T> ops_;
  std::vector<T> params_, grads_, running_;
  std::vector<int64_t> counters_;  // num_batches_tracked
  Arena arena_;
};

using Encoder = EncoderT<float>;

}  // namespace fsl
