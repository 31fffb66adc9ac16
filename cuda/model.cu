// CudaEncoder: fsl::EncoderCore (include/fsl/encoder_graph.hpp) over the CUDA ops. This file
// owns only the device memory (parameters, gradients, running statistics, the activation arena),
// the cuDNN plans and the host copies checkpoints read and write.
#include <algorithm>
#include <cstdint>

#include "fsl/cuda_check.hpp"
#include "fsl/cuda_encoder.hpp"
#include "fsl/cuda_ops.hpp"
#include "fsl/encoder_graph.hpp"
#include "fsl/error.hpp"

namespace fsl {

namespace {

// The encoder's layers on the GPU for EncoderCore: the ops of fsl/cuda_ops.hpp on one context;
// the channel attention's backward takes its scratch, planned for the largest v2 block.
struct CudaEncoderOps {
  CudaContext* ctx = nullptr;
  float* ca_scratch = nullptr;

  template <class Plan>
  void plan_scratch(Plan& pl, const EncoderLayout& L, int max_batch, int /*max_frames*/) {
    int64_t n = 1;
    if (L.cfg.arch == "v2")
      for (int bi = 0; bi < L.num_blocks; ++bi)
        n = std::max(
            n, cuda::channel_attention_scratch_size(max_batch, L.blocks[bi].c, L.blocks[bi].cr));
    ca_scratch = pl.template get<float>(n);
  }
  template <typename... A>
  void conv2d_forward(A... a) {
    cuda::conv2d_forward(*ctx, a...);
  }
  template <typename... A>
  void conv2d_backward(A... a) {
    cuda::conv2d_backward(*ctx, a...);
  }
  template <typename... A>
  void batchnorm2d_forward(A... a) {
    cuda::batchnorm2d_forward(*ctx, a...);
  }
  template <typename... A>
  void batchnorm2d_backward(A... a) {
    cuda::batchnorm2d_backward(*ctx, a...);
  }
  template <typename... A>
  void activation_forward(A... a) {
    cuda::activation_forward(*ctx, a...);
  }
  template <typename... A>
  void activation_backward(A... a) {
    cuda::activation_backward(*ctx, a...);
  }
  template <typename... A>
  void maxpool2d_forward(A... a) {
    cuda::maxpool2d_forward(*ctx, a...);
  }
  template <typename... A>
  void maxpool2d_backward(A... a) {
    cuda::maxpool2d_backward(*ctx, a...);
  }
  template <typename... A>
  void dropout_forward(A... a) {
    cuda::dropout_forward(*ctx, a...);
  }
  template <typename... A>
  void dropout_backward(A... a) {
    cuda::dropout_backward(*ctx, a...);
  }
  template <typename... A>
  void add_forward(A... a) {
    cuda::add_forward(*ctx, a...);
  }
  template <typename... A>
  void adaptive_avgpool2d_forward(A... a) {
    cuda::adaptive_avgpool2d_forward(*ctx, a...);
  }
  template <typename... A>
  void adaptive_avgpool2d_backward(A... a) {
    cuda::adaptive_avgpool2d_backward(*ctx, a...);
  }
  template <typename... A>
  void channel_attention_forward(A... a) {
    cuda::channel_attention_forward(*ctx, a...);
  }
  template <typename... A>
  void channel_attention_backward(A... a) {
    cuda::channel_attention_backward(*ctx, a..., ca_scratch);
  }
};

}  // namespace

struct CudaEncoder::Impl {
  CudaContext ctx;
  CudaEncoderOps ops;
  EncoderCore<float, CudaEncoderOps> core;
  // Host copies: the initial values, then what state() downloads and load_state() uploads.
  std::vector<float> h_params, h_running;
  std::vector<int64_t> counters;  // num_batches_tracked, counted on the host
  DeviceBuffer<float> d_params, d_grads, d_running;
  DeviceArena arena;

  Impl(const FeaturesConfig& c, int max_batch, int max_frames, uint64_t seed, bool tf32)
      : ctx(tf32), core(c, max_batch, max_frames, seed) {
    const EncoderLayout& L = core.layout();
    ops.ctx = &ctx;
    h_params.resize(L.n_params);
    h_running.resize(L.n_running);
    counters.assign(L.n_counters, 0);
    L.initialise(h_params.data(), h_running.data(), seed);
    d_params = DeviceBuffer<float>(h_params);
    d_grads = DeviceBuffer<float>(h_params.size());
    d_running = DeviceBuffer<float>(h_running);
    core.allocate(ops, arena);
    for (int bi = 0, H = max_frames, W = c.n_mels; bi < L.num_blocks; ++bi, H /= 2, W /= 2) {
      const EncoderBlockLayout& b = L.blocks[bi];  // conv plans for the planned shape, made now
      ctx.conv_plan(max_batch, b.cin, H, W, b.c, 3);
      ctx.conv_plan(max_batch, b.c, H, W, b.c, 3);
      ctx.conv_plan(max_batch, b.cin, H, W, b.c, 1);
    }
  }

  EncoderBuffers<float> buffers() {
    return {d_params.get(), d_grads.get(), d_running.get(), counters.data()};
  }
};

CudaEncoder::CudaEncoder(const FeaturesConfig& cfg, int max_batch, int max_frames, uint64_t seed,
                         bool allow_tf32)
    : impl_(std::make_unique<Impl>(cfg, max_batch, max_frames, seed, allow_tf32)) {}
CudaEncoder::~CudaEncoder() = default;

void CudaEncoder::forward(const float* x, int B, int frames, bool training, float* emb) {
  impl_->core.forward(impl_->ops, impl_->buffers(), x, B, frames, training, emb);
}

void CudaEncoder::backward(const float* demb) {
  impl_->core.backward(impl_->ops, impl_->buffers(), demb);
}

float* CudaEncoder::params() { return impl_->d_params.get(); }
float* CudaEncoder::grads() { return impl_->d_grads.get(); }
size_t CudaEncoder::num_params() const { return impl_->d_params.size(); }
void CudaEncoder::zero_grad() {
  FSL_CUDA_CHECK(
      cudaMemsetAsync(impl_->d_grads.get(), 0, num_params() * sizeof(float), impl_->ctx.stream()));
}
int CudaEncoder::dim() const { return impl_->core.layout().dim; }
int CudaEncoder::min_frames() const { return impl_->core.layout().min_frames(); }
int CudaEncoder::max_batch() const { return impl_->core.max_batch(); }
int CudaEncoder::max_frames() const { return impl_->core.max_frames(); }
const FeaturesConfig& CudaEncoder::config() const { return impl_->core.layout().cfg; }
CudaContext& CudaEncoder::context() { return impl_->ctx; }
void CudaEncoder::freeze_dropout(bool frozen) { impl_->core.freeze_dropout(frozen); }
void CudaEncoder::set_dropout_seed(uint64_t seed) { impl_->core.set_dropout_seed(seed); }

std::vector<NamedTensor> CudaEncoder::state() {
  Impl& m = *impl_;
  m.ctx.synchronize();
  const std::vector<float> p = m.d_params.download(), r = m.d_running.download();
  std::copy(p.begin(), p.end(), m.h_params.begin());  // the views stay where they were
  std::copy(r.begin(), r.end(), m.h_running.begin());
  return m.core.layout().state(m.h_params.data(), m.h_running.data(), m.counters.data());
}

void CudaEncoder::load_state() {
  Impl& m = *impl_;
  m.ctx.synchronize();
  m.d_params.upload(m.h_params.data(), m.h_params.size());
  m.d_running.upload(m.h_running);
}

}  // namespace fsl
