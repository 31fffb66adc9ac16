// CudaEncoder: src/model.cpp's EncoderT::block_forward / block_backward with the CUDA ops.
// Layout: the flat parameter vector of a small host fsl::Encoder (same config and seed), whose
// named views (state()) locate each block's tensors by their PyTorch names.
#include <algorithm>
#include <cstdint>
#include <map>
#include <string>

#include "fsl/cuda_check.hpp"
#include "fsl/cuda_encoder.hpp"
#include "fsl/cuda_ops.hpp"
#include "fsl/error.hpp"
#include "fsl/model.hpp"
#include "fsl/op_math.hpp"

namespace fsl {

namespace {
constexpr int kChannels[4] = {64, 128, 64, 64};  // as src/model.cpp
constexpr int kLastChannels = 64;
constexpr int kMaxBlocks = 4;
}  // namespace

struct CudaEncoder::Impl {
  struct Block {
    int cin = 0, c = 0, cr = 0;
    int64_t conv_w[4] = {-1, -1, -1, -1}, conv_b[4] = {-1, -1, -1, -1};
    int64_t bn_w[4], bn_b[4], run_mean[4], run_var[4], ca_w1 = -1, ca_w2 = -1;
    int64_t* bn_count[4] = {};  // into the host encoder's num_batches_tracked
    float *in = nullptr, *conv[4], *act1, *act2, *bn3_out, *sum, *out, *mask;
    float *mean[4], *invstd[4];
    ChannelAttentionSaved<float> ca{};
    int H = 0, W = 0;
  };
  struct BufferView {  // a running statistic: host view <-> device offset
    float* host;
    int64_t offset, n;
  };

  CudaContext ctx;
  Encoder host;  // max_batch 1: layout, initial values, checkpoint views
  FeaturesConfig cfg;
  Activation act;
  int max_batch, max_frames, num_blocks, dim, pool_h, pool_w;
  std::vector<Block> blocks;
  std::vector<BufferView> buffer_views;
  DeviceBuffer<float> d_params, d_grads, d_buffers;
  DeviceArena arena;
  float *tmp = nullptr, *g[3] = {}, *d[2] = {}, *ca_scratch = nullptr;
  const float* input = nullptr;
  int last_B = 0;
  bool last_training = false, dropout_frozen = false;
  uint64_t seed, forward_count = 0;

  Impl(const FeaturesConfig& c, int mb, int mf, uint64_t s, bool tf32)
      : ctx(tf32),
        host(c, 1, 1 << (c.layer_4 ? 4 : 3), s),
        cfg(c),
        max_batch(mb),
        max_frames(mf),
        seed(s) {
    act = c.non_linearity == "relu" ? Activation::relu : Activation::leaky_relu;
    num_blocks = c.layer_4 ? 4 : 3;
    pool_h = c.time_max_pool_dim;
    pool_w = c.embedding_dim / (c.time_max_pool_dim * 64);
    dim = host.dim();
    if (max_batch < 1) fail("encoder: max_batch must be >= 1");
    if (max_frames < host.min_frames())
      fail("encoder: input of ", max_frames, " frames is too small for ", num_blocks,
           " pooling blocks (need >= ", host.min_frames(), ")");
    locate_tensors();
    plan_activations();
    for (int pass = 0, H = max_frames, W = cfg.n_mels; pass < num_blocks; ++pass, H /= 2, W /= 2) {
      const Block& b = blocks[pass];  // conv plans for the planned shape, made now
      ctx.conv_plan(max_batch, b.cin, H, W, b.c, 3);
      ctx.conv_plan(max_batch, b.c, H, W, b.c, 3);
      ctx.conv_plan(max_batch, b.cin, H, W, b.c, 1);
    }
  }

  // Offsets from the host encoder's named views: "encoder.layer<i>.0.<module>.<field>".
  void locate_tensors() {
    blocks.resize(kMaxBlocks);
    const auto p0 = reinterpret_cast<uintptr_t>(host.params().data());
    const auto p1 = p0 + host.params().size() * sizeof(float);
    std::vector<float> init_buffers;
    for (const NamedTensor& t : host.state()) {
      const EncoderTensorName nm = parse_encoder_tensor_name(t.name);
      const int bi = nm.block, k = nm.slot;
      const std::string& field = nm.field;
      const std::string& last = nm.leaf;
      const bool is_conv = nm.conv;
      Block& b = blocks.at(bi);
      b.cin = bi == 0 ? 1 : kChannels[bi - 1];
      b.c = kChannels[bi];
      b.cr = std::max(1, b.c / 16);
      if (t.dtype == DType::i64) {
        b.bn_count[k] = static_cast<int64_t*>(t.data);
        continue;
      }
      const float* data = static_cast<const float*>(t.data);
      const auto addr = reinterpret_cast<uintptr_t>(data);
      const bool is_param = addr >= p0 && addr < p1;  // else a buffer (running statistic)
      const int64_t off = is_param ? int64_t((addr - p0) / sizeof(float)) : -1;
      if (!is_param) {  // BN running statistic
        const int64_t boff = int64_t(init_buffers.size());
        init_buffers.insert(init_buffers.end(), data, data + t.numel());
        buffer_views.push_back({static_cast<float*>(t.data), boff, t.numel()});
        (last == "running_mean" ? b.run_mean : b.run_var)[k] = boff;
      } else if (field == "ca.fc.0.weight") {
        b.ca_w1 = off;
      } else if (field == "ca.fc.2.weight") {
        b.ca_w2 = off;
      } else if (is_conv) {
        (last == "weight" ? b.conv_w : b.conv_b)[k] = off;
      } else {
        (last == "weight" ? b.bn_w : b.bn_b)[k] = off;
      }
    }
    d_params = DeviceBuffer<float>(std::vector<float>(host.params().begin(), host.params().end()));
    d_grads = DeviceBuffer<float>(host.params().size());
    d_buffers = DeviceBuffer<float>(init_buffers);
  }

  // As EncoderT::plan_activations (no im2col: cuDNN has its own workspace), plus the attention
  // backward's scratch. A dry run sizes the arena, the second hands the blocks out.
  void plan_activations() {
    const bool v2 = cfg.arch == "v2";
    const int64_t N = max_batch;
    ArenaPlanner pl{&arena};
    for (int pass = 0; pass < 2; ++pass) {
      if (pass == 1) arena.allocate(pl.bytes), pl.dry = false;
      int64_t full_max = 0, out_max = 0, scratch = 1;
      int H = max_frames, W = cfg.n_mels;
      for (int bi = 0; bi < num_blocks; ++bi) {
        Block& b = blocks[bi];
        const int64_t full = N * b.c * H * W, out = N * b.c * (H / 2) * (W / 2);
        full_max = std::max(full_max, full);
        out_max = std::max(out_max, out);
        for (int k = 0; k < 4; ++k) b.conv[k] = pl.get<float>(full);
        b.act1 = pl.get<float>(full);
        b.act2 = pl.get<float>(full);
        b.bn3_out = v2 ? pl.get<float>(full) : nullptr;
        b.sum = pl.get<float>(full);
        b.out = pl.get<float>(out);
        b.mask = pl.get<float>(out);
        for (int k = 0; k < 4; ++k)
          b.mean[k] = pl.get<float>(b.c), b.invstd[k] = pl.get<float>(b.c);
        if (v2) {
          b.ca.avg = pl.get<float>(N * b.c);
          b.ca.mx = pl.get<float>(N * b.c);
          b.ca.h_avg = pl.get<float>(N * b.cr);
          b.ca.h_max = pl.get<float>(N * b.cr);
          b.ca.att = pl.get<float>(N * b.c);
          b.ca.argmax = pl.get<int32_t>(N * b.c);
          scratch = std::max(scratch, cuda::channel_attention_scratch_size(int(N), b.c, b.cr));
        }
        H /= 2;
        W /= 2;
      }
      tmp = pl.get<float>(full_max);
      for (auto& x : g) x = pl.get<float>(full_max);
      for (auto& x : d) x = pl.get<float>(out_max);
      ca_scratch = pl.get<float>(scratch);
    }
  }

  void block_forward(Block& b, const float* x, int N, int H, int W, bool training, uint64_t s) {
    const int HW = H * W, C = b.c;
    const int64_t n = int64_t(N) * C * HW;
    float* P = d_params.get();
    float* R = d_buffers.get();
    auto bias = [&](int k) { return b.conv_b[k] >= 0 ? P + b.conv_b[k] : nullptr; };
    auto bn = [&](int k, float* y, const float* in) {
      cuda::batchnorm2d_forward(ctx, y, b.mean[k], b.invstd[k], in, P + b.bn_w[k], P + b.bn_b[k],
                                R + b.run_mean[k], R + b.run_var[k], N, C, HW, training);
      if (training) ++*b.bn_count[k];
    };
    b.in = const_cast<float*>(x);
    b.H = H;
    b.W = W;
    cuda::conv2d_forward(ctx, b.conv[0], x, P + b.conv_w[0], bias(0), N, b.cin, H, W, C, 3);
    bn(0, b.act1, b.conv[0]);
    cuda::activation_forward(ctx, b.act1, b.act1, n, act);
    cuda::conv2d_forward(ctx, b.conv[1], b.act1, P + b.conv_w[1], bias(1), N, C, H, W, C, 3);
    bn(1, b.act2, b.conv[1]);
    cuda::activation_forward(ctx, b.act2, b.act2, n, act);
    cuda::conv2d_forward(ctx, b.conv[2], b.act2, P + b.conv_w[2], bias(2), N, C, H, W, C, 3);
    if (b.ca_w1 >= 0) {
      bn(2, b.bn3_out, b.conv[2]);
      cuda::channel_attention_forward(ctx, b.sum, b.ca, b.bn3_out, P + b.ca_w1, P + b.ca_w2, N, C,
                                      b.cr, HW);
    } else {
      bn(2, b.sum, b.conv[2]);
    }
    cuda::conv2d_forward(ctx, b.conv[3], x, P + b.conv_w[3], nullptr, N, b.cin, H, W, C, 1);
    bn(3, tmp, b.conv[3]);
    cuda::add_forward(ctx, b.sum, b.sum, tmp, n);
    cuda::activation_forward(ctx, b.sum, b.sum, n, act);
    cuda::maxpool2d_forward(ctx, b.out, b.sum, N * C, H, W);
    const int64_t n_out = int64_t(N) * C * (H / 2) * (W / 2);
    cuda::dropout_forward(ctx, b.out, b.mask, b.out, n_out, float(cfg.drop_rate), s, training);
  }

  void block_backward(Block& b, float* dout, float* din, int N, bool first) {
    const int H = b.H, W = b.W, HW = H * W, C = b.c;
    const int64_t n = int64_t(N) * C * HW;
    const bool tr = last_training;
    float* P = d_params.get();
    float* G = d_grads.get();
    auto dbias = [&](int k) { return b.conv_b[k] >= 0 ? G + b.conv_b[k] : nullptr; };
    auto bn_back = [&](int k, float* dx, const float* dy) {
      cuda::batchnorm2d_backward(ctx, dx, G + b.bn_w[k], G + b.bn_b[k], dy, b.conv[k],
                                 P + b.bn_w[k], b.mean[k], b.invstd[k], N, C, HW, tr);
    };
    float *g0 = g[0], *g1 = g[1], *g2 = g[2];
    const float* x = b.in;
    cuda::dropout_backward(ctx, dout, dout, b.mask, int64_t(N) * C * (H / 2) * (W / 2));
    cuda::maxpool2d_backward(ctx, g0, dout, b.sum, N * C, H, W);
    cuda::activation_backward(ctx, g0, g0, b.sum, n, act);
    bn_back(3, g1, g0);
    cuda::conv2d_backward(ctx, first ? nullptr : din, G + b.conv_w[3], nullptr, g1, x,
                          P + b.conv_w[3], N, b.cin, H, W, C, 1, false);
    const float* d_bn3 = g0;
    if (b.ca_w1 >= 0) {
      cuda::channel_attention_backward(ctx, g2, G + b.ca_w1, G + b.ca_w2, g0, b.ca, b.bn3_out,
                                       P + b.ca_w1, P + b.ca_w2, N, C, b.cr, HW, ca_scratch);
      d_bn3 = g2;
    }
    bn_back(2, g1, d_bn3);
    cuda::conv2d_backward(ctx, g0, G + b.conv_w[2], dbias(2), g1, b.act2, P + b.conv_w[2], N, C, H,
                          W, C, 3, false);
    cuda::activation_backward(ctx, g0, g0, b.act2, n, act);
    bn_back(1, g1, g0);
    cuda::conv2d_backward(ctx, g0, G + b.conv_w[1], dbias(1), g1, b.act1, P + b.conv_w[1], N, C, H,
                          W, C, 3, false);
    cuda::activation_backward(ctx, g0, g0, b.act1, n, act);
    bn_back(0, g1, g0);
    cuda::conv2d_backward(ctx, first ? nullptr : din, G + b.conv_w[0], dbias(0), g1, x,
                          P + b.conv_w[0], N, b.cin, H, W, C, 3, true);
  }
};

CudaEncoder::CudaEncoder(const FeaturesConfig& cfg, int max_batch, int max_frames, uint64_t seed,
                         bool allow_tf32)
    : impl_(std::make_unique<Impl>(cfg, max_batch, max_frames, seed, allow_tf32)) {}
CudaEncoder::~CudaEncoder() = default;

void CudaEncoder::forward(const float* x, int B, int frames, bool training, float* emb) {
  Impl& m = *impl_;
  if (B < 1 || B > m.max_batch)
    fail("encoder: batch of ", B, " outside 1..", m.max_batch, " (the planned maximum)");
  if (frames < min_frames() || frames > m.max_frames)
    fail("encoder: ", frames, " frames outside ", min_frames(), "..", m.max_frames);
  if (training && !m.dropout_frozen) ++m.forward_count;
  m.input = x;
  m.last_B = B;
  m.last_training = training;
  int H = frames, W = m.cfg.n_mels;
  const float* in = x;
  for (int bi = 0; bi < m.num_blocks; ++bi) {
    const uint64_t s = om::mix64(m.seed ^ om::mix64(m.forward_count * kMaxBlocks + bi));
    m.block_forward(m.blocks[bi], in, B, H, W, training, s);
    in = m.blocks[bi].out;
    H /= 2;
    W /= 2;
  }
  cuda::adaptive_avgpool2d_forward(m.ctx, emb, in, B * kLastChannels, H, W, m.pool_h, m.pool_w);
}

void CudaEncoder::backward(const float* demb) {
  Impl& m = *impl_;
  if (m.last_B == 0) fail("encoder: backward() called before forward()");
  const Impl::Block& last = m.blocks[m.num_blocks - 1];
  float* dcur = m.d[0];
  float* dprev = m.d[1];
  cuda::adaptive_avgpool2d_backward(m.ctx, dcur, demb, m.last_B * kLastChannels, last.H / 2,
                                    last.W / 2, m.pool_h, m.pool_w);
  for (int bi = m.num_blocks - 1; bi >= 0; --bi) {
    m.block_backward(m.blocks[bi], dcur, dprev, m.last_B, bi == 0);
    std::swap(dcur, dprev);
  }
}

float* CudaEncoder::params() { return impl_->d_params.get(); }
float* CudaEncoder::grads() { return impl_->d_grads.get(); }
size_t CudaEncoder::num_params() const { return impl_->d_params.size(); }
void CudaEncoder::zero_grad() {
  FSL_CUDA_CHECK(
      cudaMemsetAsync(impl_->d_grads.get(), 0, num_params() * sizeof(float), impl_->ctx.stream()));
}
int CudaEncoder::dim() const { return impl_->dim; }
int CudaEncoder::min_frames() const { return 1 << impl_->num_blocks; }
int CudaEncoder::max_batch() const { return impl_->max_batch; }
int CudaEncoder::max_frames() const { return impl_->max_frames; }
const FeaturesConfig& CudaEncoder::config() const { return impl_->cfg; }
CudaContext& CudaEncoder::context() { return impl_->ctx; }
void CudaEncoder::freeze_dropout(bool frozen) { impl_->dropout_frozen = frozen; }
void CudaEncoder::set_dropout_seed(uint64_t seed) {
  impl_->seed = seed;
  impl_->forward_count = 0;
}

std::vector<NamedTensor> CudaEncoder::state() {
  Impl& m = *impl_;
  m.ctx.synchronize();
  const std::vector<float> p = m.d_params.download(), r = m.d_buffers.download();
  std::copy(p.begin(), p.end(), m.host.params().begin());
  for (const auto& v : m.buffer_views) std::copy_n(r.begin() + v.offset, v.n, v.host);
  return m.host.state();
}

void CudaEncoder::load_state() {
  Impl& m = *impl_;
  m.ctx.synchronize();
  m.d_params.upload(m.host.params().data(), m.host.params().size());
  std::vector<float> r(m.d_buffers.size());
  for (const auto& v : m.buffer_views) std::copy_n(v.host, v.n, r.begin() + v.offset);
  m.d_buffers.upload(r);
}

}  // namespace fsl
