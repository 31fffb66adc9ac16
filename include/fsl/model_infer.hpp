// The encoder's eval-mode forward for detection (docs/REFERENCE.md §4, §7), on `threads` CPU threads.
//
// Same function as EncoderT<float>::forward(..., training = false), computed differently:
// - every BatchNorm is folded into the convolution before it (w' = w s, b' = beta + (b - mean) s,
//   s = gamma / sqrt(var + eps)), so a conv + BN + activation is one pass;
// - the block's shortcut conv1x1 + BN and its third conv + BN accumulate into one buffer, so the
//   residual add costs nothing;
// - activations live in zero-padded planes (C, H + 2, W + 2): a 3x3 convolution is 9 GEMMs whose
//   B operand is the input plane shifted by one offset (no im2col copy); the pad columns the
//   GEMMs write are zeroed again by the epilogue (bias, activation);
// - each thread runs whole windows with single-threaded OpenBLAS (the windows of a batch are
//   independent), so the per-window GEMMs stay in that core's cache.
// Results match the reference forward to float rounding (~1e-6 relative; tests/test_model_infer).
// v2 (channel attention) is not folded: its forward falls back to the reference encoder.
#pragma once
#include <memory>
#include <utility>
#include <vector>

#include "fsl/model.hpp"

namespace fsl {

namespace detail {
struct InferBlock;      // one residual block, folded
struct InferWorkspace;  // one thread's planes
}  // namespace detail

class EncoderInference {
 public:
  // Copies (and folds) the encoder's parameters and running statistics now: later changes to
  // `enc` are not seen. `threads` >= 1; `enc` must outlive this object only for v2.
  EncoderInference(EncoderT<float>& enc, int threads);
  ~EncoderInference();

  // x (B, frames, n_mels) -> emb (B, dim()); any B >= 1, min_frames() <= frames <= the encoder's
  // max_frames (v2: B <= its max_batch). Throws fsl::Error outside those limits.
  void forward(const float* x, int B, int frames, float* emb);
  int dim() const { return dim_; }
  int threads() const { return threads_; }

  // Shared maps (eval.shared_maps): the last block's maps of B runs of frames, computed as
  // forward() computes a window's, without the final pooling: x (B, frames, n_mels) -> out
  // (B, map_channels(), frames / map_stride(), map_width()). Row r of a run's maps covers its
  // frames [r * map_stride(), (r + 1) * map_stride()) (and, through the convolutions, up to ~4
  // strides around them). v1 only: a v2 encoder's map_stride() and map_floats() are 0.
  void maps(const float* x, int B, int frames, float* out);
  int map_channels() const { return 64; }
  int map_stride() const { return fallback_ ? 0 : 1 << num_blocks_; }
  int map_width() const { return n_mels_ >> num_blocks_; }
  // Floats of one run's maps: map_channels() x (frames / map_stride()) x map_width().
  size_t map_floats(int frames) const;
  // emb (dim()) = the final adaptive average pool over rows [r0, r0 + rows) of the maps of one
  // run of `frames` frames: what forward() returns for a window whose own maps are those rows.
  // Throws fsl::Error for rows outside the maps.
  void pool_rows(const float* maps, int frames, int r0, int rows, float* emb) const;

 private:
  void run(const float* x, int B, int frames, float* emb, float* maps_out);
  std::pair<int, int> run_blocks(const float* x, int frames, detail::InferWorkspace& ws) const;

  EncoderT<float>& enc_;
  bool fallback_;  // v2: the reference forward
  int threads_, n_mels_, max_frames_, dim_, pool_h_, pool_w_, min_frames_, num_blocks_;
  Activation act_;
  std::vector<detail::InferBlock> blocks_;
  std::vector<std::unique_ptr<detail::InferWorkspace>> workspaces_;
};

}  // namespace fsl
