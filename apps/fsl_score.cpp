// fsl_score: the official DCASE Task 5 F-measure of a prediction CSV against a reference dir.
//   fsl_score --ref VAL_DIR --pred events.csv [--json] [--bootstrap N [--seed S]] [--out FILE]
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "fsl/cli.hpp"
#include "fsl/fileio.hpp"
#include "fsl/metric.hpp"

int main(int argc, char** argv) {
  CLI::App app{"Official DCASE Task 5 event-based scores (per subset and overall)", "fsl_score"};
  std::string ref_dir, pred_csv, out_path;
  int bootstrap = 0;
  unsigned long long seed = 0;
  bool json = false;
  app.add_option("--ref", ref_dir, "reference dir: <SUBSET>/<file>.csv (validation layout)")
      ->required();
  app.add_option("--pred", pred_csv, "prediction CSV: Audiofilename,Starttime,Endtime")->required();
  app.add_flag("--json", json, "print the scores as JSON instead of a table");
  app.add_option("--bootstrap", bootstrap,
                 "also print a 95% interval of the overall F from N resamples of the files")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--seed", seed, "seed of the bootstrap resampling");
  app.add_option("--out", out_path, "also write the output to this file");
  return fsl::run_app(app, argc, argv, [&]() {
    auto predictions = fsl::read_predictions(pred_csv);
    fsl::Scores scores = fsl::score_predictions(ref_dir, predictions);
    std::string text = json ? fsl::scores_json(scores) : fsl::format_scores_table(scores);
    if (bootstrap > 0) {
      fsl::Interval iv = fsl::bootstrap_fmeasure(scores, bootstrap, seed);
      char buf[320];
      if (json) {  // one more member of the same JSON object
        std::snprintf(buf, sizeof buf,
                      ",\n  \"bootstrap\": {\"resamples\": %d, \"seed\": %llu, "
                      "\"fmeasure_low\": %.17g, \"fmeasure_high\": %.17g, "
                      "\"fmeasure_mean\": %.17g}\n}\n",
                      bootstrap, seed, iv.low, iv.high, iv.mean);
        text = text.substr(0, text.rfind("\n}")) + buf;
      } else {
        std::snprintf(buf, sizeof buf,
                      "overall F 95%% interval (%d resamples of the files, seed %llu): "
                      "[%.3f, %.3f] %%, mean %.3f %%\n",
                      bootstrap, seed, 100 * iv.low, 100 * iv.high, 100 * iv.mean);
        text += buf;
      }
    }
    std::cout << text;
    if (!out_path.empty()) fsl::atomic_write_text(out_path, text);
    return 0;
  });
}
