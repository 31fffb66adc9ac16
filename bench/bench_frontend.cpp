// CPU front end throughput: seconds of audio processed per second (counter "audio_s/s"), for
// logmel and pcen, on one thread and with one file per thread on every core.
// Run: build/bench_frontend   (compare: python3 bench/peer/frontend_librosa.py)
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <cmath>
#include <memory>
#include <random>
#include <thread>

#include "fsl/frontend.hpp"

namespace {

constexpr double kSeconds = 60.0;  // one "file": 60 s at 22050 Hz

const std::vector<float>& test_audio() {
  static const std::vector<float> x = [] {
    std::mt19937 rng(7);
    std::normal_distribution<float> noise(0.f, 0.05f);
    std::vector<float> v(size_t(kSeconds * 22050));
    for (size_t i = 0; i < v.size(); ++i)
      v[i] = 0.5f * float(std::sin(2 * M_PI * (300 + 0.01 * double(i)) * double(i) / 22050)) +
             noise(rng);
    return v;
  }();
  return x;
}

// The worst case for the float STFT: a noiseless chirp, whose far-off bands hold only the
// window's side lobes, so (nearly) every frame falls back to the double STFT.
const std::vector<float>& pure_chirp() {
  static const std::vector<float> x = [] {
    std::vector<float> v(size_t(kSeconds * 22050));
    for (size_t i = 0; i < v.size(); ++i)
      v[i] = 0.5f * float(std::sin(2 * M_PI * (300 + 0.01 * double(i)) * double(i) / 22050));
    return v;
  }();
  return x;
}

const char* type_name(int64_t arg) { return arg == 0 ? "logmel" : "pcen"; }

// One thread, one 60 s file per iteration. state.range(0): 0 = logmel, 1 = pcen;
// state.range(1): 0 = the benchmark signal (chirp + noise), 1 = the noiseless chirp. The rate is
// per CPU second (this benchmark's thread), which stays meaningful on a shared, loaded machine.
void BM_FrontendOneThread(benchmark::State& state) {
  openblas_set_num_threads(1);
  const std::string type = type_name(state.range(0));
  const auto& x = state.range(1) ? pure_chirp() : test_audio();
  fsl::Frontend fe(fsl::FrontendParams{});
  for (auto _ : state) {
    auto out = fe.compute(x.data(), x.size(), {type});
    benchmark::DoNotOptimize(out[type].data());
  }
  state.SetLabel(type + (state.range(1) ? " noiseless chirp" : ""));
  // Share of frames whose power spectrum took the double STFT (the float STFT's fallback).
  state.counters["double_frames"] =
      double(fe.double_frames()) / double(fe.num_frames(x.size()));
  state.counters["audio_s/s"] =
      benchmark::Counter(kSeconds * double(state.iterations()), benchmark::Counter::kIsRate);
}

// Every core: each iteration runs one 60 s file per hardware thread, in parallel, one Frontend
// per thread, as fsl_features export does. Rate per wall-clock second.
void BM_FrontendAllThreads(benchmark::State& state) {
  openblas_set_num_threads(1);
  const std::string type = type_name(state.range(0));
  const auto& x = test_audio();
  const int n_threads = int(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<std::unique_ptr<fsl::Frontend>> fes;
  for (int t = 0; t < n_threads; ++t)
    fes.push_back(std::make_unique<fsl::Frontend>(fsl::FrontendParams{}));
  for (auto _ : state) {
    std::vector<std::thread> pool;
    for (int t = 0; t < n_threads; ++t)
      pool.emplace_back([&, t] {
        auto out = fes[t]->compute(x.data(), x.size(), {type});
        benchmark::DoNotOptimize(out[type].data());
      });
    for (auto& th : pool) th.join();
  }
  state.SetLabel(type + " x" + std::to_string(n_threads) + " threads");
  state.counters["audio_s/s"] = benchmark::Counter(
      kSeconds * n_threads * double(state.iterations()), benchmark::Counter::kIsRate);
}

BENCHMARK(BM_FrontendOneThread)
    ->Args({0, 0})
    ->Args({1, 0})
    ->Args({0, 1})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FrontendAllThreads)->Arg(0)->Arg(1)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
