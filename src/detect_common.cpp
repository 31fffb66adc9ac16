// What both detection methods share: shots in frames, the adaptive segment plan, the decision
// (threshold -> runs -> events), post-processing and the output CSV.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "fsl/detect.hpp"
#include "fsl/error.hpp"
#include "fsl/npy.hpp"

namespace fsl {

std::vector<FrameSpan> shot_frames(const std::vector<EventSpan>& shots, double frame_rate,
                                   long n_frames, double margin_s) {
  std::vector<FrameSpan> out;
  for (const auto& s : shots) {
    // floor() of both ends with the margins, as the Python system's time_2_frame.
    long b = static_cast<long>(std::floor((s.start - margin_s) * frame_rate));
    long e = static_cast<long>(std::floor((s.end + margin_s) * frame_rate));
    b = std::clamp(b, 0L, n_frames);
    e = std::clamp(e, 0L, n_frames);
    if (e <= b) e = std::min(b + 1, n_frames);  // a zero-length annotation still has a frame
    out.push_back({b, e});
  }
  return out;
}

SegmentPlan adaptive_segment(long max_len, int len_lim, int hoplen_fenmu) {
  long seg;
  if (max_len < 8)
    seg = 8;
  else if (max_len < len_lim)
    seg = max_len;
  else if (max_len < 2L * len_lim)
    seg = max_len / 2;
  else if (max_len < 500)
    seg = max_len / 4;
  else
    seg = max_len / 8;
  SegmentPlan plan;
  plan.seg = static_cast<int>(seg);
  plan.hop = std::max(1, plan.seg / std::max(1, hoplen_fenmu));
  return plan;
}

std::vector<long> shot_window_starts(FrameSpan shot, int seg, int hop) {
  if (shot.length() <= seg) return {shot.begin};
  std::vector<long> starts;
  for (long s = shot.begin; s + seg <= shot.end; s += hop) starts.push_back(s);
  if (starts.back() + seg < shot.end) starts.push_back(shot.end - seg);
  return starts;
}

double frame_start_time(long frame, const Config& cfg) {
  const double shift = cfg.eval.frame_times == "centre" ? 0.5 : 0.0;
  return std::max(0.0, (double(frame) - shift) / cfg.features.frame_rate());
}

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

namespace detail {

void release_rows(const NpyMap& map, size_t row_begin, size_t row_end) {
  if (row_end <= row_begin) return;
  static const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const size_t cols = map.cols();
  uintptr_t a = reinterpret_cast<uintptr_t>(map.data() + row_begin * cols);
  uintptr_t b = reinterpret_cast<uintptr_t>(map.data() + row_end * cols);
  // The page holding row_begin goes too (its earlier rows were released before: callers stream
  // forward); the page holding row_end stays, rows after it are still to be read.
  a = a / page * page;
  b = b / page * page;
  // Read-only file pages: dropping them only means a later read faults them in again.
  if (b > a) ::madvise(reinterpret_cast<void*>(a), b - a, MADV_DONTNEED);
}

double squared_distance(const float* a, const float* b, int d) {
  double s = 0;
  for (int i = 0; i < d; ++i) s += double(a[i] - b[i]) * double(a[i] - b[i]);
  return s;
}

double mean_smallest(std::vector<double>& d, int k) {
  const size_t kk = std::min(d.size(), size_t(std::max(1, k)));
  std::partial_sort(d.begin(), d.begin() + kk, d.end());
  double s = 0;
  for (size_t j = 0; j < kk; ++j) s += d[j];
  return s / double(kk);
}

void file_normalisation(const NpyMap& map, const std::string& mode, std::vector<float>& mean,
                        std::vector<float>& inv_std) {
  mean.clear();
  inv_std.clear();
  if (mode == "train") return;
  if (mode != "file_band") fail("eval.normalise: unknown mode '", mode, "' (train | file_band)");
  const size_t n = map.rows(), M = map.cols();
  if (n == 0 || M == 0) return;
  std::vector<double> sum(M, 0.0), sumsq(M, 0.0);
  constexpr size_t kChunk = 4096;  // rows touched between page releases
  for (size_t c0 = 0; c0 < n; c0 += kChunk) {
    const size_t c1 = std::min(n, c0 + kChunk);
    for (size_t t = c0; t < c1; ++t) {
      const float* x = map.data() + t * M;
      for (size_t m = 0; m < M; ++m) {
        sum[m] += x[m];
        sumsq[m] += double(x[m]) * x[m];
      }
    }
    release_rows(map, c0, c1);
  }
  mean.resize(M);
  inv_std.resize(M);
  for (size_t m = 0; m < M; ++m) {
    const double mu = sum[m] / double(n);
    const double sd = std::sqrt(std::max(0.0, sumsq[m] / double(n) - mu * mu));
    mean[m] = static_cast<float>(mu);
    inv_std[m] = sd > 1e-6 ? static_cast<float>(1.0 / sd) : 1.0f;  // a constant band maps to 0
  }
}

}  // namespace detail
}  // namespace fsl

namespace fsl {

namespace {
constexpr const char* kScoresHeader = "fsl-file-scores v1";
}

std::string file_scores_text(const std::vector<FileScores>& files) {
  std::string out = std::string(kScoresHeader) + "\n";
  char buf[64];
  for (const auto& f : files) {
    if (f.name.find_first_of(" \t\r\n") != std::string::npos)
      fail(f.name, ": a file name with whitespace cannot be saved in the scores file");
    out += f.name;
    for (double v : {f.start_s, f.step_s, f.extent_s, f.duration_s, f.shortest_shot_s,
                     f.min_run_s, f.mean_shot_s}) {
      std::snprintf(buf, sizeof buf, " %.17g", v);
      out += buf;
    }
    out += " " + std::to_string(f.p.size()) + "\n";
    for (size_t i = 0; i < f.p.size(); ++i) {
      std::snprintf(buf, sizeof buf, i ? " %.9g" : "%.9g", double(f.p[i]));
      out += buf;
    }
    out += "\n";
  }
  return out;
}

std::vector<FileScores> parse_file_scores(const std::string& text, const std::string& origin) {
  std::istringstream in(text);
  std::string line;
  long line_no = 1;
  if (!std::getline(in, line) || line != kScoresHeader)
    fail(origin, ":1: not an fsl scores file (expected the header '", kScoresHeader, "')");
  std::vector<FileScores> files;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty()) continue;
    FileScores f;
    long n = -1;
    std::istringstream head(line);
    head >> f.name >> f.start_s >> f.step_s >> f.extent_s >> f.duration_s >> f.shortest_shot_s >>
        f.min_run_s >> f.mean_shot_s >> n;
    std::string extra;
    if (!head || n < 0 || (head >> extra))
      fail(origin, ":", line_no, ": expected 'name' and 7 numbers and a count");
    if (!std::getline(in, line))
      fail(origin, ":", line_no + 1, ": the p values of ", f.name, " are missing");
    ++line_no;
    // Each value takes at least two characters with its separator: a count beyond that is wrong
    // (and must not allocate).
    if (size_t(n) > (line.size() + 1) / 2)
      fail(origin, ":", line_no, ": ", f.name, ": expected ", n, " finite values of p");
    // strtof, not >>: a stream fails on denormal values, which p near 0 can be.
    f.p.resize(size_t(n));
    const char* cursor = line.c_str();
    for (auto& v : f.p) {
      char* end = nullptr;
      v = std::strtof(cursor, &end);
      // Finite, not [0, 1]: the floor's moving average leaves p a few 1e-16 below 0.
      if (end == cursor || !std::isfinite(v))
        fail(origin, ":", line_no, ": ", f.name, ": expected ", n, " finite values of p");
      cursor = end;
    }
    if (std::string(cursor).find_first_not_of(" \t\r") != std::string::npos)
      fail(origin, ":", line_no, ": ", f.name, ": more than ", n, " values");
    files.push_back(std::move(f));
  }
  return files;
}

}  // namespace fsl
