// The GPU front end's host/device logic, checked on the CPU: the affine scan operator, the
// kernels' reduce-then-scan tiling of the PCEN smoother, chunk planning and framing, the sparse
// mel ranges, and the whole chunked pipeline emulated with those functions against fsl::Frontend.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <random>

#include "fsl/cuda_frontend.hpp"
#include "fsl/error.hpp"
#include "fsl/frontend.hpp"
#include "fsl/frontend_scan.hpp"
#include "testutil.hpp"

using fsl::test::relative_frobenius;

namespace fsl {
namespace {

using fscan::Affine;

std::vector<float> random_signal(size_t n, unsigned seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> x(n);
  for (auto& v : x) v = d(rng);
  return x;
}

TEST(CudaFrontendLogic, AffineComposeIsAssociativeAndMatchesSequentialApplication) {
  std::mt19937 rng(1);
  std::uniform_real_distribution<double> u(-2, 2);
  for (int trial = 0; trial < 100; ++trial) {
    const Affine f{u(rng), u(rng)}, g{u(rng), u(rng)}, h{u(rng), u(rng)};
    const double y = u(rng);
    const Affine left = fscan::affine_then(fscan::affine_then(f, g), h);
    const Affine right = fscan::affine_then(f, fscan::affine_then(g, h));
    EXPECT_NEAR(left.a, right.a, 1e-12);
    EXPECT_NEAR(left.b, right.b, 1e-12);
    // f first, then g, then h: the same as applying them one by one.
    const double seq = fscan::affine_apply(h, fscan::affine_apply(g, fscan::affine_apply(f, y)));
    EXPECT_NEAR(fscan::affine_apply(left, y), seq, 1e-12);
    const Affine id = fscan::affine_identity();
    EXPECT_EQ(fscan::affine_then(id, f).a, f.a);
    EXPECT_EQ(fscan::affine_then(f, id).b, f.b);
  }
}

// The three kernels of launch_pcen, emulated block by block with the same per-thread functions.
void pcen_scan_emulated(const float* e, long long T, int M, double s, const fm::PcenParams& pp,
                        std::vector<double>& state, float* out) {
  const long long n_tiles = fscan::num_tiles(T);
  std::vector<Affine> tile_maps(n_tiles * M);
  std::vector<double> tile_start(n_tiles * M);
  for (long long tile = 0; tile < n_tiles; ++tile)  // pcen_tile_reduce_kernel
    for (int m = 0; m < M; ++m) {
      Affine rows[fscan::kTileRows], prefix[fscan::kTileRows];
      for (int r = 0; r < fscan::kTileRows; ++r)
        rows[r] = fscan::tile_row_map(e, T, M, m, tile, r, s);
      tile_maps[tile * M + m] = fscan::exclusive_row_prefix(rows, prefix);
    }
  for (int m = 0; m < M; ++m)  // pcen_carry_kernel
    state[m] = fscan::carry_through_tiles(tile_maps.data(), n_tiles, M, m, state[m],
                                          tile_start.data());
  for (long long tile = 0; tile < n_tiles; ++tile)  // pcen_tile_apply_kernel
    for (int m = 0; m < M; ++m) {
      Affine rows[fscan::kTileRows], prefix[fscan::kTileRows];
      for (int r = 0; r < fscan::kTileRows; ++r)
        rows[r] = fscan::tile_row_map(e, T, M, m, tile, r, s);
      fscan::exclusive_row_prefix(rows, prefix);
      for (int r = 0; r < fscan::kTileRows; ++r)
        fscan::pcen_walk_row(e, out, M, m, fscan::row_begin(tile, r, T),
                             fscan::row_end(tile, r, T), s,
                             fscan::affine_apply(prefix[r], tile_start[tile * M + m]), pp);
    }
}

TEST(CudaFrontendLogic, TiledScanAcrossChunksEqualsSequentialSmoother) {
  const int M = 5;
  const double s = fm::pcen_smoother_coef(0.4, 22050, 256);
  const fm::PcenParams pp{0.98f, 2.0f, 0.5f, 1e-6f};
  for (long long T : {1LL, 31LL, 32LL, 255LL, 256LL, 257LL, 1000LL, 2049LL}) {
    std::vector<float> e = random_signal(T * M, unsigned(T));
    for (auto& v : e) v = v * v * 1e12f;  // energies: non-negative, large as PCEN sees them
    // Sequential reference, as src/frontend.cpp runs it.
    std::vector<float> want(T * M);
    std::vector<double> y(M, fm::pcen_smoother_init());
    for (long long t = 0; t < T; ++t)
      for (int m = 0; m < M; ++m) {
        y[m] = fm::pcen_smoother_step(y[m], e[t * M + m], s);
        want[t * M + m] = fm::pcen_value(e[t * M + m], float(y[m]), pp);
      }
    for (long long chunk : {T, 1LL, 7LL, 256LL, 300LL}) {
      std::vector<float> got(T * M, -1.0f);
      std::vector<double> state(M, fm::pcen_smoother_init());
      for (long long t0 = 0; t0 < T; t0 += chunk)
        pcen_scan_emulated(e.data() + t0 * M, std::min(chunk, T - t0), M, s, pp, state,
                           got.data() + t0 * M);
      for (int m = 0; m < M; ++m) EXPECT_NEAR(state[m], y[m], 1e-9 * std::abs(y[m]));
      for (size_t i = 0; i < want.size(); ++i)
        ASSERT_NEAR(got[i], want[i], 1e-5f * std::abs(want[i]) + 1e-6f)
            << "T " << T << " chunk " << chunk << " index " << i;
    }
  }
}

TEST(CudaFrontendLogic, ChunkPlansCoverEveryFrameOnceAndHoldEverySampleRead) {
  for (int n_fft : {16, 1024})
    for (int hop : {5, 256})
      for (bool reflect : {false, true})
        for (size_t n : {size_t(1), size_t(2), size_t(7), size_t(9), size_t(511), size_t(513),
                         size_t(1500), size_t(4099)})
          for (size_t max_samples : {size_t(1), size_t(n_fft + 1), size_t(n_fft + 2 * hop + 3),
                                     size_t(5000), size_t(1) << 20}) {
            const std::vector<float> x = random_signal(n, unsigned(n));
            const size_t F = fscan::chunk_frames_for(max_samples, n_fft, hop);
            const size_t cap = fscan::chunk_sample_capacity(F, n_fft, hop);
            ASSERT_GE(F, 1u);
            if (max_samples > size_t(n_fft)) {
              EXPECT_LE(cap, max_samples);
            }
            size_t next = 0;
            for (const auto& c : fscan::plan_chunks(n, n_fft, hop, reflect, F)) {
              ASSERT_EQ(c.frame_begin, next);
              ASSERT_GT(c.frame_end, c.frame_begin);
              ASSERT_LE(c.frame_end - c.frame_begin, F);
              ASSERT_LE(c.sample_end - c.sample_begin, cap);
              ASSERT_LE(c.sample_end, n);
              next = c.frame_end;
              const float* slice = x.data() + c.sample_begin;
              for (size_t t = c.frame_begin; t < c.frame_end; ++t)
                for (int i = 0; i < n_fft; ++i) {
                  const long long j = fm::pad_source_index(
                      (long long)t * hop - n_fft / 2 + i, (long long)n, reflect);
                  if (j >= 0) {
                    ASSERT_GE(size_t(j), c.sample_begin) << "n " << n << " t " << t;
                    ASSERT_LT(size_t(j), c.sample_end) << "n " << n << " t " << t;
                  }
                  const double whole = fscan::framed_sample(x.data(), 0, n, t, i, hop, n_fft,
                                                            reflect);
                  ASSERT_EQ(fscan::framed_sample(slice, c.sample_begin, n, t, i, hop, n_fft,
                                                 reflect),
                            whole);
                }
            }
            EXPECT_EQ(next, 1 + n / size_t(hop));  // every frame, once, in order
          }
}

TEST(CudaFrontendLogic, MelBandRangesHoldEveryNonZeroWeight) {
  FrontendParams p;
  const std::vector<float> fb = mel_filterbank(p);
  const int nb = p.n_bins();
  const std::vector<int> r = fscan::mel_band_ranges(fb, p.n_mels, nb);
  size_t covered = 0;
  for (int m = 0; m < p.n_mels; ++m) {
    for (int k = 0; k < nb; ++k)
      if (k < r[2 * m] || k >= r[2 * m + 1]) {
        ASSERT_EQ(fb[size_t(m) * nb + k], 0.0f);
      }
    covered += size_t(r[2 * m + 1] - r[2 * m]);
  }
  EXPECT_LT(covered, size_t(p.n_mels) * nb / 8);  // sparse: what makes the fused kernel cheap
}

// The whole GPU pipeline with the kernels' per-element functions, a naive double DFT in place
// of cuFFT, and the fused kernel's ranged float sum, run in the host's pipeline order through
// per-slot staging buffers (as CudaFrontend::compute_into on pageable memory): chunked output
// equals fsl::Frontend's.
std::map<std::string, std::vector<float>> emulate_gpu_frontend(const FrontendParams& p,
                                                               const std::vector<float>& x,
                                                               size_t max_chunk_samples) {
  const int n_fft = p.n_fft, nb = p.n_bins(), M = p.n_mels;
  const size_t n = x.size(), frames = 1 + n / size_t(p.hop);
  const std::vector<float> fb = mel_filterbank(p);
  const std::vector<int> ranges = fscan::mel_band_ranges(fb, M, nb);
  const double s = fm::pcen_smoother_coef(p.pcen_time_constant, p.sr, double(p.pcen_hop));
  const fm::PcenParams pp{float(p.pcen_gain), float(p.pcen_bias), float(p.pcen_power),
                          float(p.pcen_eps)};
  std::vector<float> logmel(frames * M), pcen(frames * M);
  std::vector<double> state(M, fm::pcen_smoother_init());
  const size_t F = fscan::chunk_frames_for(max_chunk_samples, n_fft, p.hop);
  const auto plans = fscan::plan_chunks(n, n_fft, p.hop, p.reflect_pad, F);
  // The slots' staging buffers, as CudaFrontend's pinned ones: samples in, results out. A slot
  // restaged before it is drained would hand out another chunk's results.
  struct Slot {
    std::vector<float> samples, logmel, pcen;
  };
  std::vector<Slot> slots(fscan::kPipelineSlots);
  for (auto& sl : slots)
    sl = {std::vector<float>(fscan::chunk_sample_capacity(F, n_fft, p.hop)),
          std::vector<float>(F * M), std::vector<float>(F * M)};
  for (const fscan::PipelineOp& op : fscan::pipeline_schedule(plans.size(), fscan::kPipelineSlots)) {
    const fscan::ChunkPlan& c = plans[op.chunk];
    Slot& sl = slots[op.chunk % slots.size()];
    const long long count = c.frame_end - c.frame_begin;
    if (op.kind == fscan::PipelineOp::kDrain) {
      fscan::parallel_memcpy(logmel.data() + c.frame_begin * M, sl.logmel.data(),
                             sizeof(float) * count * M, 2);
      fscan::parallel_memcpy(pcen.data() + c.frame_begin * M, sl.pcen.data(),
                             sizeof(float) * count * M, 2);
      continue;
    }
    fscan::parallel_memcpy(sl.samples.data(), x.data() + c.sample_begin,
                           sizeof(float) * (c.sample_end - c.sample_begin), 2);
    std::vector<float> mel(count * M), energy(count * M);
    for (long long f = 0; f < count; ++f) {
      std::vector<double> frame(n_fft);
      for (int i = 0; i < n_fft; ++i)
        frame[i] = fscan::framed_sample(sl.samples.data(), c.sample_begin, n, c.frame_begin + f,
                                        i, p.hop, n_fft, p.reflect_pad) *
                   fm::hann_periodic(i, n_fft);
      std::vector<float> power(nb);
      for (int k = 0; k < nb; ++k) {
        std::complex<double> acc = 0;
        for (int i = 0; i < n_fft; ++i)
          acc += frame[i] * std::polar(1.0, -2.0 * M_PI * double(k) * i / n_fft);
        power[k] = float(std::norm(acc));
      }
      for (int m = 0; m < M; ++m) {
        float acc = 0.0f;
        for (int k = ranges[2 * m]; k < ranges[2 * m + 1]; ++k) acc += power[k] * fb[m * nb + k];
        mel[f * M + m] = acc;
        energy[f * M + m] = acc * std::ldexp(1.0f, 64);
        sl.logmel[f * M + m] = fm::log_mel(acc, float(p.log_eps));
      }
    }
    pcen_scan_emulated(energy.data(), count, M, s, pp, state, sl.pcen.data());
  }
  return {{"logmel", logmel}, {"pcen", pcen}};
}

TEST(CudaFrontendLogic, EmulatedChunkedPipelineMatchesCpuFrontend) {
  FrontendParams p;
  p.sr = 8000, p.n_fft = 64, p.hop = 16, p.n_mels = 12, p.fmin = 50, p.fmax = 4000;
  p.pcen_hop = 16;
  for (bool reflect : {false, true})
    for (size_t n : {size_t(10), size_t(33), size_t(1001)}) {
      p.reflect_pad = reflect;
      const std::vector<float> x = random_signal(n, unsigned(n) + 7, 0.3f);
      Frontend cpu(p);
      const auto want = cpu.compute(x.data(), n, {"logmel", "pcen"});
      for (size_t max_samples : {size_t(1), size_t(200), size_t(1) << 20}) {
        const auto got = emulate_gpu_frontend(p, x, max_samples);
        ASSERT_EQ(got.at("logmel").size(), want.at("logmel").size());
        EXPECT_LE(relative_frobenius(got.at("logmel"), want.at("logmel")), 1e-5)
            << "n " << n << " reflect " << reflect << " chunk " << max_samples;
        EXPECT_LE(relative_frobenius(got.at("pcen"), want.at("pcen")), 1e-4)
            << "n " << n << " reflect " << reflect << " chunk " << max_samples;
      }
    }
}

// The host's pipeline order: every chunk queued and drained once, both in chunk order; a slot is
// drained before it is restaged; and the host keeps min(slots, chunks) chunks in flight when it
// drains (the overlap the pipeline is for). Replayed on a model of the slots.
TEST(CudaFrontendLogic, PipelineScheduleDrainsEachSlotBeforeRestagingAndOverlaps) {
  for (int n_slots : {1, 2, 3})
    for (size_t n_chunks = 0; n_chunks < 10; ++n_chunks) {
      std::vector<long long> owner(n_slots, -1);  // chunk staged in each slot, -1: free
      size_t next_enqueue = 0, next_drain = 0, max_in_flight = 0;
      for (const fscan::PipelineOp& op : fscan::pipeline_schedule(n_chunks, n_slots)) {
        long long& slot = owner[op.chunk % n_slots];
        if (op.kind == fscan::PipelineOp::kEnqueue) {
          ASSERT_EQ(op.chunk, next_enqueue++) << n_slots << " slots, " << n_chunks << " chunks";
          ASSERT_EQ(slot, -1) << "chunk " << op.chunk << " restages a slot not yet drained";
          slot = (long long)op.chunk;
        } else {
          ASSERT_EQ(op.chunk, next_drain++) << n_slots << " slots, " << n_chunks << " chunks";
          ASSERT_EQ(slot, (long long)op.chunk) << "drain of a chunk not queued";
          max_in_flight = std::max(max_in_flight, next_enqueue - next_drain + 1);
          slot = -1;
        }
      }
      EXPECT_EQ(next_enqueue, n_chunks);
      EXPECT_EQ(next_drain, n_chunks);
      EXPECT_EQ(max_in_flight, std::min(size_t(n_slots), n_chunks));
    }
  EXPECT_GE(fscan::kPipelineSlots, 2);  // the front end overlaps chunks
}

// The threaded staging copy moves every byte, for sizes around its 1 MiB split and thread
// counts that do not divide them, and writes nothing past the end.
TEST(CudaFrontendLogic, ParallelMemcpyCopiesEveryByteAndNoMore) {
  const size_t MiB = size_t(1) << 20;
  for (size_t bytes : {size_t(0), size_t(1), MiB - 1, MiB, 2 * MiB + 1, 3 * MiB + 7, 9 * MiB + 3})
    for (unsigned threads : {1u, 2u, 4u, 7u}) {
      std::vector<unsigned char> src(bytes), dst(bytes + 64, 0xAB);
      for (size_t i = 0; i < bytes; ++i) src[i] = (unsigned char)(i * 2654435761u >> 13);
      fscan::parallel_memcpy(dst.data(), src.data(), bytes, threads);
      ASSERT_TRUE(std::equal(src.begin(), src.end(), dst.begin())) << bytes << " " << threads;
      for (size_t i = bytes; i < dst.size(); ++i) ASSERT_EQ(dst[i], 0xAB) << bytes << " " << i;
    }
}

// Where no GPU can be used (or the build has no CUDA), the API says why and refuses cleanly.
TEST(CudaFrontendLogic, WithoutDeviceConstructorThrowsAndSaysWhy) {
  std::string why;
  if (cuda_device_available(&why)) GTEST_SKIP() << "a CUDA device is present";
  EXPECT_FALSE(why.empty());
  EXPECT_THROW(CudaFrontend(FrontendParams{}, 4096), Error);
  EXPECT_THROW(CudaFrontend(FrontendParams{}), Error);
}

}  // namespace
}  // namespace fsl
