// The no-training floor (eval.method=frame_prototype): nearest prototype per feature frame.
// Two streamed passes over the mapped features: (1) per-bin mean/std of the file and the raw
// sums inside the shots and in the background before the last shot; (2) p per later frame.
#include <algorithm>
#include <cmath>

#include "fsl/detect.hpp"
#include "fsl/error.hpp"
#include "fsl/npy.hpp"

namespace fsl {
namespace {

constexpr long kChunkRows = 4096;  // rows touched between page releases

// Sorted, merged copy of the shot spans (shots may overlap or come unsorted).
std::vector<FrameSpan> merged_spans(std::vector<FrameSpan> spans) {
  std::sort(spans.begin(), spans.end(),
            [](const FrameSpan& a, const FrameSpan& b) { return a.begin < b.begin; });
  std::vector<FrameSpan> out;
  for (const auto& s : spans) {
    if (!out.empty() && s.begin <= out.back().end)
      out.back().end = std::max(out.back().end, s.end);
    else
      out.push_back(s);
  }
  return out;
}

bool inside(const std::vector<FrameSpan>& merged, long t) {
  for (const auto& s : merged)
    if (t >= s.begin && t < s.end) return true;
  return false;
}

}  // namespace

// Shared checks of both methods: enough POS rows, shots inside the features, some background
// before the last shot's end, some audio after it. Returns false (with result filled) when the
// file gets no predictions.
namespace detail {
bool prepare_shots(const DetectFile& file, const Config& cfg, long n_frames,
                   std::vector<FrameSpan>& shots, long& query_begin, long& background_frames,
                   FileResult& result) {
  const int n_shot = kDetectionShots;
  result.scores.name = file.name;
  if (static_cast<int>(file.pos.size()) < n_shot) {
    result.skipped = true;
    result.warning = file.name + ": only " + std::to_string(file.pos.size()) + " POS events, " +
                     std::to_string(n_shot) + " needed as shots: skipped";
    return false;
  }
  std::vector<EventSpan> first(file.pos.begin(), file.pos.begin() + n_shot);
  shots = shot_frames(first, cfg.features.frame_rate(), n_frames);
  double total = 0;
  for (const auto& e : first) total += e.end - e.start;
  result.scores.mean_shot_s = total / n_shot;
  for (const auto& s : shots)
    if (s.length() <= 0) {
      result.warning = file.name + ": a shot lies past the end of the features (" +
                       std::to_string(n_frames) + " frames): no predictions";
      return false;
    }
  query_begin = shots.back().end;  // the n_shot-th shot's end, as in the Python system
  background_frames = query_begin;
  for (const auto& s : merged_spans(shots))
    background_frames -= std::max(0L, std::min(s.end, query_begin) - s.begin);
  if (background_frames <= 0) {
    result.warning = file.name +
                     ": the shots cover all the audio before the last shot's end "
                     "(no background to learn a negative prototype): no predictions";
    return false;
  }
  if (query_begin >= n_frames) {
    result.warning = file.name + ": no audio after the last shot: no predictions";
    return false;
  }
  return true;
}

std::vector<FrameSpan> merge_spans(const std::vector<FrameSpan>& spans) {
  return merged_spans(spans);
}
}  // namespace detail

FileResult detect_frame_prototype(const DetectFile& file, const Config& cfg) {
  NpyMap map(file.feature_path);
  if (map.shape().size() != 2) fail(file.feature_path, ": expected a (frames, n_mels) array");
  const long n = static_cast<long>(map.rows()), M = static_cast<long>(map.cols());
  const double fps = cfg.features.frame_rate();
  FileResult result;
  std::vector<FrameSpan> shots;
  long q0 = 0, n_bg = 0;
  if (!detail::prepare_shots(file, cfg, n, shots, q0, n_bg, result)) return result;
  const auto merged = merged_spans(shots);

  // Pass 1: (M) sums over the file, over shot frames, over background frames before q0.
  std::vector<double> sum(M, 0), sumsq(M, 0), pos_sum(M, 0), neg_sum(M, 0);
  long n_pos = 0;
  for (long c0 = 0; c0 < n; c0 += kChunkRows) {
    long c1 = std::min(n, c0 + kChunkRows);
    for (long t = c0; t < c1; ++t) {
      const float* x = map.data() + t * M;
      for (long m = 0; m < M; ++m) {
        sum[m] += x[m];
        sumsq[m] += double(x[m]) * x[m];
      }
      if (t >= q0) continue;
      bool in_shot = inside(merged, t);
      auto& acc = in_shot ? pos_sum : neg_sum;
      for (long m = 0; m < M; ++m) acc[m] += x[m];
      n_pos += in_shot;
    }
    detail::release_rows(map, c0, c1);
  }
  // Frames of shots ending after q0 (an unsorted CSV) are counted in the positive sum too.
  for (const auto& s : merged)
    for (long t = std::max(s.begin, q0); t < s.end; ++t) {
      for (long m = 0; m < M; ++m) pos_sum[m] += map.data()[t * M + m];
      ++n_pos;
    }

  // (M) z-score parameters and the prototypes in z space.
  std::vector<float> mean(M), inv_std(M), proto_pos(M), proto_neg(M);
  for (long m = 0; m < M; ++m) {
    double mu = sum[m] / n;
    double var = std::max(0.0, sumsq[m] / n - mu * mu);
    double sd = std::sqrt(var);
    mean[m] = static_cast<float>(mu);
    inv_std[m] = sd > 1e-8 ? static_cast<float>(1.0 / sd) : 1.0f;  // a constant bin z-scores to 0
    proto_pos[m] = static_cast<float>((pos_sum[m] / n_pos - mu) * inv_std[m]);
    proto_neg[m] = static_cast<float>((neg_sum[m] / n_bg - mu) * inv_std[m]);
  }

  // Pass 2: p(pos) per frame from q0 on: softmax(-d_pos, -d_neg) = 1 / (1 + exp(d_pos - d_neg)).
  std::vector<float> p(n - q0);
  for (long c0 = q0; c0 < n; c0 += kChunkRows) {
    long c1 = std::min(n, c0 + kChunkRows);
    for (long t = c0; t < c1; ++t) {
      const float* x = map.data() + t * M;
      double d_pos = 0, d_neg = 0;
      for (long m = 0; m < M; ++m) {
        double z = (x[m] - mean[m]) * inv_std[m];
        d_pos += (z - proto_pos[m]) * (z - proto_pos[m]);
        d_neg += (z - proto_neg[m]) * (z - proto_neg[m]);
      }
      p[t - q0] = static_cast<float>(1.0 / (1.0 + std::exp(d_pos - d_neg)));
    }
    detail::release_rows(map, c0, c1);
  }

  long shortest = shots.front().length();
  for (const auto& s : shots) shortest = std::min(shortest, s.length());
  FileScores& sc = result.scores;
  sc.p = moving_average(p, std::max(1, static_cast<int>(std::lround(shortest / 2.0))));
  sc.start_s = frame_start_time(q0, cfg);
  sc.step_s = 1.0 / fps;
  sc.extent_s = 1.0 / fps;
  sc.duration_s = n / fps;
  sc.shortest_shot_s = shortest / fps;
  sc.min_run_s = 0.5 * sc.shortest_shot_s;
  return result;
}

}  // namespace fsl
