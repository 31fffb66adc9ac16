#include "fsl/model.hpp"

#include <algorithm>
#include <cmath>
#include <random>

#include "fsl/error.hpp"
#include "fsl/op_math.hpp"

namespace fsl {

namespace {
constexpr int kChannels[4] = {64, 128, 64, 64};  // layer1..layer4 of the baseline ResNet
constexpr int kAttentionReduction = 16;
constexpr int kLastChannels = 64;
}  // namespace

template <typename T>
EncoderT<T>::EncoderT(const FeaturesConfig& cfg, int max_batch, int max_frames, uint64_t seed)
    : cfg_(cfg), max_batch_(max_batch), max_frames_(max_frames), seed_(seed) {
  if (cfg.arch != "v1" && cfg.arch != "v2")
    fail("features.arch: '", cfg.arch, "' is not one of v1, v2");
  if (cfg.non_linearity == "leaky_relu")
    act_ = Activation::leaky_relu;
  else if (cfg.non_linearity == "relu")
    act_ = Activation::relu;
  else
    fail("features.non_linearity: '", cfg.non_linearity, "' is not one of leaky_relu, relu");
  if (cfg.time_max_pool_dim <= 0 || cfg.embedding_dim % (cfg.time_max_pool_dim * 64) != 0)
    fail("features.embedding_dim (", cfg.embedding_dim,
         ") must be a positive multiple of 64 * features.time_max_pool_dim (",
         cfg.time_max_pool_dim, ")");
  num_blocks_ = cfg.layer_4 ? 4 : 3;
  pool_h_ = cfg.time_max_pool_dim;
  pool_w_ = cfg.embedding_dim / (cfg.time_max_pool_dim * 64);
  dim_ = kLastChannels * pool_h_ * pool_w_;
  if (max_batch < 1) fail("encoder: max_batch must be >= 1");
  if (max_frames < min_frames() || (cfg.n_mels >> num_blocks_) < 1)
    fail("encoder: input of ", max_frames, " frames x ", cfg.n_mels, " mels is too small for ",
         num_blocks_, " pooling blocks (need >= ", min_frames(), " each)");
  plan_parameters();
  plan_activations();
  init_weights(seed);
}

// Offsets in the flat buffers, in PyTorch's state_dict order (module registration order).
template <typename T>
void EncoderT<T>::plan_parameters() {
  int64_t n_par = 0, n_buf = 0;
  int n_count = 0;
  auto param = [&](const std::string& name, std::vector<int64_t> shape) {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    entries_.push_back({name, shape, 0, n_par});
    n_par += n;
    return entries_.back().offset;
  };
  blocks_.resize(kMaxBlocks);
  for (int bi = 0; bi < kMaxBlocks; ++bi) {
    Block& b = blocks_[bi];
    b.cin = bi == 0 ? 1 : kChannels[bi - 1];
    b.c = kChannels[bi];
    b.cr = std::max(1, b.c / kAttentionReduction);
    const std::string pre = "encoder.layer" + std::to_string(bi + 1) + ".0.";
    auto bn = [&](int k, const std::string& name) {
      b.bn_w[k] = param(pre + name + ".weight", {b.c});
      b.bn_b[k] = param(pre + name + ".bias", {b.c});
      entries_.push_back({pre + name + ".running_mean", {b.c}, 1, n_buf});
      b.run_mean[k] = n_buf;
      n_buf += b.c;
      entries_.push_back({pre + name + ".running_var", {b.c}, 1, n_buf});
      b.run_var[k] = n_buf;
      n_buf += b.c;
      entries_.push_back({pre + name + ".num_batches_tracked", {}, 2, n_count});
      b.bn_count[k] = n_count++;
    };
    for (int k = 0; k < 3; ++k) {
      const std::string conv = "conv" + std::to_string(k + 1);
      const int cin = k == 0 ? b.cin : b.c;
      b.conv_w[k] = param(pre + conv + ".weight", {b.c, cin, 3, 3});
      b.conv_b[k] = cfg_.with_bias ? param(pre + conv + ".bias", {b.c}) : -1;
      bn(k, "bn" + std::to_string(k + 1));
    }
    if (cfg_.arch == "v2") {
      b.ca_w1 = param(pre + "ca.fc.0.weight", {b.cr, b.c, 1, 1});
      b.ca_w2 = param(pre + "ca.fc.2.weight", {b.c, b.cr, 1, 1});
    }
    b.conv_w[3] = param(pre + "downsample.0.weight", {b.c, b.cin, 1, 1});
    b.conv_b[3] = -1;
    bn(3, "downsample.1");
  }
  params_.assign(n_par, T(0));
  grads_.assign(n_par, T(0));
  buffers_.assign(n_buf, T(0));
  batches_tracked_.assign(n_count, 0);
}

// Activations of every block at its largest size (max_batch x max_frames), one arena.
template <typename T>
void EncoderT<T>::plan_activations() {
  const bool v2 = cfg_.arch == "v2";
  const int64_t N = max_batch_;
  size_t bytes = 0;
  int64_t col = 0, full_max = 0, out_max = 0;
  auto plan = [&](bool take) {
    int H = max_frames_, W = cfg_.n_mels;
    for (int bi = 0; bi < num_blocks_; ++bi) {
      Block& b = blocks_[bi];
      const int64_t full = N * b.c * H * W, out = N * b.c * (H / 2) * (W / 2);
      col = std::max(col, conv2d_col_size(std::max(b.cin, b.c), H, W, 3));
      full_max = std::max(full_max, full);
      out_max = std::max(out_max, out);
      auto get = [&](int64_t n) -> T* {
        if (!take) {
          bytes += Arena::aligned(n * sizeof(T));
          return nullptr;
        }
        return arena_.take<T>(n);
      };
      for (int k = 0; k < 4; ++k) b.conv[k] = get(full);
      b.act1 = get(full);
      b.act2 = get(full);
      b.bn3_out = v2 ? get(full) : nullptr;
      b.sum = get(full);
      b.out = get(out);
      b.mask = get(out);
      for (int k = 0; k < 4; ++k) b.mean[k] = get(b.c), b.invstd[k] = get(b.c);
      if (v2) {
        b.ca.avg = get(N * b.c);
        b.ca.mx = get(N * b.c);
        b.ca.h_avg = get(N * b.cr);
        b.ca.h_max = get(N * b.cr);
        b.ca.att = get(N * b.c);
        if (take)
          b.ca.argmax = arena_.take<int32_t>(N * b.c);
        else
          bytes += Arena::aligned(N * b.c * sizeof(int32_t));
      }
      H /= 2;
      W /= 2;
    }
    if (!take) {
      bytes += Arena::aligned(col * sizeof(T)) + 4 * Arena::aligned(full_max * sizeof(T)) +
               2 * Arena::aligned(out_max * sizeof(T));
      return;
    }
    col_ = arena_.take<T>(col);
    tmp_ = arena_.take<T>(full_max);
    for (auto& g : g_) g = arena_.take<T>(full_max);
    for (auto& d : d_) d = arena_.take<T>(out_max);
  };
  plan(false);
  arena_.allocate(bytes);
  plan(true);
}

// Kaiming normal, mode fan_out, gain sqrt(2) (leaky_relu with a = 0, or relu): std =
// sqrt(2 / (Cout k k)). Conv biases: PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
template <typename T>
void EncoderT<T>::init_weights(uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  auto kaiming = [&](int64_t off, int cout, int cin, int k) {
    if (off < 0) return;
    const double sd = std::sqrt(2.0 / double(cout * k * k));
    for (int64_t i = 0; i < int64_t(cout) * cin * k * k; ++i) params_[off + i] = T(sd * normal(rng));
  };
  for (Block& b : blocks_) {
    for (int k = 0; k < 4; ++k) {
      const int cin = (k == 0 || k == 3) ? b.cin : b.c, ks = k == 3 ? 1 : 3;
      kaiming(b.conv_w[k], b.c, cin, ks);
      if (b.conv_b[k] >= 0) {
        const double bound = 1.0 / std::sqrt(double(cin * ks * ks));
        std::uniform_real_distribution<double> u(-bound, bound);
        for (int i = 0; i < b.c; ++i) params_[b.conv_b[k] + i] = T(u(rng));
      }
      std::fill_n(&params_[b.bn_w[k]], b.c, T(1));
      std::fill_n(&buffers_[b.run_var[k]], b.c, T(1));
    }
    kaiming(b.ca_w1, b.cr, b.c, 1);
    kaiming(b.ca_w2, b.c, b.cr, 1);
  }
}

template <typename T>
void EncoderT<T>::zero_grad() {
  std::fill(grads_.begin(), grads_.end(), T(0));
}

template <typename T>
std::vector<NamedTensor> EncoderT<T>::state() {
  std::vector<NamedTensor> out;
  const DType ft = sizeof(T) == 4 ? DType::f32 : DType::f64;
  for (const Entry& e : entries_) {
    NamedTensor t{e.name, e.shape, ft, nullptr};
    if (e.kind == 0) t.data = params_.data() + e.offset;
    if (e.kind == 1) t.data = buffers_.data() + e.offset;
    if (e.kind == 2) t.dtype = DType::i64, t.data = batches_tracked_.data() + e.offset;
    out.push_back(std::move(t));
  }
  return out;
}

template <typename T>
void EncoderT<T>::block_forward(Block& b, const T* x, int N, int H, int W, bool training,
                                uint64_t seed) {
  const int HW = H * W, C = b.c;
  const int64_t n = int64_t(N) * C * HW;
  T* P = params_.data();
  auto bias = [&](int k) { return b.conv_b[k] >= 0 ? P + b.conv_b[k] : nullptr; };
  auto bn = [&](int k, T* y, const T* in) {
    batchnorm2d_forward(y, b.mean[k], b.invstd[k], in, P + b.bn_w[k], P + b.bn_b[k],
                        buffers_.data() + b.run_mean[k], buffers_.data() + b.run_var[k], N, C,
                        HW, training);
    if (training) ++batches_tracked_[b.bn_count[k]];
  };
  b.in = const_cast<T*>(x);
  b.H = H;
  b.W = W;
  // main path: (N, cin, H, W) -> (N, C, H, W)
  conv2d_forward(b.conv[0], x, P + b.conv_w[0], bias(0), N, b.cin, H, W, C, 3, col_);
  bn(0, b.act1, b.conv[0]);
  activation_forward(b.act1, b.act1, n, act_);
  conv2d_forward(b.conv[1], b.act1, P + b.conv_w[1], bias(1), N, C, H, W, C, 3, col_);
  bn(1, b.act2, b.conv[1]);
  activation_forward(b.act2, b.act2, n, act_);
  conv2d_forward(b.conv[2], b.act2, P + b.conv_w[2], bias(2), N, C, H, W, C, 3, col_);
  if (b.ca_w1 >= 0) {
    bn(2, b.bn3_out, b.conv[2]);
    channel_attention_forward(b.sum, b.ca, b.bn3_out, P + b.ca_w1, P + b.ca_w2, N, C, b.cr, HW);
  } else {
    bn(2, b.sum, b.conv[2]);
  }
  // shortcut: conv1x1 + BN, then add, act
  conv2d_forward(b.conv[3], x, P + b.conv_w[3], (const T*)nullptr, N, b.cin, H, W, C, 1, col_);
  bn(3, tmp_, b.conv[3]);
  add_forward(b.sum, b.sum, tmp_, n);
  activation_forward(b.sum, b.sum, n, act_);
  // maxpool2 -> (N, C, H/2, W/2), dropout in place
  maxpool2d_forward(b.out, b.sum, N * C, H, W);
  const int64_t n_out = int64_t(N) * C * (H / 2) * (W / 2);
  dropout_forward(b.out, b.mask, b.out, n_out, float(cfg_.drop_rate), seed, training);
}

template <typename T>
void EncoderT<T>::forward(const T* x, int B, int frames, bool training, T* emb) {
  if (B < 1 || B > max_batch_)
    fail("encoder: batch of ", B, " outside 1..", max_batch_, " (the planned maximum)");
  if (frames < min_frames() || frames > max_frames_)
    fail("encoder: ", frames, " frames outside ", min_frames(), "..", max_frames_);
  if (training && !dropout_frozen_) ++forward_count_;
  input_ = x;
  last_B_ = B;
  last_T_ = frames;
  last_training_ = training;
  int H = frames, W = cfg_.n_mels;
  const T* in = x;
  for (int bi = 0; bi < num_blocks_; ++bi) {
    const uint64_t seed = om::mix64(seed_ ^ om::mix64(forward_count_ * kMaxBlocks + bi));
    block_forward(blocks_[bi], in, B, H, W, training, seed);
    in = blocks_[bi].out;
    H /= 2;
    W /= 2;
  }
  // (B, 64, H, W) -> (B, 64, pool_h, pool_w) = (B, dim)
  adaptive_avgpool2d_forward(emb, in, B * kLastChannels, H, W, pool_h_, pool_w_);
}

template <typename T>
void EncoderT<T>::block_backward(Block& b, T* dout, T* din, int N, bool first) {
  const int H = b.H, W = b.W, HW = H * W, C = b.c;
  const int64_t n = int64_t(N) * C * HW;
  const bool tr = last_training_;
  T* P = params_.data();
  T* G = grads_.data();
  auto dbias = [&](int k) { return b.conv_b[k] >= 0 ? G + b.conv_b[k] : nullptr; };
  auto bn_back = [&](int k, T* dx, const T* dy) {
    batchnorm2d_backward(dx, G + b.bn_w[k], G + b.bn_b[k], dy, b.conv[k], P + b.bn_w[k],
                         b.mean[k], b.invstd[k], N, C, HW, tr);
  };
  T *g0 = g_[0], *g1 = g_[1], *g2 = g_[2];
  const T* x = b.in;
  dropout_backward(dout, dout, b.mask, int64_t(N) * C * (H / 2) * (W / 2));
  maxpool2d_backward(g0, dout, b.sum, N * C, H, W);
  activation_backward(g0, g0, b.sum, n, act_);  // g0 = d(bn3 [+att] + shortcut)
  // shortcut
  bn_back(3, g1, g0);
  conv2d_backward(first ? nullptr : din, G + b.conv_w[3], (T*)nullptr, g1, x, P + b.conv_w[3], N,
                  b.cin, H, W, C, 1, col_, false);
  // main path, in reverse
  const T* d_bn3 = g0;
  if (b.ca_w1 >= 0) {
    channel_attention_backward(g2, G + b.ca_w1, G + b.ca_w2, g0, b.ca, b.bn3_out, P + b.ca_w1,
                               P + b.ca_w2, N, C, b.cr, HW);
    d_bn3 = g2;
  }
  bn_back(2, g1, d_bn3);
  conv2d_backward(g0, G + b.conv_w[2], dbias(2), g1, b.act2, P + b.conv_w[2], N, C, H, W, C, 3,
                  col_, false);
  activation_backward(g0, g0, b.act2, n, act_);
  bn_back(1, g1, g0);
  conv2d_backward(g0, G + b.conv_w[1], dbias(1), g1, b.act1, P + b.conv_w[1], N, C, H, W, C, 3,
                  col_, false);
  activation_backward(g0, g0, b.act1, n, act_);
  bn_back(0, g1, g0);
  conv2d_backward(first ? nullptr : din, G + b.conv_w[0], dbias(0), g1, x, P + b.conv_w[0], N,
                  b.cin, H, W, C, 3, col_, true);
}

template <typename T>
void EncoderT<T>::backward(const T* demb) {
  if (last_B_ == 0) fail("encoder: backward() called before forward()");
  const Block& last = blocks_[num_blocks_ - 1];
  T* dcur = d_[0];
  T* dprev = d_[1];
  adaptive_avgpool2d_backward(dcur, demb, last_B_ * kLastChannels, last.H / 2, last.W / 2,
                              pool_h_, pool_w_);
  for (int bi = num_blocks_ - 1; bi >= 0; --bi) {
    block_backward(blocks_[bi], dcur, dprev, last_B_, bi == 0);
    std::swap(dcur, dprev);
  }
}

template class EncoderT<float>;
template class EncoderT<double>;

EncoderTensorName parse_encoder_tensor_name(const std::string& name) {
  const std::string pre = "encoder.layer";
  auto bad = [&]() -> EncoderTensorName {
    fail("encoder tensor name '", name, "' is not encoder.layer<1-4>.0.<module>.<field>");
  };
  if (name.rfind(pre, 0) != 0 || name.size() < pre.size() + 4) return bad();
  EncoderTensorName r;
  r.block = name[pre.size()] - '1';
  if (r.block < 0 || r.block >= EncoderT<float>::kMaxBlocks ||
      name.compare(pre.size() + 1, 3, ".0.") != 0)
    return bad();
  r.field = name.substr(pre.size() + 4);  // after "<i>.0."
  const size_t dot = r.field.rfind('.');
  if (dot == std::string::npos || dot + 1 == r.field.size()) return bad();
  r.leaf = r.field.substr(dot + 1);
  const std::string module = r.field.substr(0, dot);
  for (int k = 0; k < 3; ++k) {
    if (module == "conv" + std::to_string(k + 1)) r.slot = k, r.conv = true;
    if (module == "bn" + std::to_string(k + 1)) r.slot = k;
  }
  if (module == "downsample.0") r.slot = 3, r.conv = true;
  if (module == "downsample.1") r.slot = 3;
  if (r.slot < 0 && module != "ca.fc.0" && module != "ca.fc.2") return bad();
  return r;
}

}  // namespace fsl
