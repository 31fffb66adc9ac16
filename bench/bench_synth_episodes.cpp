// Online synthetic episodes: generation time per episode (one thread), and the CPU training step
// fed by SynthEpisodeSource, with the time the step waits for its episode. Generation keeps up
// when that wait is ~0. Threads: FSL_THREADS (default 2) OpenBLAS threads for the step.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <chrono>
#include <cstdlib>
#include <vector>

#include "fsl/loss.hpp"
#include "fsl/model.hpp"
#include "fsl/optim.hpp"
#include "fsl/synth_episodes.hpp"

using namespace fsl;

namespace {
int threads() {
  const char* s = std::getenv("FSL_THREADS");
  return s ? std::atoi(s) : 2;
}

SynthEpisodeParams default_params(int k_way, int n_shot, int workers) {
  SynthEpisodeParams p;  // the default config: 128 mels, 22050 Hz, 17-frame segments
  p.k_way = k_way;
  p.n_shot = n_shot;
  p.num_workers = workers;
  p.mean = -8;  // rough log-mel statistics; the cost does not depend on them
  p.std = 4;
  return p;
}
}  // namespace

// One episode built on one thread: k_way scenes rendered, front end, crops. Args: k_way, n_shot.
static void BM_SynthEpisode(benchmark::State& st) {
  auto p = default_params(int(st.range(0)), int(st.range(1)), 1);
  Frontend fe(FrontendParams::from(p.features));
  std::vector<float> x(size_t(p.batch_size()) * p.seg_frames * p.features.n_mels);
  std::vector<int> labels(size_t(p.batch_size()));
  long index = 0;
  for (auto _ : st)
    make_synth_episode(p, fe, synth_episode_seed(p.seed, 0, index++), x.data(), labels.data());
  st.counters["scenes_per_s"] =
      benchmark::Counter(double(p.k_way), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_SynthEpisode)
    ->Args({10, 5})
    ->Args({5, 5})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(8);

// The training step (v1, filter-negative loss, Adam) on episodes from SynthEpisodeSource with
// Arg workers; wait_s is the mean time per step spent waiting for the next episode.
static void BM_TrainStepFedBySynth(benchmark::State& st) {
  openblas_set_num_threads(threads());
  auto p = default_params(10, 5, int(st.range(0)));
  SynthEpisodeSource source(p);
  source.start_epoch(0, 0, 1000);
  const int B = p.batch_size(), T = p.seg_frames;
  Encoder enc(p.features, B, T, 42);
  Adam opt(enc.params().size());
  std::vector<float> x(size_t(B) * T * p.features.n_mels);
  std::vector<int> labels;
  std::vector<float> emb(size_t(B) * enc.dim()), demb(emb.size());
  source.next(x.data(), labels);  // the first episode is generated cold: not a steady state
  double wait = 0;
  for (auto _ : st) {
    auto t0 = std::chrono::steady_clock::now();
    source.next(x.data(), labels);
    wait += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    enc.forward(x.data(), B, T, true, emb.data());
    prototypical_loss_filter_negative(emb.data(), labels.data(), B, enc.dim(), p.n_shot,
                                      demb.data());
    enc.zero_grad();
    enc.backward(demb.data());
    opt.step(enc.params(), enc.grads());
  }
  st.counters["wait_s"] = benchmark::Counter(wait / double(st.iterations()));
}
BENCHMARK(BM_TrainStepFedBySynth)->Arg(1)->Unit(benchmark::kSecond)->UseRealTime()->Iterations(3);

BENCHMARK_MAIN();
