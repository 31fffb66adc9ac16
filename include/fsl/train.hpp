// The autograd-free trainer (REFERENCE §3, §6): episodes -> encoder -> prototypical loss ->
// hand-written backward -> Adam, StepLR by epoch, validation accuracy each epoch, early stopping,
// checkpoints (last + best, safetensors, atomic) and exact resume.
#pragma once
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
  double last_train_loss = 0, last_val_loss = 0, last_val_acc = 0;
  bool early_stopped = false;
  std::string run_dir;
};

// Trains per `c`; writes runs/<exp_name>/{resolved_config.yaml, metrics.csv, last.safetensors,
// best.safetensors}. Throws Error on bad data, a non-finite loss (the last good checkpoint is
// kept), or an unusable checkpoint.
TrainResult train(const Config& c, const TrainOptions& opt = {});

}  // namespace fsl
