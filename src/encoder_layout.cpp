#include <cmath>
#include <random>

#include "fsl/encoder_graph.hpp"

namespace fsl {

namespace {
constexpr int kChannels[EncoderLayout::kMaxBlocks] = {64, 128, 64, 64};  // layer1..layer4
constexpr int kAttentionReduction = 16;
}  // namespace

EncoderLayout::EncoderLayout(const FeaturesConfig& c) : cfg(c) {
  if (cfg.arch != "v1" && cfg.arch != "v2")
    fail("features.arch: '", cfg.arch, "' is not one of v1, v2");
  if (cfg.non_linearity == "leaky_relu")
    act = Activation::leaky_relu;
  else if (cfg.non_linearity == "relu")
    act = Activation::relu;
  else
    fail("features.non_linearity: '", cfg.non_linearity, "' is not one of leaky_relu, relu");
  if (cfg.time_max_pool_dim <= 0 || cfg.embedding_dim % (cfg.time_max_pool_dim * 64) != 0)
    fail("features.embedding_dim (", cfg.embedding_dim,
         ") must be a positive multiple of 64 * features.time_max_pool_dim (",
         cfg.time_max_pool_dim, ")");
  num_blocks = cfg.layer_4 ? 4 : 3;
  pool_h = cfg.time_max_pool_dim;
  pool_w = cfg.embedding_dim / (cfg.time_max_pool_dim * 64);
  dim = kLastChannels * pool_h * pool_w;

  // Offsets in PyTorch's state_dict order (module registration order).
  auto param = [&](const std::string& name, std::vector<int64_t> shape) {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    entries_.push_back({name, shape, Entry::parameter, n_params});
    n_params += n;
    return entries_.back().offset;
  };
  blocks.resize(kMaxBlocks);
  for (int bi = 0; bi < kMaxBlocks; ++bi) {
    EncoderBlockLayout& b = blocks[bi];
    b.cin = bi == 0 ? 1 : kChannels[bi - 1];
    b.c = kChannels[bi];
    b.cr = std::max(1, b.c / kAttentionReduction);
    const std::string pre = "encoder.layer" + std::to_string(bi + 1) + ".0.";
    auto bn = [&](int k, const std::string& name) {
      b.bn_w[k] = param(pre + name + ".weight", {b.c});
      b.bn_b[k] = param(pre + name + ".bias", {b.c});
      for (auto [leaf, off] :
           {std::pair{".running_mean", &b.run_mean[k]}, std::pair{".running_var", &b.run_var[k]}}) {
        entries_.push_back({pre + name + leaf, {b.c}, Entry::running, n_running});
        *off = n_running;
        n_running += b.c;
      }
      entries_.push_back({pre + name + ".num_batches_tracked", {}, Entry::counter, n_counters});
      b.bn_count[k] = n_counters++;
    };
    for (int k = 0; k < 3; ++k) {
      const std::string conv = "conv" + std::to_string(k + 1);
      const int cin = k == 0 ? b.cin : b.c;
      b.conv_w[k] = param(pre + conv + ".weight", {b.c, cin, 3, 3});
      b.conv_b[k] = cfg.with_bias ? param(pre + conv + ".bias", {b.c}) : -1;
      bn(k, "bn" + std::to_string(k + 1));
    }
    if (cfg.arch == "v2") {
      b.ca_w1 = param(pre + "ca.fc.0.weight", {b.cr, b.c, 1, 1});
      b.ca_w2 = param(pre + "ca.fc.2.weight", {b.c, b.cr, 1, 1});
    }
    b.conv_w[3] = param(pre + "downsample.0.weight", {b.c, b.cin, 1, 1});
    b.conv_b[3] = -1;
    bn(3, "downsample.1");
  }
}

void EncoderLayout::check_plan(int max_batch, int max_frames) const {
  if (max_batch < 1) fail("encoder: max_batch must be >= 1");
  if (max_frames < min_frames() || (cfg.n_mels >> num_blocks) < 1)
    fail("encoder: input of ", max_frames, " frames x ", cfg.n_mels, " mels is too small for ",
         num_blocks, " pooling blocks (need >= ", min_frames(), " each)");
}

// Kaiming normal, mode fan_out, gain sqrt(2) (leaky_relu with a = 0, or relu): std =
// sqrt(2 / (Cout k k)). Conv biases: PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
template <typename T>
void EncoderLayout::initialise(T* params, T* running, uint64_t seed) const {
  std::fill_n(params, n_params, T(0));
  std::fill_n(running, n_running, T(0));
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  auto kaiming = [&](int64_t off, int cout, int cin, int k) {
    if (off < 0) return;
    const double sd = std::sqrt(2.0 / double(cout * k * k));
    for (int64_t i = 0; i < int64_t(cout) * cin * k * k; ++i) params[off + i] = T(sd * normal(rng));
  };
  for (const EncoderBlockLayout& b : blocks) {
    for (int k = 0; k < 4; ++k) {
      const int cin = (k == 0 || k == 3) ? b.cin : b.c, ks = k == 3 ? 1 : 3;
      kaiming(b.conv_w[k], b.c, cin, ks);
      if (b.conv_b[k] >= 0) {
        const double bound = 1.0 / std::sqrt(double(cin * ks * ks));
        std::uniform_real_distribution<double> u(-bound, bound);
        for (int i = 0; i < b.c; ++i) params[b.conv_b[k] + i] = T(u(rng));
      }
      std::fill_n(params + b.bn_w[k], b.c, T(1));
      std::fill_n(running + b.run_var[k], b.c, T(1));
    }
    kaiming(b.ca_w1, b.cr, b.c, 1);
    kaiming(b.ca_w2, b.c, b.cr, 1);
  }
}

template <typename T>
std::vector<NamedTensor> EncoderLayout::state(T* params, T* running, int64_t* counters) const {
  std::vector<NamedTensor> out;
  const DType ft = sizeof(T) == 4 ? DType::f32 : DType::f64;
  for (const Entry& e : entries_) {
    NamedTensor t{e.name, e.shape, ft, nullptr};
    if (e.kind == Entry::parameter) t.data = params + e.offset;
    if (e.kind == Entry::running) t.data = running + e.offset;
    if (e.kind == Entry::counter) t.dtype = DType::i64, t.data = counters + e.offset;
    out.push_back(std::move(t));
  }
  return out;
}

template void EncoderLayout::initialise<float>(float*, float*, uint64_t) const;
template void EncoderLayout::initialise<double>(double*, double*, uint64_t) const;
template std::vector<NamedTensor> EncoderLayout::state<float>(float*, float*, int64_t*) const;
template std::vector<NamedTensor> EncoderLayout::state<double>(double*, double*, int64_t*) const;

}  // namespace fsl
