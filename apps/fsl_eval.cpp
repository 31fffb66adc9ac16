// fsl_eval CONFIG [--checkpoint PATH] [--threshold T] [--split val|test] [overrides]
// Few-shot detection over every annotated file of a split, then <run_dir>/eval/<T>/Eval_out.csv
// (+ scores.json and the metric's table on the validation split) per threshold.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>

#include "fsl/annotations.hpp"
#include "fsl/cli.hpp"
#include "fsl/detect.hpp"
#include "fsl/error.hpp"
#include "fsl/features.hpp"
#include "fsl/fileio.hpp"
#include "fsl/metric.hpp"
#include "fsl/npy.hpp"
#include "fsl/progress.hpp"
#include "fsl/safetensors.hpp"

namespace fs = std::filesystem;

namespace {

// The split's annotated files as detector inputs; every feature file must already exist.
std::vector<fsl::DetectFile> detect_inputs(const fsl::Config& c, const std::string& dir,
                                           const std::string& split, double* hours) {
  const std::string type = c.features.types().front();
  std::vector<fsl::DetectFile> files;
  *hours = 0;
  for (const auto& a : fsl::read_annotation_dir(dir)) {
    if (!a.validation_layout)
      fsl::fail(a.csv_path, ": not a validation-layout CSV (Audiofilename,Starttime,Endtime,Q)");
    std::string audio = a.audio_path.empty()
                            ? fs::path(a.csv_path).replace_extension(".wav").string()
                            : a.audio_path;
    fsl::DetectFile f;
    // The metric keys files by "<csv stem>.wav", whatever the audio's extension.
    f.name = fs::path(a.csv_path).stem().string() + ".wav";
    f.feature_path = fsl::feature_path(audio, type);
    if (!fs::exists(f.feature_path))
      fsl::fail(f.feature_path, ": feature file missing; run `fsl_features export CONFIG --split ",
                split, "` first");
    f.pos = a.pos.at(a.classes.front());
    *hours += double(fsl::NpyMap(f.feature_path).rows()) / c.features.frame_rate() / 3600.0;
    files.push_back(std::move(f));
  }
  if (files.empty()) fsl::fail(dir, ": no annotation CSV found");
  return files;
}

std::unique_ptr<fsl::Embedder> make_embedder(const fsl::Config& c, std::string checkpoint) {
  if (checkpoint.empty()) checkpoint = c.eval.checkpoint;
  if (checkpoint.empty()) checkpoint = (fs::path(c.run_dir()) / "best.safetensors").string();
  if (!fs::exists(checkpoint))
    fsl::fail(checkpoint, ": checkpoint not found (train with fsl_train, or pass --checkpoint)");
  const std::string type = c.features.types().front();
  // The normalisation the encoder was trained with: stored in checkpoints written by fsl_train;
  // for other checkpoints (e.g. exported from PyTorch) the train dir's feature_stats.json.
  auto meta = fsl::read_safetensors(checkpoint).metadata;
  if (meta.count("feature_mean") && meta.count("feature_std") && meta["feature_type"] == type)
    return std::make_unique<fsl::EncoderEmbedder>(c, checkpoint, std::stod(meta["feature_mean"]),
                                                  std::stod(meta["feature_std"]));
  auto stats = fsl::read_feature_stats(fsl::split_dir(c, "train"));
  if (!stats.count(type))
    fsl::fail(fsl::feature_stats_path(fsl::split_dir(c, "train")), ": no statistics for '", type,
              "'; run `fsl_features export CONFIG --split train`");
  return std::make_unique<fsl::EncoderEmbedder>(c, checkpoint, stats[type].mean, stats[type].std);
}


// One method over every file: p per file (saved as <eval_dir>/file_scores.txt).
std::vector<fsl::FileScores> detect_all(const fsl::Config& c,
                                        const std::vector<fsl::DetectFile>& inputs, double hours,
                                        fsl::Embedder* embedder, const fs::path& eval_dir) {
  std::vector<fsl::FileScores> scores;
  long skipped = 0, silent = 0;
  {
    fsl::Progress progress(embedder ? "detect" : "detect (floor)", long(inputs.size()), hours,
                           "h audio");
    for (size_t i = 0; i < inputs.size(); ++i) {
      const auto& f = inputs[i];
      auto r = embedder ? fsl::detect_with_embedder(f, c, *embedder, int(i))
                        : fsl::detect_frame_prototype(f, c);
      if (!r.warning.empty()) fsl::warn(r.warning);
      if (r.skipped)
        ++skipped;
      else if (r.scores.p.empty())
        ++silent;
      if (!r.skipped) scores.push_back(std::move(r.scores));
      progress.advance(
          1, double(fsl::NpyMap(f.feature_path).rows()) / c.features.frame_rate() / 3600.0);
    }
  }
  std::cerr << "detect: " << inputs.size() << " files, " << skipped << " skipped (fewer than "
            << fsl::kDetectionShots << " POS), " << silent << " without predictions\n";
  fs::create_directories(eval_dir);
  fsl::atomic_write_text(eval_dir / "file_scores.txt", fsl::file_scores_text(scores));
  return scores;
}

// Thresholds, CSVs, scores.json and the table over every file's p. Returns the best threshold's
// scores (empty subsets on the test split).
fsl::Scores decide_and_score(const fsl::Config& c, const std::vector<fsl::FileScores>& scores,
                             const std::string& split, double threshold,
                             const fs::path& eval_dir) {
  const bool scored = split == "val";
  std::vector<double> thresholds;
  if (threshold >= 0)
    thresholds = {threshold};
  else if (c.eval.sweep && scored)
    thresholds = fsl::sweep_thresholds();
  else
    thresholds = {c.eval.threshold};
  const auto pp = fsl::PostProcess::from(c.eval);
  auto csv_path = [&](double t) {
    fs::create_directories(eval_dir / fsl::threshold_name(t));
    return eval_dir / fsl::threshold_name(t) / "Eval_out.csv";
  };
  if (!scored) {
    for (double t : thresholds) {
      auto preds = fsl::predictions_at(scores, t, pp);
      fsl::atomic_write_text(csv_path(t), fsl::predictions_csv(preds));
      std::cout << "wrote " << csv_path(t).string() << " (" << preds.size() << " events)\n";
    }
    return {};
  }
  auto results = fsl::score_thresholds(scores, thresholds, pp, fsl::split_dir(c, split));
  for (const auto& r : results) {
    fsl::atomic_write_text(csv_path(r.threshold), fsl::predictions_csv(r.predictions));
    fsl::atomic_write_text(eval_dir / fsl::threshold_name(r.threshold) / "scores.json",
                           fsl::scores_json(r.scores));
    if (results.size() > 1)
      std::printf("threshold %s: F %.3f%% (P %.3f%%, R %.3f%%), %zu events\n",
                  fsl::threshold_name(r.threshold).c_str(), 100 * r.scores.fmeasure,
                  100 * r.scores.precision, 100 * r.scores.recall, r.predictions.size());
  }
  const auto& best = results[fsl::best_threshold(results)];
  if (results.size() > 1)
    std::cout << "best threshold " << fsl::threshold_name(best.threshold) << ":\n";
  std::cout << fsl::format_scores_table(best.scores);
  if (results.size() > 1)
    std::printf("best threshold: %s (F %.3f%%)\n", fsl::threshold_name(best.threshold).c_str(),
                100 * best.scores.fmeasure);
  std::fflush(stdout);
  return best.scores;
}

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
  std::printf("%-10s %12.3f %12.3f %+10.3f\n", "overall", 100 * enc.fmeasure,
              100 * floor.fmeasure, 100 * (enc.fmeasure - floor.fmeasure));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Few-shot detection on the validation or test split", "fsl_eval"};
  fsl::ConfigArgs args;
  std::string checkpoint, split = "val";
  double threshold = -1;
  bool with_floor = false;
  std::string from_scores;
  fsl::add_config_args(app, args);
  app.add_option("--checkpoint", checkpoint,
                 "encoder checkpoint (default run_dir/best.safetensors)");
  app.add_option("--threshold", threshold, "one fixed threshold (no sweep)")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--split", split, "val (scored) or test (CSV only)")
      ->check(CLI::IsMember({"val", "test"}));
  app.add_flag("--with-floor", with_floor,
               "also run the no-training floor (frame prototypes) on the same files and print "
               "both F-measures side by side");
  app.add_option("--from-scores", from_scores,
                 "skip detection: read every file's p from a file_scores.txt that an earlier "
                 "fsl_eval wrote (run_dir/eval/), and redo only thresholds and post-processing "
                 "(eval.min_len_*, merge_gap_s, merge_overlaps, boundaries) with this config")
      ->check(CLI::ExistingFile)
      ->excludes("--with-floor")
      ->excludes("--checkpoint");

  return fsl::run_app(app, argc, argv, [&]() -> int {
    fsl::Config c;
    if (!fsl::load_config(args, c)) return 0;
    const std::string dir = fsl::split_dir(c, split);
    if (dir.empty())
      fsl::fail("split '", split, "': ", split == "val" ? "path.eval_dir" : "path.test_dir",
                " is not set");
    const fs::path eval_dir = fs::path(c.run_dir()) / "eval";
    if (!from_scores.empty()) {
      auto scores = fsl::parse_file_scores(fsl::read_text(from_scores), from_scores);
      decide_and_score(c, scores, split, threshold, eval_dir);
      return 0;
    }
    double hours = 0;
    auto inputs = detect_inputs(c, dir, split, &hours);
    std::unique_ptr<fsl::Embedder> embedder;
    if (c.eval.method == "encoder") embedder = make_embedder(c, checkpoint);
    auto main_run = decide_and_score(
        c, detect_all(c, inputs, hours, embedder.get(), eval_dir), split, threshold, eval_dir);
    if (with_floor && c.eval.method == "encoder" && split == "val") {
      std::cout << "\n-- no-training floor (eval.method=frame_prototype) on the same files --\n";
      const fs::path floor_dir = eval_dir / "floor";
      auto floor_run = decide_and_score(c, detect_all(c, inputs, hours, nullptr, floor_dir),
                                        split, threshold, floor_dir);
      print_comparison(main_run, floor_run);
    }
    return 0;
  });
}
