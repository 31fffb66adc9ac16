// fsl_train CONFIG [overrides] [--resume]: trains the prototypical encoder on the CPU or the GPU
// (runtime.device: cpu, cuda, or auto = the CPU for training; the start line names it).
#include <cstdio>
#include <iostream>

#include "fsl/cli.hpp"
#include "fsl/train.hpp"

int main(int argc, char** argv) {
  CLI::App app{"Train the few-shot prototypical encoder on the training set's episodes.\n"
               "Writes runs/<exp_name>/{metrics.csv,last.safetensors,best.safetensors,"
               "resolved_config.yaml}.",
               "fsl_train"};
  fsl::ConfigArgs args;
  fsl::add_config_args(app, args);
  fsl::TrainOptions opt;
  app.add_flag("--resume", opt.resume,
               "continue runs/<exp_name>/last.safetensors exactly (optimizer, epoch, RNG)");
  app.add_option("--max-episodes", opt.max_episodes,
                 "stop after this many training episodes in total (smoke tests, benchmarks)");
  return fsl::run_app(app, argc, argv, [&] {
    fsl::Config cfg;
    if (!fsl::load_config(args, cfg)) return 0;
    auto r = fsl::train(cfg, opt);
    std::printf("trained %d epochs%s; best %s %.4f at epoch %d; checkpoints in %s\n",
                r.epochs_completed, r.early_stopped ? " (early stop)" : "",
                r.last_val_acc == r.last_val_acc ? "validation accuracy" : "training accuracy",
                r.best_val_acc, r.best_epoch, r.run_dir.c_str());
    return 0;
  });
}
