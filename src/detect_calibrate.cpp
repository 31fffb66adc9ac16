// Per-file threshold calibration from the file's own labelled audio (eval.calibrate = shots): the
// score p of each shot window against the other shots (leave one shot out) and of each drawn
// negative window against the other, non-overlapping negative windows tell where this file's
// positives and negatives fall on the p scale; the file's threshold is the midpoint of their means.
#include <algorithm>
#include <cmath>

#include "fsl/detect.hpp"
#include "fsl/error.hpp"

namespace fsl::detail {
namespace {

// The mean of the rows `use` of pos (P, D): a positive prototype. Empty when pos_k > 0, where
// positive_distance does not read it.
std::vector<double> mean_of(const std::vector<float>& pos, const std::vector<size_t>& use, int D,
                            int pos_k) {
  if (pos_k > 0) return {};
  std::vector<double> mean(size_t(D), 0.0);
  for (size_t r : use)
    for (int d = 0; d < D; ++d) mean[size_t(d)] += pos[r * D + size_t(d)];
  for (auto& m : mean) m /= double(use.size());
  return mean;
}

// d_pos of q against the rows `use` of pos: distance to their mean `proto` (pos_k = 0) or the
// mean distance to the pos_k nearest of them.
double positive_distance(const float* q, const std::vector<float>& pos,
                         const std::vector<size_t>& use, const std::vector<double>& proto, int D,
                         int pos_k, std::vector<double>& scratch) {
  if (pos_k > 0) {
    scratch.clear();
    for (size_t r : use) scratch.push_back(squared_distance(q, pos.data() + r * D, D));
    return mean_smallest(scratch, pos_k);
  }
  double s = 0;
  for (int d = 0; d < D; ++d) {
    const double diff = q[d] - proto[size_t(d)];
    s += diff * diff;
  }
  return s;
}

double ratio(double d_pos, double d_neg) {
  return d_pos + d_neg > 0 ? d_neg / (d_pos + d_neg) : 0.5;
}

}  // namespace

double shot_calibrated_threshold(const CalibrationWindows& w, int D, int seg, int neg_k,
                                 int pos_k) {
  const size_t P = w.pos_shot.size(), Q = w.neg_start.size();
  if (w.pos_rows.size() != P * size_t(D) || w.neg_rows.size() != Q * size_t(D))
    fail("calibration: ", P, " shot windows and ", Q, " negative windows do not match the rows");
  std::vector<double> scratch;
  // Positives: each shot window against the windows of the other shots.
  double pos_sum = 0;
  long pos_n = 0;
  for (size_t i = 0; i < P; ++i) {
    std::vector<size_t> others;
    for (size_t r = 0; r < P; ++r)
      if (w.pos_shot[r] != w.pos_shot[i]) others.push_back(r);
    if (others.empty()) continue;
    const float* q = w.pos_rows.data() + i * D;
    const double d_pos = positive_distance(
        q, w.pos_rows, others, mean_of(w.pos_rows, others, D, pos_k), D, pos_k, scratch);
    scratch.clear();
    for (size_t j = 0; j < Q; ++j)
      scratch.push_back(squared_distance(q, w.neg_rows.data() + j * D, D));
    if (scratch.empty()) continue;
    pos_sum += ratio(d_pos, mean_smallest(scratch, neg_k));
    ++pos_n;
  }
  // Negatives: each drawn window against the drawn windows it does not overlap.
  std::vector<size_t> all(P);
  for (size_t r = 0; r < P; ++r) all[r] = r;
  // The prototype of every shot: once, not per negative window.
  const std::vector<double> proto_all = mean_of(w.pos_rows, all, D, pos_k);
  std::vector<double> pos_scratch;
  double neg_sum = 0;
  long neg_n = 0;
  for (size_t j = 0; j < Q && P > 0; ++j) {
    const float* q = w.neg_rows.data() + j * D;
    scratch.clear();
    for (size_t i = 0; i < Q; ++i)
      if (std::labs(w.neg_start[i] - w.neg_start[j]) >= seg)
        scratch.push_back(squared_distance(q, w.neg_rows.data() + i * D, D));
    if (scratch.empty()) continue;
    const double d_neg = mean_smallest(scratch, neg_k);
    const double d_pos = positive_distance(q, w.pos_rows, all, proto_all, D, pos_k, pos_scratch);
    neg_sum += ratio(d_pos, d_neg);
    ++neg_n;
  }
  if (pos_n == 0 || neg_n == 0) return 0.5;  // one shot only, or no separate background
  return 0.5 * (pos_sum / double(pos_n) + neg_sum / double(neg_n));
}

}  // namespace fsl::detail
