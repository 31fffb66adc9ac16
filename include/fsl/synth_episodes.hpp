// Where training episodes come from: the file-based pool (EpisodeSampler + gather_segments) or
// an endless in-memory synthetic source that draws new call classes from the domain-randomised
// parametric space every episode (`train_param.source: synth_online`).
//
// The episode contract both sources keep (what the prototypical losses expect, REFERENCE §3, §5):
// x (B, seg_frames, n_mels), normalised; labels (B); all positives first, class by class, 2*n_shot
// each with label 2c; then, with negative contrast, 2*n_shot negatives per class in the same class
// order with label 2c+1. B = k_way * 2*n_shot * (contrast ? 2 : 1).
#pragma once
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "fsl/config.hpp"
#include "fsl/data.hpp"
#include "fsl/features.hpp"
#include "fsl/frontend.hpp"
#include "fsl/synth.hpp"

namespace fsl {

class EpisodeSource {
 public:
  virtual ~EpisodeSource() = default;
  virtual int batch_size() const = 0;
  // Restarts the stream for `epoch`. `epoch_seed` is the trainer's per-epoch draw (the file
  // source seeds its sampler with it); `num_episodes` bounds the work a source may do ahead.
  virtual void start_epoch(int epoch, uint64_t epoch_seed, int num_episodes) = 0;
  // x: (batch_size, seg_frames, n_mels); labels resized to batch_size.
  virtual void next(float* x, std::vector<int>& labels) = 0;
};

// The annotated-files pool: exactly the sampler + gather the trainer always used.
class FileEpisodeSource : public EpisodeSource {
 public:
  FileEpisodeSource(const FeatureStore& store, const std::vector<EventClass>& classes,
                    const TrainConfig& tp, int seg_frames);
  int batch_size() const override { return sampler_.batch_size(); }
  void start_epoch(int epoch, uint64_t epoch_seed, int num_episodes) override;
  void next(float* x, std::vector<int>& labels) override;

 private:
  const FeatureStore& store_;
  EpisodeSampler sampler_;
  int seg_frames_;
  std::string short_segment_;
};

struct SynthEpisodeParams {
  int k_way = 10, n_shot = 5;
  bool negative_contrast = true;
  int seg_frames = 17;
  std::string short_segment = "tile";  // tile | pad, as gather_segments
  FeaturesConfig features;             // front end (sr, mels, ...) and the feature type
  uint64_t seed = 42;
  int num_workers = 2;      // generator threads
  int prefetch_factor = 2;  // episodes in flight per worker
  float mean = 0, std = 1;  // normalisation applied to the features
  // Randomisations turned off (train_param.synth_without): the ablation study's knobs.
  bool plain_classes = false, no_confuser = false, no_callers = false, no_background = false,
       no_channel = false, no_lowrate = false;

  static SynthEpisodeParams from(const Config& c, int seg_frames);
  int batch_size() const { return k_way * 2 * n_shot * (negative_contrast ? 2 : 1); }
};

// One class's acoustic scene: a short recording (background bed, bursts, chorus, same-band
// confusers and other callers, channel effects) holding instances of one new call class.
struct SynthScene {
  CallClass cls;
  int frames = 0;
  std::vector<float> features;    // (frames, n_mels), raw (not normalised)
  std::vector<FrameRange> calls;  // the class's calls, 25 ms margins, file = 0
  std::vector<FrameRange> gaps;   // >= 0.2 s with none of its calls: the negatives' pool
};

// Renders the scene of seed `seed` (same seed, same bytes). `fe` must be built from p.features.
SynthScene render_scene(const SynthEpisodeParams& p, Frontend& fe, uint64_t seed);

// Mean and std of the raw features over `scenes` scenes of a fixed seed: the normalisation of a
// pure-synthetic run (no training feature_stats.json exists).
FeatureStat measure_synth_stats(const SynthEpisodeParams& p, int scenes = 24);

// The seed of episode `index` of `epoch`: a pure function, so episodes do not depend on thread
// scheduling and --resume repeats them.
uint64_t synth_episode_seed(uint64_t seed, int epoch, long index);

// Builds one episode (k_way scenes) into x (B, seg_frames, n_mels) and labels (B), normalised
// with p.mean/p.std. Single-threaded; `fe` must be built from p.features. `classes` (optional)
// receives the k_way classes drawn, in label order.
void make_synth_episode(const SynthEpisodeParams& p, Frontend& fe, uint64_t episode_seed, float* x,
                        int* labels, std::vector<CallClass>* classes = nullptr);

// Episodes generated on p.num_workers threads ahead of the consumer (at most
// num_workers * prefetch_factor in flight), handed out in index order.
class SynthEpisodeSource : public EpisodeSource {
 public:
  explicit SynthEpisodeSource(const SynthEpisodeParams& p);
  ~SynthEpisodeSource() override;
  SynthEpisodeSource(const SynthEpisodeSource&) = delete;
  SynthEpisodeSource& operator=(const SynthEpisodeSource&) = delete;
  int batch_size() const override { return p_.batch_size(); }
  void start_epoch(int epoch, uint64_t epoch_seed, int num_episodes) override;
  void next(float* x, std::vector<int>& labels) override;
  const SynthEpisodeParams& params() const { return p_; }

 private:
  struct Pool;
  SynthEpisodeParams p_;
  std::unique_ptr<Pool> pool_;
};

// `train_param.source: mixed`: episodes alternate between the two sources, the file pool's on
// even indices of an epoch and the online generator's on odd ones (both normalised with the
// training files' statistics; see src/train.cpp). Both sources must have the same batch size.
class MixedEpisodeSource : public EpisodeSource {
 public:
  MixedEpisodeSource(std::unique_ptr<EpisodeSource> files, std::unique_ptr<EpisodeSource> online);
  int batch_size() const override { return files_->batch_size(); }
  void start_epoch(int epoch, uint64_t epoch_seed, int num_episodes) override;
  void next(float* x, std::vector<int>& labels) override;

 private:
  std::unique_ptr<EpisodeSource> files_, online_;
  long index_ = 0;  // episodes handed out this epoch
};

}  // namespace fsl
