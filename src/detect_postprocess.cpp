// Post-processing, what both detection methods share after p: the decision (threshold -> runs ->
// events), merging and boundaries, the output CSV, the threshold sweep and its scores.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "fsl/detect.hpp"

namespace fsl {

PostProcess PostProcess::from(const EvalConfig& e) {
  PostProcess pp;
  pp.min_len_frac = e.min_len_frac;
  pp.min_len_s = e.min_len_s;
  pp.merge_gap_s = e.merge_gap_s;
  pp.fit_to_shots = e.boundaries == "shots";
  pp.merge_overlaps = e.merge_overlaps;
  return pp;
}

std::vector<EventSpan> decide_events(const FileScores& s, double threshold, const PostProcess& pp) {
  std::vector<EventSpan> runs;
  const size_t n = s.p.size();
  for (size_t i = 0; i < n;) {
    if (!(s.p[i] > threshold)) {
      ++i;
      continue;
    }
    size_t last = i;
    while (last + 1 < n && s.p[last + 1] > threshold) ++last;
    double on = s.start_s + double(i) * s.step_s;
    double off = std::min(s.start_s + double(last) * s.step_s + s.extent_s, s.duration_s);
    if (off > on) runs.push_back({on, off});
    i = last + 1;
  }
  const double min_len = std::max({pp.min_len_frac * s.shortest_shot_s, pp.min_len_s, s.min_run_s});
  std::vector<EventSpan> kept;
  // A call of length L inside windows of extent W > L turns every window that contains it
  // positive: the run spans 2W - L. Trimming W - L at each end gives the call back. Only for
  // overlapping windows (extent > step): the floor's frames are left as they are.
  const bool windows = s.extent_s > s.step_s;
  const double trim =
      pp.fit_to_shots && windows && s.mean_shot_s > 0 ? s.extent_s - s.mean_shot_s : 0;
  for (auto r : runs) {
    if (r.end - r.start < min_len) continue;
    if (trim > 0) {
      const double centre = 0.5 * (r.start + r.end);
      const double len = std::max(s.mean_shot_s, r.end - r.start - 2 * trim);
      r = {std::max(0.0, centre - 0.5 * len), std::min(s.duration_s, centre + 0.5 * len)};
    }
    kept.push_back(r);
  }
  // Overlapping events are one (runs of windows longer than their hop overlap when the gap
  // between the runs is shorter than a window).
  if ((pp.merge_gap_s <= 0 && !pp.merge_overlaps) || kept.empty()) return kept;
  std::vector<EventSpan> merged{kept.front()};
  for (size_t i = 1; i < kept.size(); ++i) {
    if (kept[i].start - merged.back().end < pp.merge_gap_s)
      merged.back().end = std::max(merged.back().end, kept[i].end);
    else
      merged.push_back(kept[i]);
  }
  return merged;
}

namespace {
// Times as the CSV writes them; predictions held in memory carry the same rounded values so
// scoring them equals scoring the written file.
std::string time_text(double t) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", t);
  return buf;
}
}  // namespace

std::vector<Prediction> predictions_at(const std::vector<FileScores>& files, double threshold,
                                       const PostProcess& pp) {
  std::vector<Prediction> out;
  for (const auto& f : files)
    for (const auto& e : decide_events(f, threshold, pp)) {
      Prediction p;
      p.file = f.name;
      p.start_text = time_text(e.start);
      p.start = std::strtod(p.start_text.c_str(), nullptr);
      p.end = std::strtod(time_text(e.end).c_str(), nullptr);
      out.push_back(std::move(p));
    }
  std::stable_sort(out.begin(), out.end(), [](const Prediction& a, const Prediction& b) {
    if (a.file != b.file) return a.file < b.file;
    return a.start < b.start;
  });
  return out;
}

std::string predictions_csv(const std::vector<Prediction>& preds) {
  std::string text = "Audiofilename,Starttime,Endtime\n";
  for (const auto& p : preds)
    text += p.file + "," + time_text(p.start) + "," + time_text(p.end) + "\n";
  return text;
}

std::vector<ThresholdScore> score_thresholds(const std::vector<FileScores>& files,
                                             const std::vector<double>& thresholds,
                                             const PostProcess& pp, const std::string& ref_dir) {
  std::vector<ThresholdScore> out;
  for (double t : thresholds) {
    ThresholdScore r;
    r.threshold = t;
    r.predictions = predictions_at(files, t, pp);
    r.scores = score_predictions(ref_dir, r.predictions);
    out.push_back(std::move(r));
  }
  return out;
}

size_t best_threshold(const std::vector<ThresholdScore>& results) {
  size_t best = 0;
  for (size_t i = 1; i < results.size(); ++i)
    if (results[i].scores.fmeasure > results[best].scores.fmeasure) best = i;
  return best;
}

std::vector<double> sweep_thresholds() {
  std::vector<double> t;
  for (int i = 0; i < 20; ++i) t.push_back(i * 0.05);
  return t;
}

std::string threshold_name(double threshold) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", threshold);
  return buf;
}

std::vector<float> moving_average(const std::vector<float>& x, int width) {
  const long n = static_cast<long>(x.size());
  if (width <= 1 || n == 0) return x;
  // Running sum in double: no drift over 10 h of frames, no O(n) scratch.
  std::vector<float> y(n);
  const long before = width / 2, after = width - 1 - before;
  double sum = 0;
  long a = 0, b = 0;  // the sum covers x[a, b)
  for (long i = 0; i < n; ++i) {
    long want_a = std::max(0L, i - before), want_b = std::min(n, i + after + 1);
    while (b < want_b) sum += x[b++];
    while (a < want_a) sum -= x[a++];
    y[i] = static_cast<float>(sum / double(b - a));
  }
  return y;
}

}  // namespace fsl
