#include "fsl/data.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>

#include "fsl/annotations.hpp"
#include "fsl/error.hpp"
#include "fsl/features.hpp"
#include "fsl/fileio.hpp"
#include "fsl/op_math.hpp"

namespace fsl {

int seconds_to_frame(double t, double fps) {
  return std::max(0, static_cast<int>(std::floor(t * fps)));
}

int FeatureStore::add(const std::string& npy_path) {
  if (!fs::exists(npy_path))
    fail(npy_path, ": feature file missing (run `fsl_features export CONFIG`)");
  NpyMap m(npy_path);
  if (m.shape().size() != 2 || static_cast<int>(m.cols()) != n_mels_)
    fail(npy_path, ": expected features of shape (frames, ", n_mels_, ") as features.n_mels says, found ",
         m.shape().size() == 2 ? std::to_string(m.cols()) + " mels" : "another shape",
         " (re-export with `fsl_features export CONFIG --force`)");
  files_.push_back(std::move(m));
  return num_files() - 1;
}

std::vector<EventClass> build_event_classes(const std::string& dir, const std::string& feature_type,
                                            double fps, FeatureStore& store, double margin_s,
                                            double min_gap_s, bool per_file_classes) {
  std::vector<EventClass> classes;
  std::map<std::string, int> index;  // class name -> position in `classes`
  auto files = read_annotation_dir(dir);
  if (files.empty()) fail(dir, ": no annotation CSV files found");
  const int min_gap = std::max(1, static_cast<int>(std::lround(min_gap_s * fps)));
  for (const auto& af : files) {
    bool any_pos = false;
    for (const auto& [name, events] : af.pos) any_pos |= !events.empty();
    if (!any_pos) continue;
    const int file = store.add(feature_path(af.audio_path, feature_type));
    const int n_frames = store.frames(file);
    for (const auto& [name, events] : af.pos) {
      if (events.empty()) continue;
      std::string key = per_file_classes ? af.csv_path : name;
      auto [it, inserted] = index.emplace(key, static_cast<int>(classes.size()));
      if (inserted) classes.push_back({per_file_classes ? fs::path(af.csv_path).stem().string() : name, {}, {}});
      EventClass& c = classes[it->second];
      // Negatives: gaps between consecutive events of this class in this file only (the
      // Python tracker leaked the last end across files; REFERENCE §3 says reset it).
      int prev_end = -1;
      for (const auto& ev : events) {
        int s = std::min(seconds_to_frame(ev.start - margin_s, fps), n_frames);
        int e = std::min(seconds_to_frame(ev.end + margin_s, fps), n_frames);
        if (e <= s) continue;  // event past the end of the features
        c.pos.push_back({file, s, e});
        if (prev_end >= 0 && s - prev_end >= min_gap) c.neg.push_back({file, prev_end, s});
        prev_end = std::max(prev_end, e);
      }
    }
  }
  if (classes.empty()) fail(dir, ": no POS events found in any annotation file");
  return classes;
}

int EpisodeSampler::eligible_classes(const std::vector<EventClass>& classes,
                                     bool negative_contrast) {
  int n = 0;
  for (const auto& ec : classes) n += !ec.pos.empty() && (!negative_contrast || !ec.neg.empty());
  return n;
}

EpisodeSampler::EpisodeSampler(const std::vector<EventClass>& classes, int k_way, int n_shot,
                               bool negative_contrast, uint64_t seed)
    : classes_(classes), k_way_(k_way), n_shot_(n_shot), contrast_(negative_contrast), rng_(seed) {
  for (int c = 0; c < static_cast<int>(classes.size()); ++c) {
    const auto& ec = classes[c];
    if (ec.pos.empty() || (contrast_ && ec.neg.empty())) continue;
    eligible_.push_back(c);
  }
  if (static_cast<int>(eligible_.size()) < k_way)
    fail("train_param.k_way = ", k_way, " but only ", eligible_.size(), " of ", classes.size(),
         " classes have events", contrast_ ? " and negative gaps" : "",
         " (lower train_param.k_way or add data)");
}

int EpisodeSampler::batch_size() const { return k_way_ * 2 * n_shot_ * (contrast_ ? 2 : 1); }

std::vector<Draw> EpisodeSampler::next() {
  // k_way distinct classes; per class 2*n_shot events drawn with replacement (as the Python
  // sampler effectively does: a class with few events repeats them, each with its own crop).
  std::vector<int> pick = eligible_;
  for (int i = 0; i < k_way_; ++i) {
    std::uniform_int_distribution<int> d(i, static_cast<int>(pick.size()) - 1);
    std::swap(pick[i], pick[d(rng_)]);
  }
  pick.resize(k_way_);
  const int per_class = 2 * n_shot_;
  std::vector<Draw> out;
  out.reserve(batch_size());
  for (int kind = 0; kind < (contrast_ ? 2 : 1); ++kind) {
    for (int c : pick) {
      const auto& pool = kind == 0 ? classes_[c].pos : classes_[c].neg;
      std::uniform_int_distribution<size_t> d(0, pool.size() - 1);
      for (int j = 0; j < per_class; ++j) out.push_back({pool[d(rng_)], 2 * c + kind});
    }
  }
  return out;
}

std::string EpisodeSampler::rng_state() const {
  std::ostringstream os;
  os << rng_;
  return os.str();
}

void EpisodeSampler::set_rng_state(const std::string& s) {
  std::istringstream is(s);
  is >> rng_;
  if (!is) fail("corrupt sampler RNG state in checkpoint");
}

void cut_segment_rows(const float* src, int start, int len, int seg, int M, bool pad, float mean,
                      float inv_std, float* dst) {
  for (int t = 0; t < seg; ++t) {
    float* row = dst + size_t(t) * M;
    const int r = om::segment_row(t, len, seg, pad);
    if (r < 0) {
      std::fill(row, row + M, 0.0f);
      continue;
    }
    const float* s = src + size_t(start + r) * M;
    for (int m = 0; m < M; ++m) row[m] = (s[m] - mean) * inv_std;
  }
}

void gather_segments(const FeatureStore& store, const std::vector<Draw>& draws, int seg_frames,
                     const std::string& short_segment, std::mt19937_64& rng, float* out) {
  const int M = store.n_mels();
  const float mean = store.mean(), inv_std = 1.0f / store.std();
  const bool pad = short_segment == "pad";
  for (size_t b = 0; b < draws.size(); ++b) {
    const FrameRange& r = draws[b].range;
    const int len = r.length();
    int start = r.start;
    if (len > seg_frames) {
      std::uniform_int_distribution<int> d(r.start, r.end - seg_frames);
      start = d(rng);
    }
    cut_segment_rows(store.raw(r.file), start, len, seg_frames, M, pad, mean, inv_std,
                     out + b * size_t(seg_frames) * M);
  }
}

}  // namespace fsl
