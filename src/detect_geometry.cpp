// Where detection looks in a file's features: shots in frames, the adaptive segment plan, the
// windows over a shot, the output time of a frame; and the helpers both methods use on the
// mapped features (page release, per-file normalisation) and on embeddings (distances).
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

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
