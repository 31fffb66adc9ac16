// The encoder's structure, written once for both backends (docs/REFERENCE.md §4):
// - EncoderLayout: the validated config, each block's channels, every parameter's and running
//   statistic's offset in the flat buffers (PyTorch's state_dict order and names), the seeded
//   initialisation and the named views checkpoints read and write.
// - EncoderCore<T, Ops>: the activation plan and the block forward / backward drivers over an
//   ops policy. The policy supplies each layer (CpuEncoderOps in include/fsl/model.hpp calls the
//   CPU ops with its im2col buffer; cuda/model.cu's calls the CUDA ops with its context) and
//   plans its own scratch; the owner (fsl::EncoderT, fsl::CudaEncoder) owns the memory.
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "fsl/config.hpp"
#include "fsl/error.hpp"
#include "fsl/op_math.hpp"
#include "fsl/ops.hpp"
#include "fsl/tensor.hpp"

namespace fsl {

// Offsets into the flat buffers of one block; -1 = absent. Index k: 0..2 = conv1..3 (3x3) with
// bn1..3, 3 = the shortcut's conv1x1 (downsample.0) + BN (downsample.1).
struct EncoderBlockLayout {
  int cin = 0, c = 0, cr = 0;  // channels in / out, attention hidden width
  int64_t conv_w[4] = {-1, -1, -1, -1}, conv_b[4] = {-1, -1, -1, -1};
  int64_t bn_w[4] = {}, bn_b[4] = {}, ca_w1 = -1, ca_w2 = -1;  // parameters
  int64_t run_mean[4] = {}, run_var[4] = {};                   // running statistics
  int bn_count[4] = {};                                        // num_batches_tracked counters
};

struct EncoderLayout {
  static constexpr int kMaxBlocks = 4;
  static constexpr int kLastChannels = 64;

  // Throws fsl::Error for an invalid config (arch, non_linearity, embedding_dim not a multiple
  // of time_max_pool_dim * 64). layer4 always exists (as in PyTorch); it runs only when layer_4.
  explicit EncoderLayout(const FeaturesConfig& cfg);
  // Throws fsl::Error unless max_batch x max_frames x n_mels fits num_blocks poolings.
  void check_plan(int max_batch, int max_frames) const;
  int min_frames() const { return 1 << num_blocks; }

  // Kaiming normal (fan_out), conv biases PyTorch's default uniform, BN weight 1, bias 0,
  // running var 1, from one seeded stream: params (n_params), running (n_running).
  template <typename T>
  void initialise(T* params, T* running, uint64_t seed) const;
  // Every parameter, running statistic and counter as a named view over the given buffers, in
  // state_dict order (what checkpoints hold).
  template <typename T>
  std::vector<NamedTensor> state(T* params, T* running, int64_t* counters) const;

  FeaturesConfig cfg;
  Activation act = Activation::leaky_relu;
  int num_blocks = 0, dim = 0, pool_h = 0, pool_w = 0;
  std::vector<EncoderBlockLayout> blocks;  // all kMaxBlocks
  int64_t n_params = 0, n_running = 0;
  int n_counters = 0;

 private:
  struct Entry {
    std::string name;
    std::vector<int64_t> shape;
    enum Kind { parameter, running, counter } kind;
    int64_t offset;
  };
  std::vector<Entry> entries_;
};

// Where a pass reads and writes: flat parameters, their gradients, the running statistics (all
// on the backend's device) and the BN counters (host).
template <typename T>
struct EncoderBuffers {
  const T* params;
  T* grads;
  T* running;
  int64_t* counters;
};

// Sizes blocks on a dry run over any arena with aligned()/take<T>() and hands them out on the
// real run: the same calls in the same order.
template <class ArenaT>
struct ArenaPlan {
  ArenaT* arena;
  bool dry = true;
  size_t bytes = 0;
  template <typename T>
  T* get(size_t count) {
    if (dry) {
      bytes += ArenaT::aligned(count * sizeof(T));
      return nullptr;
    }
    return arena->template take<T>(count);
  }
};

template <typename T, typename Ops>
class EncoderCore {
 public:
  EncoderCore(const FeaturesConfig& cfg, int max_batch, int max_frames, uint64_t seed)
      : L_(cfg), max_batch_(max_batch), max_frames_(max_frames), seed_(seed) {
    L_.check_plan(max_batch, max_frames);
  }

  // Plans every activation (and the policy's scratch) for max_batch x max_frames in `arena`.
  template <class ArenaT>
  void allocate(Ops& ops, ArenaT& arena) {
    ArenaPlan<ArenaT> plan{&arena};
    take(ops, plan);
    arena.allocate(plan.bytes);
    plan.dry = false;
    take(ops, plan);
  }

  // x (B, frames, n_mels) -> emb (B, dim); see EncoderT::forward.
  void forward(Ops& ops, const EncoderBuffers<T>& buf, const T* x, int B, int frames, bool training,
               T* emb) {
    if (B < 1 || B > max_batch_)
      fail("encoder: batch of ", B, " outside 1..", max_batch_, " (the planned maximum)");
    if (frames < L_.min_frames() || frames > max_frames_)
      fail("encoder: ", frames, " frames outside ", L_.min_frames(), "..", max_frames_);
    if (training && !dropout_frozen_) ++forward_count_;
    last_B_ = B;
    last_training_ = training;
    int H = frames, W = L_.cfg.n_mels;
    const T* in = x;
    for (int bi = 0; bi < L_.num_blocks; ++bi) {
      const uint64_t seed =
          om::mix64(seed_ ^ om::mix64(forward_count_ * EncoderLayout::kMaxBlocks + bi));
      block_forward(ops, buf, bi, in, B, H, W, training, seed);
      in = act_[bi].out;
      H /= 2;
      W /= 2;
    }
    // (B, 64, H, W) -> (B, 64, pool_h, pool_w) = (B, dim)
    ops.adaptive_avgpool2d_forward(emb, in, B * EncoderLayout::kLastChannels, H, W, L_.pool_h,
                                   L_.pool_w);
  }

  // After forward(..., training = true): buf.grads += d loss / d params, given demb (B, dim).
  void backward(Ops& ops, const EncoderBuffers<T>& buf, const T* demb) {
    if (last_B_ == 0) fail("encoder: backward() called before forward()");
    const Activations& last = act_[L_.num_blocks - 1];
    T* dcur = d_[0];
    T* dprev = d_[1];
    ops.adaptive_avgpool2d_backward(dcur, demb, last_B_ * EncoderLayout::kLastChannels, last.H / 2,
                                    last.W / 2, L_.pool_h, L_.pool_w);
    for (int bi = L_.num_blocks - 1; bi >= 0; --bi) {
      block_backward(ops, buf, bi, dcur, dprev, last_B_, bi == 0);
      std::swap(dcur, dprev);
    }
  }

  const EncoderLayout& layout() const { return L_; }
  int max_batch() const { return max_batch_; }
  int max_frames() const { return max_frames_; }
  void freeze_dropout(bool frozen) { dropout_frozen_ = frozen; }
  void set_dropout_seed(uint64_t seed) {
    seed_ = seed;
    forward_count_ = 0;
  }

 private:
  // One block's activations for the planned maximum (N, c, H, W) at its input resolution.
  struct Activations {
    const T* in = nullptr;
    T *conv[4] = {}, *act1 = nullptr, *act2 = nullptr, *bn3_out = nullptr, *sum = nullptr;
    T *out = nullptr, *mask = nullptr, *mean[4] = {}, *invstd[4] = {};
    ChannelAttentionSaved<T> ca{};
    int H = 0, W = 0;  // of the last forward
  };

  template <class Plan>
  void take(Ops& ops, Plan& pl) {
    const bool v2 = L_.cfg.arch == "v2";
    const int64_t N = max_batch_;
    int64_t full_max = 0, out_max = 0;
    act_.assign(L_.num_blocks, Activations{});
    int H = max_frames_, W = L_.cfg.n_mels;
    for (int bi = 0; bi < L_.num_blocks; ++bi) {
      const EncoderBlockLayout& b = L_.blocks[bi];
      Activations& a = act_[bi];
      const int64_t full = N * b.c * H * W, out = N * b.c * (H / 2) * (W / 2);
      full_max = std::max(full_max, full);
      out_max = std::max(out_max, out);
      for (int k = 0; k < 4; ++k) a.conv[k] = pl.template get<T>(full);
      a.act1 = pl.template get<T>(full);
      a.act2 = pl.template get<T>(full);
      a.bn3_out = v2 ? pl.template get<T>(full) : nullptr;
      a.sum = pl.template get<T>(full);
      a.out = pl.template get<T>(out);
      a.mask = pl.template get<T>(out);
      for (int k = 0; k < 4; ++k)
        a.mean[k] = pl.template get<T>(b.c), a.invstd[k] = pl.template get<T>(b.c);
      if (v2) {
        a.ca.avg = pl.template get<T>(N * b.c);
        a.ca.mx = pl.template get<T>(N * b.c);
        a.ca.h_avg = pl.template get<T>(N * b.cr);
        a.ca.h_max = pl.template get<T>(N * b.cr);
        a.ca.att = pl.template get<T>(N * b.c);
        a.ca.argmax = pl.template get<int32_t>(N * b.c);
      }
      H /= 2;
      W /= 2;
    }
    tmp_ = pl.template get<T>(full_max);
    for (auto& g : g_) g = pl.template get<T>(full_max);
    for (auto& d : d_) d = pl.template get<T>(out_max);
    ops.plan_scratch(pl, L_, max_batch_, max_frames_);
  }

  void block_forward(Ops& ops, const EncoderBuffers<T>& buf, int bi, const T* x, int N, int H,
                     int W, bool training, uint64_t seed) {
    const EncoderBlockLayout& b = L_.blocks[bi];
    Activations& a = act_[bi];
    const int HW = H * W, C = b.c;
    const int64_t n = int64_t(N) * C * HW;
    const T* P = buf.params;
    auto bias = [&](int k) { return b.conv_b[k] >= 0 ? P + b.conv_b[k] : nullptr; };
    auto bn = [&](int k, T* y, const T* in) {
      ops.batchnorm2d_forward(y, a.mean[k], a.invstd[k], in, P + b.bn_w[k], P + b.bn_b[k],
                              buf.running + b.run_mean[k], buf.running + b.run_var[k], N, C, HW,
                              training);
      if (training) ++buf.counters[b.bn_count[k]];
    };
    a.in = x;
    a.H = H;
    a.W = W;
    // main path: (N, cin, H, W) -> (N, C, H, W)
    ops.conv2d_forward(a.conv[0], x, P + b.conv_w[0], bias(0), N, b.cin, H, W, C, 3);
    bn(0, a.act1, a.conv[0]);
    ops.activation_forward(a.act1, a.act1, n, L_.act);
    ops.conv2d_forward(a.conv[1], a.act1, P + b.conv_w[1], bias(1), N, C, H, W, C, 3);
    bn(1, a.act2, a.conv[1]);
    ops.activation_forward(a.act2, a.act2, n, L_.act);
    ops.conv2d_forward(a.conv[2], a.act2, P + b.conv_w[2], bias(2), N, C, H, W, C, 3);
    if (b.ca_w1 >= 0) {
      bn(2, a.bn3_out, a.conv[2]);
      ops.channel_attention_forward(a.sum, a.ca, a.bn3_out, P + b.ca_w1, P + b.ca_w2, N, C, b.cr,
                                    HW);
    } else {
      bn(2, a.sum, a.conv[2]);
    }
    // shortcut: conv1x1 + BN, then add, act
    ops.conv2d_forward(a.conv[3], x, P + b.conv_w[3], static_cast<const T*>(nullptr), N, b.cin, H,
                       W, C, 1);
    bn(3, tmp_, a.conv[3]);
    ops.add_forward(a.sum, a.sum, tmp_, n);
    ops.activation_forward(a.sum, a.sum, n, L_.act);
    // maxpool2 -> (N, C, H/2, W/2), dropout in place
    ops.maxpool2d_forward(a.out, a.sum, N * C, H, W);
    const int64_t n_out = int64_t(N) * C * (H / 2) * (W / 2);
    ops.dropout_forward(a.out, a.mask, a.out, n_out, float(L_.cfg.drop_rate), seed, training);
  }

  void block_backward(Ops& ops, const EncoderBuffers<T>& buf, int bi, T* dout, T* din, int N,
                      bool first) {
    const EncoderBlockLayout& b = L_.blocks[bi];
    const Activations& a = act_[bi];
    const int H = a.H, W = a.W, HW = H * W, C = b.c;
    const int64_t n = int64_t(N) * C * HW;
    const bool tr = last_training_;
    const T* P = buf.params;
    T* G = buf.grads;
    auto dbias = [&](int k) { return b.conv_b[k] >= 0 ? G + b.conv_b[k] : nullptr; };
    auto bn_back = [&](int k, T* dx, const T* dy) {
      ops.batchnorm2d_backward(dx, G + b.bn_w[k], G + b.bn_b[k], dy, a.conv[k], P + b.bn_w[k],
                               a.mean[k], a.invstd[k], N, C, HW, tr);
    };
    T *g0 = g_[0], *g1 = g_[1], *g2 = g_[2];
    const T* x = a.in;
    ops.dropout_backward(dout, dout, a.mask, int64_t(N) * C * (H / 2) * (W / 2));
    ops.maxpool2d_backward(g0, dout, a.sum, N * C, H, W);
    ops.activation_backward(g0, g0, a.sum, n, L_.act);  // g0 = d(bn3 [+att] + shortcut)
    // shortcut
    bn_back(3, g1, g0);
    ops.conv2d_backward(first ? nullptr : din, G + b.conv_w[3], static_cast<T*>(nullptr), g1, x,
                        P + b.conv_w[3], N, b.cin, H, W, C, 1, false);
    // main path, in reverse
    const T* d_bn3 = g0;
    if (b.ca_w1 >= 0) {
      ops.channel_attention_backward(g2, G + b.ca_w1, G + b.ca_w2, g0, a.ca, a.bn3_out, P + b.ca_w1,
                                     P + b.ca_w2, N, C, b.cr, HW);
      d_bn3 = g2;
    }
    bn_back(2, g1, d_bn3);
    ops.conv2d_backward(g0, G + b.conv_w[2], dbias(2), g1, a.act2, P + b.conv_w[2], N, C, H, W, C,
                        3, false);
    ops.activation_backward(g0, g0, a.act2, n, L_.act);
    bn_back(1, g1, g0);
    ops.conv2d_backward(g0, G + b.conv_w[1], dbias(1), g1, a.act1, P + b.conv_w[1], N, C, H, W, C,
                        3, false);
    ops.activation_backward(g0, g0, a.act1, n, L_.act);
    bn_back(0, g1, g0);
    ops.conv2d_backward(first ? nullptr : din, G + b.conv_w[0], dbias(0), g1, x, P + b.conv_w[0], N,
                        b.cin, H, W, C, 3, true);
  }

  EncoderLayout L_;
  int max_batch_, max_frames_;
  std::vector<Activations> act_;  // num_blocks
  T *tmp_ = nullptr, *g_[3] = {}, *d_[2] = {};
  int last_B_ = 0;
  bool last_training_ = false, dropout_frozen_ = false;
  uint64_t seed_ = 0, forward_count_ = 0;
};

}  // namespace fsl
