// The logic of the CUDA front end that does not need a GPU, so CPU tests can check it:
//  - the PCEN smoother as an associative scan: y[t] = s*x[t] + (1-s)*y[t-1] is the affine map
//    y -> a*y + b with (a, b) = (1-s, s*x[t]); maps compose associatively, so a prefix of them
//    can be built in any grouping (per-row, per-tile, per-chunk) and applied to a start state;
//  - the reduce-then-scan tiling the kernels use (rows of frames inside tiles inside a chunk);
//  - chunk planning: which frames each chunk computes and which samples it must hold;
//  - the framing of one sample with centre padding, from a chunk's slice of the signal;
//  - the host's pipeline over chunks (which chunk is staged, queued, drained when) and the
//    threaded memcpy that stages pageable memory through pinned buffers.
// The kernels in cuda/frontend.cu call these functions; nothing here allocates on the device.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <system_error>
#include <thread>
#include <vector>

#include "fsl/frontend_math.hpp"

namespace fsl::fscan {

// ---- affine maps y -> a*y + b (the smoother's step) ----------------------------------------
struct Affine {
  double a, b;
};

FSL_HD inline Affine affine_identity() { return {1.0, 0.0}; }

// The map that applies `first`, then `second`: second(first(y)) = a2*(a1*y + b1) + b2.
FSL_HD inline Affine affine_then(Affine first, Affine second) {
  return {second.a * first.a, second.a * first.b + second.b};
}

FSL_HD inline double affine_apply(Affine f, double y) { return f.a * y + f.b; }

// One smoother step as a map: y[t] = s*x[t] + (1-s)*y[t-1].
FSL_HD inline Affine smoother_map(double s, double x) { return {1.0 - s, s * x}; }

// ---- tiling of the scan over frames -----------------------------------------------------------
// A chunk's frames [0, T) split into tiles of kTileFrames; a tile into kTileRows rows of
// kRowFrames frames, one row per thread (threadIdx.y), 32 mel bands per block (threadIdx.x).
constexpr int kRowFrames = 32;
constexpr int kTileRows = 8;
constexpr int kTileFrames = kRowFrames * kTileRows;  // 256
constexpr int kBandsPerBlock = 32;

FSL_HD inline long long num_tiles(long long frames) {
  return (frames + kTileFrames - 1) / kTileFrames;
}

// The composed map of frames [t_begin, t_end) of band m; e is (T, n_mels) row-major.
FSL_HD inline Affine row_aggregate(const float* e, int n_mels, int m, long long t_begin,
                                   long long t_end, double s) {
  Affine acc = affine_identity();
  for (long long t = t_begin; t < t_end; ++t)
    acc = affine_then(acc, smoother_map(s, double(e[t * n_mels + m])));
  return acc;
}

// Frames [row_begin, row_end) of row r of tile `tile`, clipped to [0, T).
FSL_HD inline long long row_begin(long long tile, int r, long long T) {
  const long long t = tile * kTileFrames + (long long)r * kRowFrames;
  return t < T ? t : T;
}
FSL_HD inline long long row_end(long long tile, int r, long long T) {
  return row_begin(tile, r + 1, T);
}

// Exclusive prefix over the rows of a tile: prefix[r] = rows 0..r-1 composed; returns the tile's
// whole map (all kTileRows rows).
FSL_HD inline Affine exclusive_row_prefix(const Affine* rows, Affine* prefix) {
  Affine acc = affine_identity();
  for (int r = 0; r < kTileRows; ++r) {
    prefix[r] = acc;
    acc = affine_then(acc, rows[r]);
  }
  return acc;
}

// Walks frames [t_begin, t_end) of band m from state y (the smoothed value before t_begin),
// writing PCEN of e (the scaled mel energy) to out (T, n_mels). Returns the state after t_end.
FSL_HD inline double pcen_walk_row(const float* e, float* out, int n_mels, int m, long long t_begin,
                                   long long t_end, double s, double y, const fm::PcenParams& pp) {
  for (long long t = t_begin; t < t_end; ++t) {
    const float et = e[t * n_mels + m];
    y = fm::pcen_smoother_step(y, double(et), s);
    out[t * n_mels + m] = fm::pcen_value(et, float(y), pp);
  }
  return y;
}

// Thread (band m, row r) of the tiles' reduce and apply kernels: the composed map of its row.
FSL_HD inline Affine tile_row_map(const float* e, long long T, int n_mels, int m, long long tile,
                                  int r, double s) {
  return row_aggregate(e, n_mels, m, row_begin(tile, r, T), row_end(tile, r, T), s);
}

// The carry pass over one band: tile_start[tile*n_mels + m] = state before that tile, from the
// state y before the chunk and each tile's whole map; returns the state after the chunk.
FSL_HD inline double carry_through_tiles(const Affine* tile_maps, long long n_tiles, int n_mels,
                                         int m, double y, double* tile_start) {
  for (long long tile = 0; tile < n_tiles; ++tile) {
    tile_start[tile * n_mels + m] = y;
    y = affine_apply(tile_maps[tile * n_mels + m], y);
  }
  return y;
}

// ---- chunk planning -----------------------------------------------------------------------------
// A chunk computes frames [frame_begin, frame_end) of the whole signal and holds samples
// [sample_begin, sample_end): every sample those frames read, padding sources included.
struct ChunkPlan {
  size_t frame_begin, frame_end;
  size_t sample_begin, sample_end;
};

// Frames per chunk so that a chunk's samples fit in max_chunk_samples (at least one frame).
inline size_t chunk_frames_for(size_t max_chunk_samples, int n_fft, int hop) {
  const size_t need_one = size_t(n_fft) + 1;  // one frame plus a reflected edge sample
  if (max_chunk_samples <= need_one) return 1;
  return 1 + (max_chunk_samples - need_one) / size_t(hop);
}

// Samples a chunk of `frames` frames may hold: (frames-1)*hop + n_fft + 1 (see chunk_samples).
inline size_t chunk_sample_capacity(size_t frames, int n_fft, int hop) {
  return (frames - 1) * size_t(hop) + size_t(n_fft) + 1;
}

// Samples needed by frames [f0, f1) of a signal of n samples (f1 > f0, n > 0). Frame t reads
// padded indices [t*hop - n_fft/2, t*hop + n_fft/2). Constant padding reads zeros outside [0, n);
// reflect padding reads mirrored samples, which near the start lie in [1, n_fft/2] and near the
// end in [n-1-n_fft/2, n-2]: the range grows to include them.
inline ChunkPlan chunk_samples(size_t f0, size_t f1, size_t n, int n_fft, int hop, bool reflect) {
  const long long half = n_fft / 2, N = (long long)n;
  const long long first = (long long)f0 * hop - half;       // first padded index read
  const long long last = (long long)(f1 - 1) * hop + half;  // one past the last
  long long lo = std::clamp(first, 0LL, N), hi = std::clamp(last, 0LL, N);
  if (reflect) {
    if (first < 0) hi = std::max(hi, std::min(N, half + 1));
    if (last > N) lo = std::min(lo, std::max(0LL, N - 1 - half));
    if (hi <= lo) lo = 0, hi = N;  // frames entirely in the padding of a short signal
    if (N <= half + 1 && (first < 0 || last > N)) lo = 0, hi = N;  // pad longer than signal
  }
  return {f0, f1, size_t(lo), size_t(hi)};
}

// All chunks of a signal of n samples, frames_per_chunk frames each (the last may be shorter).
inline std::vector<ChunkPlan> plan_chunks(size_t n, int n_fft, int hop, bool reflect,
                                          size_t frames_per_chunk) {
  const size_t frames = 1 + n / size_t(hop);
  std::vector<ChunkPlan> plans;
  for (size_t f0 = 0; f0 < frames; f0 += frames_per_chunk)
    plans.push_back(
        chunk_samples(f0, std::min(frames, f0 + frames_per_chunk), n, n_fft, hop, reflect));
  return plans;
}

// ---- the host pipeline over chunks ------------------------------------------------------------
// CudaFrontend holds kPipelineSlots buffer sets (device buffers, pinned staging, a stream each);
// chunk c runs in slot c % kPipelineSlots: chunk c+1's staging and upload run while chunk c
// computes and chunk c-1's results come back (copy engines and SMs work at once). Three, not two:
// within one stream a chunk's upload waits for the download of the chunk two before it; with three
// streams the upload engine stays busy (bench/LOG.md has both counts measured).
constexpr int kPipelineSlots = 3;

struct PipelineOp {
  enum Kind { kEnqueue, kDrain } kind;
  size_t chunk;
};

// The host's order of work over n_chunks chunks in n_slots slots. kEnqueue c: wait until c's slot
// is free, stage c's samples, queue its copies and kernels; kDrain c: wait for c's results, copy
// them out of the slot. Chunk c is drained right after chunk c + n_slots - 1 is queued, so the
// host's copies of one chunk overlap the GPU work of the others, and a slot is always drained
// before it is staged again (tests/test_cuda_frontend_logic.cpp checks both).
inline std::vector<PipelineOp> pipeline_schedule(size_t n_chunks, int n_slots) {
  const size_t lag = size_t(std::max(1, n_slots) - 1);  // chunks queued ahead of the drain
  std::vector<PipelineOp> ops;
  for (size_t c = 0; c < n_chunks; ++c) {
    ops.push_back({PipelineOp::kEnqueue, c});
    if (c >= lag) ops.push_back({PipelineOp::kDrain, c - lag});
  }
  for (size_t c = n_chunks > lag ? n_chunks - lag : 0; c < n_chunks; ++c)
    ops.push_back({PipelineOp::kDrain, c});
  return ops;
}

// memcpy split over up to max_threads threads, at least 1 MiB each (one thread moves ~10 GB/s,
// a few come near the memory bandwidth); small copies stay on the caller's thread. Staging a
// chunk of pageable memory through pinned buffers is the host's share of the pipeline.
inline void parallel_memcpy(void* dst, const void* src, size_t bytes, unsigned max_threads) {
  constexpr size_t kMinPart = size_t(1) << 20;
  const size_t parts = std::max<size_t>(1, std::min<size_t>(max_threads, bytes / kMinPart));
  const size_t step = (bytes + parts - 1) / parts;
  auto copy_part = [=](size_t p) {
    const size_t b = std::min(bytes, p * step), e = std::min(bytes, b + step);
    if (e > b) std::memcpy(static_cast<char*>(dst) + b, static_cast<const char*>(src) + b, e - b);
  };
  std::vector<std::thread> pool;
  pool.reserve(parts);
  size_t p = 1;
  try {
    for (; p < parts; ++p) pool.emplace_back(copy_part, p);
  } catch (const std::system_error&) {  // no thread to be had: copy the rest here
  }
  for (size_t q = p; q < parts; ++q) copy_part(q);
  copy_part(0);
  for (auto& t : pool) t.join();
}

// ---- framing ------------------------------------------------------------------------------------
// Sample i of frame t (global index) before windowing, read from a chunk's slice: chunk[k] holds
// signal sample sample_begin + k; n is the whole signal's length.
FSL_HD inline double framed_sample(const float* chunk, long long sample_begin, long long n,
                                   long long t, int i, int hop, int n_fft, bool reflect) {
  const long long j = fm::pad_source_index(t * hop - n_fft / 2 + i, n, reflect);
  return j < 0 ? 0.0 : double(chunk[j - sample_begin]);
}

// ---- sparse mel projection ----------------------------------------------------------------------
// Bin range [lo, hi) where row m of a (n_mels, n_bins) filterbank is non-zero (lo == hi: empty).
inline std::vector<int> mel_band_ranges(const std::vector<float>& fb, int n_mels, int n_bins) {
  std::vector<int> r(2 * size_t(n_mels), 0);  // (n_mels, 2)
  for (int m = 0; m < n_mels; ++m) {
    const float* w = fb.data() + size_t(m) * n_bins;
    int lo = 0, hi = n_bins;
    while (lo < n_bins && w[lo] == 0.0f) ++lo;
    while (hi > lo && w[hi - 1] == 0.0f) --hi;
    r[2 * m] = lo, r[2 * m + 1] = hi;
  }
  return r;
}

}  // namespace fsl::fscan
