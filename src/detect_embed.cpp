// The encoder path of few-shot detection (docs/REFERENCE.md §7) over any Embedder: windows of the
// adaptive segment length are gathered from the mapped features in batches of eval.batch_size,
// embedded, and compared with a positive and eval.neg_iterations negative prototypes.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>

#include "fsl/detect.hpp"
#include "fsl/error.hpp"
#include "fsl/npy.hpp"

namespace fsl {
namespace {

// frame_of(w, t): the feature row of time step t of window w.
using FrameOf = std::function<long(long w, int t)>;

// Gathers and embeds windows [0, count) in batches; `use(w0, nb, emb)` gets the (nb, D)
// embeddings of windows w0..w0+nb-1. `done_below(w0)` (optional) is told the first window of
// each new batch, so streamed pages behind it can be released.
class WindowEmbedder {
 public:
  WindowEmbedder(const NpyMap& map, Embedder& embedder, int seg, int batch)
      : map_(map),
        emb_(embedder),
        seg_(seg),
        batch_(std::max(1, batch)),
        M_(static_cast<long>(map.cols())),
        windows_(size_t(batch_) * seg_ * M_),     // (B, seg, M)
        out_(size_t(batch_) * embedder.dim()) {}  // (B, D)

  int dim() const { return emb_.dim(); }

  void run(long count, const FrameOf& frame_of,
           const std::function<void(long w0, int nb, const float* emb)>& use,
           const std::function<void(long w0)>& before_batch = {}) {
    for (long w0 = 0; w0 < count; w0 += batch_) {
      if (before_batch) before_batch(w0);
      int nb = static_cast<int>(std::min<long>(batch_, count - w0));
      for (int b = 0; b < nb; ++b)
        for (int t = 0; t < seg_; ++t) {
          const float* src = map_.data() + frame_of(w0 + b, t) * M_;
          std::copy(src, src + M_, windows_.data() + (size_t(b) * seg_ + t) * M_);
        }
      emb_.embed(windows_.data(), nb, seg_, static_cast<int>(M_), out_.data());
      use(w0, nb, out_.data());
    }
  }

 private:
  const NpyMap& map_;
  Embedder& emb_;
  int seg_, batch_;
  long M_;
  std::vector<float> windows_, out_;
};

// Mean squared distance from q to its k nearest rows of `rows` (n, D); `dist` is scratch.
double mean_nearest_distance(const float* q, const std::vector<float>& rows, int D, int k,
                             std::vector<double>& dist) {
  const size_t n = rows.size() / size_t(D);
  dist.resize(n);
  for (size_t j = 0; j < n; ++j) dist[j] = detail::squared_distance(q, rows.data() + j * D, D);
  return detail::mean_smallest(dist, k);
}

// The background before the first query frame, seen as one sequence: the gaps between the
// shots, concatenated. Maps a position in that sequence to a feature row.
struct Background {
  std::vector<FrameSpan> gaps;
  std::vector<long> offset;  // offset[i] = total length of gaps before gap i
  long total = 0;

  Background(const std::vector<FrameSpan>& shots, long end) {
    long cursor = 0;
    for (const auto& s : detail::merge_spans(shots)) {
      if (s.begin > cursor) add({cursor, std::min(s.begin, end)});
      cursor = std::max(cursor, s.end);
      if (cursor >= end) break;
    }
    if (cursor < end) add({cursor, end});
  }
  void add(FrameSpan g) {
    if (g.length() <= 0) return;
    gaps.push_back(g);
    offset.push_back(total);
    total += g.length();
  }
  long row(long v) const {
    size_t i = std::upper_bound(offset.begin(), offset.end(), v) - offset.begin() - 1;
    return gaps[i].begin + (v - offset[i]);
  }
};

// eval.shared_maps: p[w] = score(embedding of query window w = [q0 + w hop, + seg)), each
// embedding pooled from the last maps of runs of kRun frames (+ the rows a window starting near
// the run's end reads, + kHalo frames each side so that the run's own zero padding never reaches
// a row that is used). Frames past the file's end repeat its last frame, as the per-window path.
void score_from_shared_maps(const NpyMap& map, Embedder& embedder, long q0, long n_query, int seg,
                            int hop, const std::function<float(const float*)>& score,
                            std::vector<float>& p) {
  const int S = embedder.map_stride();
  if (S <= 0) fail("eval.shared_maps: this encoder offers no shared maps (v1 encoders only)");
  const long n = static_cast<long>(map.rows());
  const int M = static_cast<int>(map.cols()), D = embedder.dim();
  constexpr int kRun = 512, kHalo = 32, kBatch = 4;  // frames; runs per embedder call
  const int rows = std::max(1, seg / S), run_rows = kRun / S, halo_rows = kHalo / S;
  const int T = kRun + rows * S + 2 * kHalo;  // input frames per run
  const long last_r0 = ((n_query - 1) * hop + S / 2) / S;
  const long n_runs = last_r0 / run_rows + 1;
  const size_t map_size = embedder.map_floats(T);
  std::vector<float> in(size_t(kBatch) * T * M), maps(size_t(kBatch) * map_size), emb(D);
  long w = 0, released = 0;
  for (long k0 = 0; k0 < n_runs; k0 += kBatch) {
    const int nb = static_cast<int>(std::min<long>(kBatch, n_runs - k0));
    const long first_row = std::clamp(q0 + k0 * kRun - kHalo, 0L, n);
    detail::release_rows(map, size_t(released), size_t(std::max(released, first_row)));
    released = std::max(released, first_row);
    for (int b = 0; b < nb; ++b)
      for (int t = 0; t < T; ++t) {
        const long f = std::clamp(q0 + (k0 + b) * kRun - kHalo + t, 0L, n - 1);
        std::copy(map.data() + f * M, map.data() + (f + 1) * M,
                  in.data() + (size_t(b) * T + t) * M);
      }
    embedder.run_maps(in.data(), nb, T, M, maps.data());
    // windows whose first map row lies in these runs' core rows
    for (; w < n_query; ++w) {
      const long r0 = (w * hop + S / 2) / S;
      const long k = r0 / run_rows;
      if (k >= k0 + nb) break;
      const int local = static_cast<int>(r0 - k * run_rows) + halo_rows;
      embedder.pool_rows(maps.data() + size_t(k - k0) * map_size, T, local, rows, emb.data());
      p[w] = score(emb.data());
    }
  }
}

}  // namespace

void Embedder::run_maps(const float*, int, int, int, float*) {
  fail("eval.shared_maps: this embedder offers no shared maps");
}
void Embedder::pool_rows(const float*, int, int, int, float*) const {
  fail("eval.shared_maps: this embedder offers no shared maps");
}

FileResult detect_with_embedder(const DetectFile& file, const Config& cfg, Embedder& embedder,
                                int file_index) {
  NpyMap map(file.feature_path);
  if (map.shape().size() != 2) fail(file.feature_path, ": expected a (frames, n_mels) array");
  const long n = static_cast<long>(map.rows());
  const double fps = cfg.features.frame_rate();
  const auto& ev = cfg.eval;
  FileResult result;
  std::vector<FrameSpan> shots;
  long q0 = 0, n_bg = 0;
  if (!detail::prepare_shots(file, cfg, n, shots, q0, n_bg, result)) return result;

  long max_len = 0, shortest = shots.front().length();
  for (const auto& s : shots) {
    max_len = std::max(max_len, s.length());
    shortest = std::min(shortest, s.length());
  }
  const SegmentPlan plan =
      adaptive_segment(max_len, cfg.features.test_seglen_len_lim, cfg.features.test_hoplen_fenmu);
  const int seg = plan.seg, hop = plan.hop, D = embedder.dim();
  std::vector<float> norm_mean, norm_inv_std;  // empty: the embedder's training statistics
  detail::file_normalisation(map, ev.normalise, norm_mean, norm_inv_std);
  embedder.set_file_normalisation(norm_mean, norm_inv_std);
  WindowEmbedder windows(map, embedder, seg, ev.batch_size);

  // Positive prototype (D): mean over every window of every shot; short shots are tiled.
  struct ShotWindow {
    FrameSpan shot;
    long start;
    int shot_index;
  };
  std::vector<ShotWindow> pos_windows;
  for (size_t i = 0; i < shots.size(); ++i)
    for (long st : shot_window_starts(shots[i], seg, hop))
      pos_windows.push_back({shots[i], st, int(i)});
  std::vector<double> pos_acc(D, 0.0);
  // Every shot window's embedding (P, D), kept for pos_nearest_k > 0.
  const bool pos_nearest = ev.pos_nearest_k > 0;
  std::vector<float> pos_rows;
  windows.run(
      static_cast<long>(pos_windows.size()),
      [&](long w, int t) {
        const auto& pw = pos_windows[w];
        long len = pw.shot.length();
        // A window may run past the file's end only for a short shot at the very end: clamp.
        long r = len < seg ? pw.shot.begin + t % len : pw.start + t;
        return std::min(r, n - 1);
      },
      [&](long, int nb, const float* e) {
        for (int b = 0; b < nb; ++b)
          for (int d = 0; d < D; ++d) pos_acc[d] += e[size_t(b) * D + d];
        if (pos_nearest) pos_rows.insert(pos_rows.end(), e, e + size_t(nb) * D);
      });
  std::vector<float> proto_pos(D);
  for (int d = 0; d < D; ++d) proto_pos[d] = static_cast<float>(pos_acc[d] / pos_windows.size());

  // Negative prototypes (iters, D): windows at hop/2 over the background sequence.
  const Background bg(shots, q0);
  const int neg_hop = std::max(1, hop / 2);
  const long n_neg = bg.total >= seg ? (bg.total - seg) / neg_hop + 1 : 1;
  const int iters = std::max(1, ev.neg_iterations), draws = std::max(1, ev.neg_windows);
  std::mt19937_64 rng(static_cast<uint64_t>(ev.seed) + static_cast<uint64_t>(file_index));
  std::vector<float> proto_neg(size_t(iters) * D);
  const bool nearest = ev.negatives == "nearest";
  // nearest: every drawn window's embedding (iters * draws, D) and its start in the background.
  std::vector<float> neg_windows;
  if (nearest) neg_windows.reserve(size_t(iters) * draws * D);
  std::vector<long> drawn(draws);
  for (int it = 0; it < iters; ++it) {
    for (auto& w : drawn) w = static_cast<long>(rng() % static_cast<uint64_t>(n_neg));
    std::vector<double> acc(D, 0.0);
    windows.run(
        draws,
        [&](long w, int t) {
          long v = bg.total >= seg ? drawn[w] * neg_hop + t : t % bg.total;
          return bg.row(v);
        },
        [&](long, int nb, const float* e) {
          for (int b = 0; b < nb; ++b)
            for (int d = 0; d < D; ++d) acc[d] += e[size_t(b) * D + d];
          if (nearest) neg_windows.insert(neg_windows.end(), e, e + size_t(nb) * D);
        });
    for (int d = 0; d < D; ++d) proto_neg[size_t(it) * D + d] = static_cast<float>(acc[d] / draws);
  }

  // Queries from q0 at the hop; the last window may run past the end (edge frames repeated).
  const long span = n - q0;
  const long n_query = span > seg ? (span - seg + hop - 1) / hop + 1 : 1;
  std::vector<float>& p = result.scores.p;
  p.resize(n_query);
  std::vector<double> dist;  // nearest: scratch, one distance per negative window
  auto score = [&](const float* q) {
    double d_pos = pos_nearest && nearest
                       ? mean_nearest_distance(q, pos_rows, D, ev.pos_nearest_k, dist)
                       : detail::squared_distance(q, proto_pos.data(), D);
    if (nearest) {
      const double d_neg = mean_nearest_distance(q, neg_windows, D, ev.neg_nearest_k, dist);
      return static_cast<float>(d_pos + d_neg > 0 ? d_neg / (d_pos + d_neg) : 0.5);
    }
    double p_sum = 0;
    for (int it = 0; it < iters; ++it) {
      double d_neg = detail::squared_distance(q, proto_neg.data() + size_t(it) * D, D);
      p_sum += 1.0 / (1.0 + std::exp(d_pos - d_neg));  // softmax(-d_pos, -d_neg)[pos]
    }
    return static_cast<float>(p_sum / iters);
  };
  // Shared maps round each window's start to the map stride: only where the hop is at least one
  // stride (windows of >= 24 frames at hop seg / 3); shorter windows keep the exact path.
  const int stride = embedder.map_stride();
  if (ev.shared_maps && (stride <= 0 || hop >= stride)) {
    score_from_shared_maps(map, embedder, q0, n_query, seg, hop, score, p);
  } else {
    long released = 0;
    windows.run(
        n_query, [&](long w, int t) { return std::min(q0 + w * hop + t, n - 1); },
        [&](long w0, int nb, const float* e) {
          for (int b = 0; b < nb; ++b) p[w0 + b] = score(e + size_t(b) * D);
        },
        [&](long w0) {
          long first_row = std::min(n, q0 + w0 * hop);
          detail::release_rows(map, size_t(released), size_t(first_row));
          released = std::max(released, first_row);
        });
  }

  FileScores& sc = result.scores;
  sc.start_s = frame_start_time(q0, cfg);
  sc.step_s = hop / fps;
  sc.extent_s = seg / fps;
  sc.duration_s = n / fps;
  sc.shortest_shot_s = shortest / fps;
  sc.min_run_s = 0;
  return result;
}

}  // namespace fsl
