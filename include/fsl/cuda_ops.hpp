// The encoder's layers on the GPU: the same `xxx_forward` / `xxx_backward` pairs as
// include/fsl/ops.hpp (same shapes, same conventions: parameter gradients accumulate, input
// gradients are overwritten, activations may run in place), in namespace fsl::cuda, float only,
// every pointer a device pointer, every call enqueued on ctx.stream() (asynchronous).
// The per-element math is include/fsl/op_math.hpp, shared with the CPU backend.
//
// Only for code built with CUDA (FSL_HAVE_CUDA). tests/gpu_ops.cpp checks each op against the CPU.
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "fsl/cuda_context.hpp"
#include "fsl/data.hpp"
#include "fsl/loss.hpp"
#include "fsl/ops.hpp"
#include "fsl/optim.hpp"

namespace fsl::cuda {

// ---- conv2d through cuDNN (stride 1, k in {1, 3}, padding k/2); no col scratch ----------------
// x (N, Cin, H, W), w (Cout, Cin, k, k), bias (Cout) or nullptr -> y (N, Cout, H, W).
void conv2d_forward(CudaContext& ctx, float* y, const float* x, const float* w, const float* bias,
                    int N, int Cin, int H, int W, int Cout, int k);
// dx may be nullptr; dw, dbias accumulate; dx is overwritten unless accumulate_dx.
void conv2d_backward(CudaContext& ctx, float* dx, float* dw, float* dbias, const float* dy,
                     const float* x, const float* w, int N, int Cin, int H, int W, int Cout, int k,
                     bool accumulate_dx);

// ---- batchnorm2d (PyTorch semantics, double accumulators as the CPU op) ----------------------
void batchnorm2d_forward(CudaContext& ctx, float* y, float* mean, float* invstd, const float* x,
                         const float* gamma, const float* beta, float* running_mean,
                         float* running_var, int N, int C, int HW, bool training,
                         const BatchNormParams& bn = {});
void batchnorm2d_backward(CudaContext& ctx, float* dx, float* dgamma, float* dbeta, const float* dy,
                          const float* x, const float* gamma, const float* mean,
                          const float* invstd, int N, int C, int HW, bool training);

// ---- element-wise -----------------------------------------------------------------------------
void activation_forward(CudaContext& ctx, float* y, const float* x, int64_t n, Activation act);
void activation_backward(CudaContext& ctx, float* dx, const float* dy, const float* y, int64_t n,
                         Activation act);
// The same hash mask as the CPU op (om::dropout_keep): identical masks for identical seeds.
void dropout_forward(CudaContext& ctx, float* y, float* mask, const float* x, int64_t n, float p,
                     uint64_t seed, bool training);
void dropout_backward(CudaContext& ctx, float* dx, const float* dy, const float* mask, int64_t n);
void add_forward(CudaContext& ctx, float* y, const float* a, const float* b, int64_t n);

// ---- pooling ------------------------------------------------------------------------------------
void maxpool2d_forward(CudaContext& ctx, float* y, const float* x, int NC, int H, int W);
void maxpool2d_backward(CudaContext& ctx, float* dx, const float* dy, const float* x, int NC, int H,
                        int W);
void adaptive_avgpool2d_forward(CudaContext& ctx, float* y, const float* x, int NC, int H, int W,
                                int Ho, int Wo);
void adaptive_avgpool2d_backward(CudaContext& ctx, float* dx, const float* dy, int NC, int H, int W,
                                 int Ho, int Wo);

// ---- channel attention (v2); backward needs a scratch of channel_attention_scratch_size floats --
int64_t channel_attention_scratch_size(int N, int C, int Cr);
void channel_attention_forward(CudaContext& ctx, float* y, const ChannelAttentionSaved<float>& s,
                               const float* x, const float* w1, const float* w2, int N, int C,
                               int Cr, int HW);
void channel_attention_backward(CudaContext& ctx, float* dx, float* dw1, float* dw2,
                                const float* dy, const ChannelAttentionSaved<float>& s,
                                const float* x, const float* w1, const float* w2, int N, int C,
                                int Cr, int HW, float* scratch);

// ---- Adam: one fused kernel over the flat buffers, step t (1-based), as adam_step_cpu ----------
void adam_step(CudaContext& ctx, float* p, const float* g, float* m, float* v, int64_t n, int64_t t,
               const AdamParams& a);

// Adam with its moments on the device; state() copies them to host views for checkpoints (same
// names as fsl::Adam), load_state() pushes those host views back after a checkpoint was read.
class CudaAdam {
 public:
  explicit CudaAdam(size_t n, AdamParams params = {});
  void step(CudaContext& ctx, float* params, const float* grads);  // device pointers, n each
  void set_lr(float lr) { p_.lr = lr; }
  float lr() const { return p_.lr; }
  int64_t step_count() const { return t_; }
  std::vector<NamedTensor> state();  // synchronous download
  void load_state();                 // upload what was written into state()'s views

 private:
  AdamParams p_;
  size_t n_;
  DeviceBuffer<float> m_, v_;
  std::vector<float> host_m_, host_v_;
  int64_t t_ = 0;
};

// ---- prototypical losses (fsl/loss.hpp semantics) -------------------------------------------
// emb (B, D) device, labels (B) host; demb (B, D) device, overwritten (or nullptr). The label
// bookkeeping (sorted labels, supports, queries) is done on the host, as the CPU op does; the
// prototypes, distances, softmax, loss and gradient on the device (double accumulators). The
// call waits for the stream (the result is a host value). Buffers sized once for max_batch x dim.
class CudaProtoLoss {
 public:
  CudaProtoLoss(int max_batch, int dim);
  LossResult compute(CudaContext& ctx, const float* emb, const int* labels, int B, int n_shot,
                     bool filter_negative, float* demb);

 private:
  int max_batch_, dim_;
  DeviceBuffer<int32_t> d_index_;  // supports (L, n_shot), queries (Q), targets (Q), role (B, 2)
  DeviceBuffer<double> d_proto_, d_dist_, d_grad_, d_sums_;  // (L, D), (Q, L), (Q, L), (Q, 2)
  std::vector<int32_t> h_index_;
  std::vector<double> h_sums_;  // per query: loss, correct
};

// ---- segment gather from device-resident features (fsl::gather_segments semantics) ----------
// Uploads every file of `store` once (raw, unnormalised); gather() draws the crop starts on the
// host from `rng` exactly as gather_segments does, then cuts, tiles or pads on the device into
// out (B, seg_frames, n_mels), normalised with the store's mean and std.
class CudaFeatures {
 public:
  CudaFeatures(const FeatureStore& store, int max_draws);
  void gather(CudaContext& ctx, const std::vector<Draw>& draws, int seg_frames,
              const std::string& short_segment, std::mt19937_64& rng, float* out);
  int64_t device_bytes() const { return int64_t(d_features_.size() * sizeof(float)); }

 private:
  int n_mels_, max_draws_;
  float mean_, inv_std_;
  std::vector<int64_t> file_row_;   // first row of each file in d_features_
  DeviceBuffer<float> d_features_;  // (total rows, n_mels)
  DeviceBuffer<int64_t> d_rows_;    // per draw: first source row, length
  std::vector<int64_t> h_rows_;
};

}  // namespace fsl::cuda
