// The autograd-free trainer (REFERENCE §3, §6): episodes -> encoder -> prototypical loss ->
// hand-written backward -> Adam, StepLR by epoch, validation accuracy each epoch, early stopping,
// checkpoints (last + best, safetensors, atomic) and exact resume.
#pragma once
#include <cmath>
#include <string>

#include "fsl/config.hpp"

namespace fsl {

struct TrainOptions {
  bool resume = false;     // continue runs/<exp_name>/last.safetensors exactly
  bool quiet = false;      // no progress bar (tests)
  int max_episodes = -1;   // stop after this many episodes in total (tests, benchmarks); -1 = off
};

struct TrainResult {
  int epochs_completed = 0;
  int best_epoch = -1;
  double best_val_acc = -1;
  double best_val_loss = INFINITY;  // the tie-breaker of best_val_acc
  double last_train_loss = 0, last_val_loss = 0, last_val_acc = 0;
  bool early_stopped = false;
  std::string run_dir;
};

// Whether an epoch with selection accuracy `acc` and loss `loss` replaces the best so far: a
// strictly higher accuracy (the Python system's rule), or the same accuracy with a strictly lower
// loss. Validation accuracy over a few episodes is coarse (the demo's is 0.932 after every epoch),
// so without the tie-break the first epoch stays "best" however much the loss falls after it.
bool is_better_epoch(double acc, double loss, double best_acc, double best_loss);

// Trains per `c`; writes runs/<exp_name>/{resolved_config.yaml, metrics.csv, last.safetensors,
// best.safetensors}. Throws Error on bad data, a non-finite loss (the last good checkpoint is
// kept), or an unusable checkpoint.
TrainResult train(const Config& c, const TrainOptions& opt = {});

}  // namespace fsl
