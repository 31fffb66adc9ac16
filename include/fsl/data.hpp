// Training data: annotated events as frame ranges, the feature store (memory-mapped NPY with
// global normalisation), the seeded episode sampler and the segment gather (REFERENCE §1, §3).
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "fsl/config.hpp"
#include "fsl/npy.hpp"

namespace fsl {

// A half-open frame range [start, end) of one feature file.
struct FrameRange {
  int file = 0;
  int start = 0;
  int end = 0;
  int length() const { return end - start; }
};

// One class of the episode pool: its positive events and the gaps between them (negatives).
struct EventClass {
  std::string name;
  std::vector<FrameRange> pos;
  std::vector<FrameRange> neg;
};

// Seconds -> frame index as the Python system does it: floor(t * fps), clamped at 0.
int seconds_to_frame(double t, double fps);

// Memory-mapped feature files, normalised on read with one global mean and std.
class FeatureStore {
 public:
  FeatureStore(int n_mels, float mean, float std) : n_mels_(n_mels), mean_(mean), std_(std) {}
  // Maps `npy_path`; throws Error naming it if missing, corrupt or not (frames, n_mels).
  int add(const std::string& npy_path);
  int num_files() const { return static_cast<int>(files_.size()); }
  int frames(int file) const { return static_cast<int>(files_[file].rows()); }
  int n_mels() const { return n_mels_; }
  const float* raw(int file) const { return files_[file].data(); }
  const std::string& path(int file) const { return files_[file].path(); }
  float mean() const { return mean_; }
  float std() const { return std_; }

 private:
  int n_mels_;
  float mean_, std_;
  std::vector<NpyMap> files_;
};

// Builds the class pool of a DCASE directory: every POS event of every class (CALL -> subset)
// widened by `margin_s` on each side, and negatives = gaps >= `min_gap_s` between a class's
// consecutive events in the same file, in frames at `fps`. `feature_type` selects <stem>_<type>.npy; every feature
// file is added to `store`. `per_file_classes`: validation layout, one class per file.
std::vector<EventClass> build_event_classes(const std::string& dir, const std::string& feature_type,
                                            double fps, FeatureStore& store,
                                            double margin_s = 0.025,
                                            double min_gap_s = 0.2,
                                            bool per_file_classes = false);

// One drawn segment: where it comes from and its label.
struct Draw {
  FrameRange range;
  int label = 0;
};

// Episodes of k_way classes x 2*n_shot positives (+ one paired negative each when
// `negative_contrast`). Order: all positives (class by class), then all negatives likewise.
// Labels: positive 2c, negative 2c+1, c = the class's index in the pool.
class EpisodeSampler {
 public:
  // Classes usable in an episode: >= 1 positive, and >= 1 negative gap when `negative_contrast`.
  static int eligible_classes(const std::vector<EventClass>& classes, bool negative_contrast);
  EpisodeSampler(const std::vector<EventClass>& classes, int k_way, int n_shot,
                 bool negative_contrast, uint64_t seed);
  std::vector<Draw> next();
  int batch_size() const;
  // Exact RNG state, for --resume.
  std::string rng_state() const;
  void set_rng_state(const std::string& s);
  std::mt19937_64& rng() { return rng_; }

 private:
  const std::vector<EventClass>& classes_;
  std::vector<int> eligible_;  // classes with >= 1 positive (and >= 1 negative if contrast)
  int k_way_, n_shot_;
  bool contrast_;
  std::mt19937_64 rng_;
};

// One segment: rows of src (frames, M) from `start` (an event of `len` rows from there) into dst
// (seg, M), normalised with (x - mean) * inv_std, by om::segment_row's rule (zero rows are the
// global mean after normalisation).
void cut_segment_rows(const float* src, int start, int len, int seg, int M, bool pad, float mean,
                      float inv_std, float* dst);

// Cuts `draws` into out (B, seg_frames, n_mels), normalised. An event longer than seg_frames
// gets a random crop inside it; a shorter one is tiled ("tile") or zero-padded ("pad").
void gather_segments(const FeatureStore& store, const std::vector<Draw>& draws, int seg_frames,
                     const std::string& short_segment, std::mt19937_64& rng, float* out);

}  // namespace fsl
