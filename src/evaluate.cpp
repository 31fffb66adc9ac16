#include "fsl/evaluate.hpp"

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>

#include "fsl/annotations.hpp"
#include "fsl/detect.hpp"
#include "fsl/error.hpp"
#include "fsl/features.hpp"
#include "fsl/fileio.hpp"
#include "fsl/npy.hpp"
#include "fsl/progress.hpp"
#include "fsl/safetensors.hpp"

namespace fsl {

namespace {

// The split's annotated files as detector inputs; every feature file must already exist.
std::vector<DetectFile> detect_inputs(const Config& c, const std::string& dir,
                                      const std::string& split, double* hours) {
  const std::string type = c.features.types().front();
  std::vector<DetectFile> files;
  *hours = 0;
  for (const auto& a : read_annotation_dir(dir)) {
    if (!a.validation_layout)
      fail(a.csv_path, ": not a validation-layout CSV (Audiofilename,Starttime,Endtime,Q)");
    std::string audio = a.audio_path.empty()
                            ? fs::path(a.csv_path).replace_extension(".wav").string()
                            : a.audio_path;
    DetectFile f;
    // The metric keys files by "<csv stem>.wav", whatever the audio's extension.
    f.name = fs::path(a.csv_path).stem().string() + ".wav";
    f.feature_path = feature_path(audio, type);
    if (!fs::exists(f.feature_path))
      fail(f.feature_path, ": feature file missing; run `fsl_features export CONFIG --split ",
           split, "` first");
    f.pos = a.pos.at(a.classes.front());
    *hours += double(NpyMap(f.feature_path).rows()) / c.features.frame_rate() / 3600.0;
    files.push_back(std::move(f));
  }
  if (files.empty()) fail(dir, ": no annotation CSV found");
  return files;
}

std::unique_ptr<Embedder> make_embedder(const Config& c, std::string checkpoint) {
  if (checkpoint.empty()) checkpoint = c.eval.checkpoint;
  if (checkpoint.empty()) checkpoint = (fs::path(c.run_dir()) / "best.safetensors").string();
  if (!fs::exists(checkpoint))
    fail(checkpoint, ": checkpoint not found (train with fsl_train, or pass --checkpoint)");
  const std::string type = c.features.types().front();
  // The normalisation the encoder was trained with: stored in checkpoints written by fsl_train;
  // for other checkpoints (e.g. exported from PyTorch) the train dir's feature_stats.json.
  auto meta = read_safetensors(checkpoint).metadata;
  if (meta.count("feature_mean") && meta.count("feature_std") && meta["feature_type"] == type)
    return std::make_unique<EncoderEmbedder>(c, checkpoint, std::stod(meta["feature_mean"]),
                                             std::stod(meta["feature_std"]));
  auto stats = read_feature_stats(split_dir(c, "train"));
  if (!stats.count(type))
    fail(feature_stats_path(split_dir(c, "train")), ": no statistics for '", type,
         "'; run `fsl_features export CONFIG --split train`");
  return std::make_unique<EncoderEmbedder>(c, checkpoint, stats[type].mean, stats[type].std);
}

// One method over every file: p per file (saved as <eval_dir>/file_scores.txt).
std::vector<FileScores> detect_all(const Config& c, const std::vector<DetectFile>& inputs,
                                   double hours, Embedder* embedder, EvalRun& run) {
  std::vector<FileScores> scores;
  long skipped = 0, silent = 0;
  {
    Progress progress(embedder ? "detect" : "detect (floor)", long(inputs.size()), hours,
                      "h audio");
    for (size_t i = 0; i < inputs.size(); ++i) {
      const auto& f = inputs[i];
      auto r =
          embedder ? detect_with_embedder(f, c, *embedder, int(i)) : detect_frame_prototype(f, c);
      if (!r.warning.empty()) warn(r.warning);
      if (r.skipped)
        ++skipped;
      else if (r.scores.p.empty())
        ++silent;
      if (!r.skipped) scores.push_back(std::move(r.scores));
      progress.advance(1, double(NpyMap(f.feature_path).rows()) / c.features.frame_rate() / 3600.0);
    }
  }
  std::cerr << "detect: " << inputs.size() << " files, " << skipped << " skipped (fewer than "
            << kDetectionShots << " POS), " << silent << " without predictions\n";
  const fs::path eval_dir(run.eval_dir);
  fs::create_directories(eval_dir);
  atomic_write_text(eval_dir / "file_scores.txt", file_scores_text(scores));
  run.written.push_back((eval_dir / "file_scores.txt").string());
  return scores;
}

// Thresholds, CSVs, scores.json and the table over every file's p; fills run's best threshold
// and its scores (empty subsets on the test split).
void decide_and_score(const Config& c, const std::vector<FileScores>& scores,
                      const std::string& split, double threshold, EvalRun& run) {
  const fs::path eval_dir(run.eval_dir);
  const bool scored = split == "val";
  std::vector<double> thresholds;
  if (threshold >= 0)
    thresholds = {threshold};
  else if (c.eval.sweep && scored)
    thresholds = sweep_thresholds();
  else
    thresholds = {c.eval.threshold};
  const auto pp = PostProcess::from(c.eval);
  auto csv_path = [&](double t) {
    fs::create_directories(eval_dir / threshold_name(t));
    return eval_dir / threshold_name(t) / "Eval_out.csv";
  };
  auto write = [&](const fs::path& path, const std::string& text) {
    atomic_write_text(path, text);
    run.written.push_back(path.string());
  };
  if (!scored) {
    for (double t : thresholds) {
      auto preds = predictions_at(scores, t, pp);
      write(csv_path(t), predictions_csv(preds));
      std::cout << "wrote " << csv_path(t).string() << " (" << preds.size() << " events)\n";
    }
    run.threshold = thresholds.front();
    return;
  }
  auto results = score_thresholds(scores, thresholds, pp, split_dir(c, split));
  for (const auto& r : results) {
    write(csv_path(r.threshold), predictions_csv(r.predictions));
    write(eval_dir / threshold_name(r.threshold) / "scores.json", scores_json(r.scores));
    if (results.size() > 1)
      std::printf("threshold %s: F %.3f%% (P %.3f%%, R %.3f%%), %zu events\n",
                  threshold_name(r.threshold).c_str(), 100 * r.scores.fmeasure,
                  100 * r.scores.precision, 100 * r.scores.recall, r.predictions.size());
  }
  const auto& best = results[best_threshold(results)];
  if (results.size() > 1) std::cout << "best threshold " << threshold_name(best.threshold) << ":\n";
  std::cout << format_scores_table(best.scores);
  if (results.size() > 1)
    std::printf("best threshold: %s (F %.3f%%)\n", threshold_name(best.threshold).c_str(),
                100 * best.scores.fmeasure);
  std::fflush(stdout);
  run.threshold = best.threshold;
  run.scores = best.scores;
}

}  // namespace

EvalResult evaluate(const Config& c, const EvalOptions& opt) {
  const std::string dir = split_dir(c, opt.split);
  if (dir.empty())
    fail("split '", opt.split, "': ", opt.split == "val" ? "path.eval_dir" : "path.test_dir",
         " is not set");
  EvalResult result;
  result.main.eval_dir = (fs::path(c.run_dir()) / "eval").string();
  if (!opt.from_scores.empty()) {
    auto scores = parse_file_scores(read_text(opt.from_scores), opt.from_scores);
    decide_and_score(c, scores, opt.split, opt.threshold, result.main);
    return result;
  }
  double hours = 0;
  auto inputs = detect_inputs(c, dir, opt.split, &hours);
  std::unique_ptr<Embedder> embedder;
  if (c.eval.method == "encoder") embedder = make_embedder(c, opt.checkpoint);
  decide_and_score(c, detect_all(c, inputs, hours, embedder.get(), result.main), opt.split,
                   opt.threshold, result.main);
  if (opt.with_floor && c.eval.method == "encoder" && opt.split == "val") {
    std::cout << "\n-- no-training floor (eval.method=frame_prototype) on the same files --\n";
    EvalRun floor;
    floor.eval_dir = (fs::path(result.main.eval_dir) / "floor").string();
    decide_and_score(c, detect_all(c, inputs, hours, nullptr, floor), opt.split, opt.threshold,
                     floor);
    result.floor = std::move(floor);
  }
  return result;
}

}  // namespace fsl
