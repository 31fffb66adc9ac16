// Detection throughput on the CPU, in hours of audio per second (counter "h_audio/s"):
//   BM_DetectFloor      the no-training floor over a 1-hour (310k x 128) feature file
//   BM_DetectMeanEmbed  the encoder path's plumbing (windows, prototypes, p) with a trivial
//                       mean-over-time embedder, 1 hour
//   BM_DetectEncoder/S  the encoder path with the real v1 encoder (random weights: same cost as
//                       trained ones) through EncoderInference, 2 minutes of audio; S = 1:
//                       eval.shared_maps
// Run: build/bench_detect --benchmark_counters_tabular=true   (FSL_THREADS threads, default 1)
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <random>

#include "fsl/detect.hpp"
#include "fsl/model.hpp"
#include "fsl/model_infer.hpp"
#include "fsl/npy.hpp"

namespace {

const double kFps = 22050.0 / 256.0;

// A (frames, 128) feature file: noise, bumps of 20 frames every 500 frames; the first 5 are the
// shots. Written once per length under the temp dir.
fsl::DetectFile make_file(long frames) {
  auto path = std::filesystem::temp_directory_path() /
              ("fsl_bench_detect_" + std::to_string(frames) + "_logmel.npy");
  fsl::DetectFile f;
  f.name = "bench.wav";
  f.feature_path = path.string();
  for (int i = 0; i < 5; ++i) f.pos.push_back({(100 + 500 * i) / kFps, (120 + 500 * i) / kFps});
  if (std::filesystem::exists(path)) return f;
  std::vector<float> x(size_t(frames) * 128);
  std::mt19937 rng(1);
  std::normal_distribution<float> noise(-10.f, 1.f);
  for (auto& v : x) v = noise(rng);
  for (long t = 0; t < frames; ++t)
    if (t % 500 >= 100 && t % 500 < 120)
      for (int m = 20; m < 40; ++m) x[size_t(t) * 128 + m] += 6.f;
  fsl::npy_write(f.feature_path, x.data(), {size_t(frames), 128});
  return f;
}

struct MeanOverTime : fsl::Embedder {
  int dim() const override { return 128; }
  void embed(const float* w, int B, int T, int M, float* out) override {
    for (int b = 0; b < B; ++b)
      for (int m = 0; m < M; ++m) {
        float s = 0;
        for (int t = 0; t < T; ++t) s += w[(size_t(b) * T + t) * M + m];
        out[size_t(b) * M + m] = s / T;
      }
  }
};

int threads() {
  const char* t = std::getenv("FSL_THREADS");
  return t ? std::max(1, std::atoi(t)) : 1;
}

// As EncoderEmbedder without a checkpoint file: random weights, no input normalisation.
struct EncoderRandom : fsl::Embedder {
  fsl::Encoder enc;
  fsl::EncoderInference inf;
  explicit EncoderRandom(const fsl::Config& c) : enc(c.features, 1, 1024, 1), inf(enc, threads()) {}
  int dim() const override { return enc.dim(); }
  void embed(const float* w, int B, int T, int, float* out) override { inf.forward(w, B, T, out); }
  int map_stride() const override { return inf.map_stride(); }
  size_t map_floats(int T) const override { return inf.map_floats(T); }
  void run_maps(const float* runs, int B, int T, int, float* maps) override {
    inf.maps(runs, B, T, maps);
  }
  void pool_rows(const float* maps, int T, int r0, int rows, float* out) const override {
    inf.pool_rows(maps, T, r0, rows, out);
  }
};

void report(benchmark::State& state, long frames) {
  state.counters["h_audio/s"] =
      benchmark::Counter(frames / kFps / 3600.0, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_DetectFloor(benchmark::State& state) {
  const long frames = 310000;  // 1 hour
  auto f = make_file(frames);
  fsl::Config c;
  for (auto _ : state) benchmark::DoNotOptimize(fsl::detect_frame_prototype(f, c));
  report(state, frames);
}

void BM_DetectMeanEmbed(benchmark::State& state) {
  const long frames = 310000;
  auto f = make_file(frames);
  fsl::Config c;
  MeanOverTime e;
  for (auto _ : state) benchmark::DoNotOptimize(fsl::detect_with_embedder(f, c, e, 0));
  report(state, frames);
}

void BM_DetectEncoder(benchmark::State& state) {
  const long frames = 10336;  // 2 minutes
  auto f = make_file(frames);
  fsl::Config c;
  c.eval.batch_size = 64;
  c.eval.shared_maps = state.range(0) == 1;
  EncoderRandom e(c);
  for (auto _ : state) benchmark::DoNotOptimize(fsl::detect_with_embedder(f, c, e, 0));
  report(state, frames);
}

}  // namespace

BENCHMARK(BM_DetectFloor)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_DetectMeanEmbed)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_DetectEncoder)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
BENCHMARK_MAIN();
