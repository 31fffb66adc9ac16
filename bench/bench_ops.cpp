// CPU benchmarks: the encoder's heaviest ops at the default episode's shapes, and one training
// step (forward + filter-negative prototypical loss + backward + Adam) for the default episode
// (200 segments x 17 frames x 128 mels, v1). Threads: FSL_THREADS (default 2) OpenBLAS threads.
// Peer: bench/peer/train_step_torch.py.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <cstdlib>
#include <random>
#include <vector>

#include "fsl/loss.hpp"
#include "fsl/model.hpp"
#include "fsl/model_infer.hpp"
#include "fsl/optim.hpp"

using namespace fsl;

namespace {
int threads() {
  const char* t = std::getenv("FSL_THREADS");
  return t ? std::atoi(t) : 2;
}
std::vector<float> randn(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d;
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}
}  // namespace

// layer1 conv2: (200, 64, 17, 128) -> (200, 64, 17, 128)
static void BM_Conv3x3Forward(benchmark::State& st) {
  openblas_set_num_threads(threads());
  const int N = 200, C = 64, H = 17, W = 128;
  auto x = randn(size_t(N) * C * H * W, 1), w = randn(C * C * 9, 2);
  std::vector<float> y(x.size()), col(conv2d_col_size(C, H, W, 3));
  for (auto _ : st)
    conv2d_forward(y.data(), x.data(), w.data(), (const float*)nullptr, N, C, H, W, C, 3, col.data());
  st.counters["GFLOP/s"] = benchmark::Counter(2.0 * N * C * C * 9 * H * W, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Conv3x3Forward)->Unit(benchmark::kMillisecond)->UseRealTime();

static void BM_Conv3x3Backward(benchmark::State& st) {
  openblas_set_num_threads(threads());
  const int N = 200, C = 64, H = 17, W = 128;
  auto x = randn(size_t(N) * C * H * W, 1), w = randn(C * C * 9, 2), dy = randn(x.size(), 3);
  std::vector<float> dx(x.size()), dw(w.size()), col(conv2d_col_size(C, H, W, 3));
  for (auto _ : st)
    conv2d_backward(dx.data(), dw.data(), (float*)nullptr, dy.data(), x.data(), w.data(), N, C, H,
                    W, C, 3, col.data(), false);
}
BENCHMARK(BM_Conv3x3Backward)->Unit(benchmark::kMillisecond)->UseRealTime();

static void BM_BatchNormForwardBackward(benchmark::State& st) {
  const int N = 200, C = 64, HW = 17 * 128;
  auto x = randn(size_t(N) * C * HW, 1), dy = randn(x.size(), 2);
  std::vector<float> y(x.size()), dx(x.size()), g(C, 1), b(C, 0), rm(C, 0), rv(C, 1), m(C), is(C),
      dg(C), db(C);
  for (auto _ : st) {
    batchnorm2d_forward(y.data(), m.data(), is.data(), x.data(), g.data(), b.data(), rm.data(),
                        rv.data(), N, C, HW, true);
    batchnorm2d_backward(dx.data(), dg.data(), db.data(), dy.data(), x.data(), g.data(), m.data(),
                         is.data(), N, C, HW, true);
  }
}
BENCHMARK(BM_BatchNormForwardBackward)->Unit(benchmark::kMillisecond)->UseRealTime();

// The training step of the default episode: 10 classes x (5 shots + 5 queries) positives and as
// many negatives, labels 2c / 2c+1.
static void BM_TrainStep(benchmark::State& st) {
  openblas_set_num_threads(threads());
  FeaturesConfig f;
  f.arch = st.range(0) == 2 ? "v2" : "v1";
  const int B = 200, T = 17;
  Encoder enc(f, B, T, 42);
  Adam opt(enc.params().size());
  auto x = randn(size_t(B) * T * f.n_mels, 7);
  std::vector<int> labels(B);
  for (int i = 0; i < B; ++i) labels[i] = (i % 100) / 10 * 2 + (i >= 100);
  std::vector<float> emb(size_t(B) * enc.dim()), demb(emb.size());
  for (auto _ : st) {
    enc.forward(x.data(), B, T, true, emb.data());
    prototypical_loss_filter_negative(emb.data(), labels.data(), B, enc.dim(), 5, demb.data());
    enc.zero_grad();
    enc.backward(demb.data());
    opt.step(enc.params(), enc.grads());
  }
}
BENCHMARK(BM_TrainStep)->Arg(1)->Arg(2)->Unit(benchmark::kSecond)->UseRealTime()->MeasureProcessCPUTime()->Iterations(3);

// Inference as detection runs it: eval forward of 256 windows x 24 frames x 128 mels, v1.
static void BM_EncoderEval(benchmark::State& st) {
  openblas_set_num_threads(threads());
  FeaturesConfig f;
  const int B = 256, T = 24;
  Encoder enc(f, B, T, 42);
  auto x = randn(size_t(B) * T * f.n_mels, 7);
  std::vector<float> emb(size_t(B) * enc.dim());
  for (auto _ : st) enc.forward(x.data(), B, T, false, emb.data());
  st.counters["windows/s"] = benchmark::Counter(B, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_EncoderEval)->Unit(benchmark::kMillisecond)->UseRealTime()->MeasureProcessCPUTime()->MinTime(2.0);

// Detection's forward (EncoderInference: BN folded, threads over windows): 256 windows of
// range(0) frames x range(1) mels, FSL_THREADS threads. The peer is bench/peer/encoder_torch.py.
static void BM_EncoderInfer(benchmark::State& st) {
  FeaturesConfig f;
  f.n_mels = int(st.range(1));
  const int B = 256, T = int(st.range(0));
  Encoder enc(f, 1, T, 42);
  EncoderInference inf(enc, threads());
  auto x = randn(size_t(B) * T * f.n_mels, 7);
  std::vector<float> emb(size_t(B) * enc.dim());
  for (auto _ : st) inf.forward(x.data(), B, T, emb.data());
  st.counters["windows/s"] = benchmark::Counter(B, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_EncoderInfer)
    ->ArgsProduct({{8, 17, 24, 29}, {128, 64}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MeasureProcessCPUTime()
    ->MinTime(1.0);

BENCHMARK_MAIN();
