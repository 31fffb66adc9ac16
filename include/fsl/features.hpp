// Feature files on disk: `<stem>_<type>.npy` (frames, n_mels) next to each audio file, plus
// `feature_stats.json` (global mean/std per type over the training split) in the train dir.
// Used by fsl_features (export, check) and by training and detection (paths, stats).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "fsl/config.hpp"

namespace fsl {

// "<dir>/<stem>.wav", "logmel" -> "<dir>/<stem>_logmel.npy"
std::string feature_path(const std::string& audio_path, const std::string& type);

struct FeatureStat {
  double mean = 0, std = 1;
  long long frames = 0;  // frames the statistics were computed over
};
using FeatureStats = std::map<std::string, FeatureStat>;  // by feature type

std::string feature_stats_path(const std::string& train_dir);  // <train_dir>/feature_stats.json
// Throws Error naming the file when it is missing or corrupt.
FeatureStats read_feature_stats(const std::string& train_dir);
void write_feature_stats(const std::string& train_dir, const FeatureStats& stats);  // atomic

// Mean and (population) std per type over every `<stem>_<type>.npy` of the audio files under
// `dir` that exists and reads; accumulated in double.
FeatureStats compute_feature_stats(const std::string& dir, const std::vector<std::string>& types,
                                   int n_mels);

// A split's audio directory: "train" -> path.train_dir, "val" -> path.eval_dir, "test" ->
// path.test_dir, resolved; "" when the config leaves it empty.
std::string split_dir(const Config& c, const std::string& split);
// "all" -> {"train", "val", "test"}; a single name -> {name}; anything else is an Error.
std::vector<std::string> split_names(const std::string& split);

struct ExportSummary {
  long written = 0, skipped = 0, failed = 0;  // audio files
};

// Writes the features of every audio file of `split` (train|val|test|all) on
// runtime.num_workers threads; existing files are kept unless `force`. A file that fails is
// reported on stderr (one line naming it) and counted; the others are still written. When the
// train split is exported, feature_stats.json is (re)computed from all its feature files.
ExportSummary export_features(const Config& c, const std::string& split, bool force);

// Lists (stdout, one line each) feature files that are missing, older than their audio, or
// unreadable/truncated/of the wrong shape, and a missing or corrupt feature_stats.json in the
// train dir. Returns the number of problems.
long check_features(const Config& c, const std::string& split);

}  // namespace fsl
