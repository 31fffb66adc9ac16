// fsl_eval CONFIG [--checkpoint PATH] [--threshold T] [--split val|test] [--with-floor]
// [--from-scores FILE] [overrides]: fsl::evaluate (include/fsl/evaluate.hpp) from the command
// line, then the encoder-vs-floor table when --with-floor ran the floor.
#include <cstdio>

#include "fsl/cli.hpp"
#include "fsl/evaluate.hpp"

namespace {

// Per subset and overall: the trained encoder's F beside the no-training floor's.
void print_comparison(const fsl::Scores& enc, const fsl::Scores& floor) {
  std::printf("\n%-10s %12s %12s %10s\n", "subset", "encoder F(%)", "floor F(%)", "gain");
  for (const auto& s : enc.subsets) {
    double f = -1;
    for (const auto& t : floor.subsets)
      if (t.name == s.name) f = t.fmeasure;
    std::printf("%-10s %12.3f %12.3f %+10.3f\n", s.name.c_str(), 100 * s.fmeasure, 100 * f,
                100 * (s.fmeasure - f));
  }
  std::printf("%-10s %12.3f %12.3f %+10.3f\n", "overall", 100 * enc.fmeasure, 100 * floor.fmeasure,
              100 * (enc.fmeasure - floor.fmeasure));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Few-shot detection on the validation or test split", "fsl_eval"};
  fsl::ConfigArgs args;
  fsl::EvalOptions opt;
  fsl::add_config_args(app, args);
  app.add_option("--checkpoint", opt.checkpoint,
                 "encoder checkpoint (default run_dir/best.safetensors)");
  app.add_option("--threshold", opt.threshold, "one fixed threshold (no sweep)")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--split", opt.split, "val (scored) or test (CSV only)")
      ->check(CLI::IsMember({"val", "test"}));
  app.add_flag("--with-floor", opt.with_floor,
               "also run the no-training floor (frame prototypes) on the same files and print "
               "both F-measures side by side");
  app.add_option("--from-scores", opt.from_scores,
                 "skip detection: read every file's p from a file_scores.txt that an earlier "
                 "fsl_eval wrote (run_dir/eval/), and redo only thresholds and post-processing "
                 "(eval.min_len_*, merge_gap_s, merge_overlaps, boundaries) with this config")
      ->check(CLI::ExistingFile)
      ->excludes("--with-floor")
      ->excludes("--checkpoint");

  return fsl::run_app(app, argc, argv, [&]() -> int {
    fsl::Config c;
    if (!fsl::load_config(args, c)) return 0;
    const auto r = fsl::evaluate(c, opt);
    if (r.floor) print_comparison(r.main.scores, r.floor->scores);
    return 0;
  });
}
