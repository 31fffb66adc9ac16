// Few-shot detection over every annotated file of a split (fsl_eval's work): detect (the encoder
// or the no-training floor, per eval.method), save every file's p, then per threshold the
// events, <run_dir>/eval/<T>/Eval_out.csv and, on the validation split, scores.json and the
// metric's table. Progress and the detect summary go to stderr, the tables to stdout, in the
// order they happen.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "fsl/config.hpp"
#include "fsl/metric.hpp"

namespace fsl {

struct EvalOptions {
  std::string checkpoint;     // empty: eval.checkpoint, else run_dir/best.safetensors
  std::string split = "val";  // val (scored) | test (CSV only)
  double threshold = -1;      // >= 0: this one threshold, no sweep
  bool with_floor = false;    // also the floor on the same files (encoder method, val split only)
  std::string from_scores;    // a file_scores.txt: no detection, only thresholds + post-processing
};

// One method's pass over the split.
struct EvalRun {
  std::string eval_dir;              // its outputs: file_scores.txt, <threshold>/...
  double threshold = -1;             // the best threshold (the only one when not sweeping)
  Scores scores;                     // at that threshold: overall and per subset (empty on test)
  std::vector<std::string> written;  // every file written, in order
};

struct EvalResult {
  EvalRun main;                  // eval.method's run
  std::optional<EvalRun> floor;  // with_floor on the validation split with eval.method=encoder
};

// Runs detection and scoring per `c` and `opt`; throws Error (naming the key, file or flag) on a
// missing split dir, feature file or checkpoint, or a checkpoint or scores file it cannot read.
EvalResult evaluate(const Config& c, const EvalOptions& opt = {});

}  // namespace fsl
