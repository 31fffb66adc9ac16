// GPU training step of the default episode (200 x 17 x 128: forward, filter-negative
// prototypical loss, backward, Adam) with CudaEncoder, TF32 off and on; and the encoder's
// convolutions alone (forward, backward data, backward filter at the training shapes) with their
// achieved TFLOP/s, FLOPs counted analytically (2 * N * Cout * Cin * k^2 * H * W per pass).
// Built without CUDA or run without a device: every benchmark is skipped with the reason.
// Peer: bench/peer/train_step_torch.py --device cuda. Run by scripts/gpu-suite.sh.
#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

#include "bench_gpu_util.hpp"
#include "fsl/cuda_frontend.hpp"
#ifdef FSL_HAVE_CUDA
#include "fsl/config.hpp"
#include "fsl/cuda_context.hpp"
#include "fsl/cuda_encoder.hpp"
#include "fsl/cuda_ops.hpp"
#endif

namespace {

#ifdef FSL_HAVE_CUDA
constexpr int kB = 200, kT = 17;

std::vector<float> randn(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// One conv of the encoder at the training shape.
struct Conv {
  int cin, cout, H, W, k;
  bool needs_dx;  // the first block's input needs no gradient
  double flops() const { return 2.0 * kB * cout * cin * k * k * H * W; }
};
// v1 encoder, 3 blocks of (conv3x3 cin->c, c->c, c->c, shortcut conv1x1 cin->c).
std::vector<Conv> encoder_convs(int n_mels) {
  const int ch[3] = {64, 128, 64};
  std::vector<Conv> out;
  int H = kT, W = n_mels, cin = 1;
  for (int b = 0; b < 3; ++b) {
    out.push_back({cin, ch[b], H, W, 3, b > 0});
    out.push_back({ch[b], ch[b], H, W, 3, true});
    out.push_back({ch[b], ch[b], H, W, 3, true});
    out.push_back({cin, ch[b], H, W, 1, b > 0});
    cin = ch[b];
    H /= 2;
    W /= 2;
  }
  return out;
}
double step_conv_flops(int n_mels) {  // forward + backward filter (+ backward data)
  double f = 0;
  for (const Conv& c : encoder_convs(n_mels)) f += c.flops() * (c.needs_dx ? 3 : 2);
  return f;
}
#endif

// Args: arch (1 = v1, 2 = v2), TF32 (0 off, 1 on).
void BM_GpuTrainStep(benchmark::State& st) {
  if (skip_without_gpu(st)) return;
#ifdef FSL_HAVE_CUDA
  fsl::FeaturesConfig f;
  f.arch = st.range(0) == 2 ? "v2" : "v1";
  fsl::CudaEncoder enc(f, kB, kT, 42, st.range(1) != 0);
  fsl::CudaContext& ctx = enc.context();
  fsl::cuda::CudaProtoLoss loss(kB, enc.dim());
  fsl::cuda::CudaAdam opt(enc.num_params());
  fsl::DeviceBuffer<float> x(randn(size_t(kB) * kT * f.n_mels, 7));
  fsl::DeviceBuffer<float> emb(size_t(kB) * enc.dim()), demb(size_t(kB) * enc.dim());
  std::vector<int> labels(kB);
  for (int i = 0; i < kB; ++i) labels[i] = (i % 100) / 10 * 2 + (i >= 100);
  auto step = [&] {
    enc.forward(x.get(), kB, kT, true, emb.get());
    loss.compute(ctx, emb.get(), labels.data(), kB, 5, true, demb.get());
    enc.zero_grad();
    enc.backward(demb.get());
    opt.step(ctx, enc.params(), enc.grads());
    ctx.synchronize();
  };
  step();  // warm-up: lazy cuDNN/cuBLAS initialisation
  for (auto _ : st) step();
  const double flops = step_conv_flops(f.n_mels);
  st.counters["conv_TFLOP_per_s"] =
      benchmark::Counter(flops * 1e-12 * double(st.iterations()), benchmark::Counter::kIsRate);
  st.counters["conv_GFLOP_per_step"] = flops * 1e-9;
#endif
}
BENCHMARK(BM_GpuTrainStep)
    ->Args({1, 0})
    ->Args({1, 1})
    ->Args({2, 0})
    ->Args({2, 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The v1 encoder's 12 convolutions alone, forward + backward, TF32 off (0) or on (1).
void BM_GpuConvs(benchmark::State& st) {
  if (skip_without_gpu(st)) return;
#ifdef FSL_HAVE_CUDA
  const int n_mels = 128;
  fsl::CudaContext ctx(st.range(0) != 0);
  const auto convs = encoder_convs(n_mels);
  struct Buffers {
    fsl::DeviceBuffer<float> x, y, dx, dy, w, dw;
  };
  std::vector<Buffers> buf;
  for (const auto& c : convs) {
    const size_t nx = size_t(kB) * c.cin * c.H * c.W, ny = size_t(kB) * c.cout * c.H * c.W;
    const size_t nw = size_t(c.cout) * c.cin * c.k * c.k;
    buf.push_back({fsl::DeviceBuffer<float>(randn(nx, 1)), fsl::DeviceBuffer<float>(ny),
                   fsl::DeviceBuffer<float>(nx), fsl::DeviceBuffer<float>(randn(ny, 2)),
                   fsl::DeviceBuffer<float>(randn(nw, 3)), fsl::DeviceBuffer<float>(nw)});
  }
  auto pass = [&] {
    for (size_t i = 0; i < convs.size(); ++i) {
      const auto& c = convs[i];
      auto& b = buf[i];
      fsl::cuda::conv2d_forward(ctx, b.y.get(), b.x.get(), b.w.get(), nullptr, kB, c.cin, c.H, c.W,
                                c.cout, c.k);
      fsl::cuda::conv2d_backward(ctx, c.needs_dx ? b.dx.get() : nullptr, b.dw.get(), nullptr,
                                 b.dy.get(), b.x.get(), b.w.get(), kB, c.cin, c.H, c.W, c.cout, c.k,
                                 false);
    }
    ctx.synchronize();
  };
  pass();  // plans made here, outside the timing
  for (auto _ : st) pass();
  st.counters["TFLOP_per_s"] = benchmark::Counter(
      step_conv_flops(n_mels) * 1e-12 * double(st.iterations()), benchmark::Counter::kIsRate);
#endif
}
BENCHMARK(BM_GpuConvs)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
