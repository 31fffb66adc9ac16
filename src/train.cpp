#include "fsl/train.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>
#include <sstream>

#include "fsl/data.hpp"
#include "fsl/error.hpp"
#include "fsl/features.hpp"
#include "fsl/fileio.hpp"
#include "fsl/op_math.hpp"
#include "fsl/optim.hpp"
#include "fsl/progress.hpp"
#include "fsl/synth_episodes.hpp"
#include "fsl/train_backend.hpp"

namespace fsl {

namespace {

// One row of metrics.csv.
struct EpochMetrics {
  int epoch = 0;
  double train_loss = 0, train_acc = 0, val_loss = NAN, val_acc = NAN, lr = 0, seconds = 0;
};

const char kMetricsHeader[] = "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds";

std::string metrics_csv(const std::vector<EpochMetrics>& rows) {
  std::ostringstream os;
  os << kMetricsHeader << "\n";
  os.precision(6);
  for (const auto& r : rows)
    os << r.epoch << "," << r.train_loss << "," << r.train_acc << "," << r.val_loss << ","
       << r.val_acc << "," << r.lr << "," << r.seconds << "\n";
  return os.str();
}

std::vector<EpochMetrics> parse_metrics(const std::string& text) {
  std::vector<EpochMetrics> rows;
  std::istringstream is(text);
  std::string line;
  std::getline(is, line);  // header
  while (std::getline(is, line)) {
    EpochMetrics r;
    if (std::sscanf(line.c_str(), "%d,%lf,%lf,%lf,%lf,%lf,%lf", &r.epoch, &r.train_loss,
                    &r.train_acc, &r.val_loss, &r.val_acc, &r.lr, &r.seconds) == 7)
      rows.push_back(r);
  }
  return rows;
}

// Everything one run needs, built once.
struct Run {
  const Config& c;
  std::string type;
  double fps;
  int seg_frames;
  FeatureStore train_store, val_store;
  std::vector<EventClass> train_classes, val_classes;
  int val_k_way = 0;
};

// Shortest text that reads back as the same double.
std::string exact(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

uint64_t mix_seed(uint64_t seed, uint64_t a, uint64_t b = 0) {
  // splitmix64 of the combined words: independent streams per (seed, epoch, purpose)
  return om::splitmix_finalise(seed * 0x9E3779B97F4A7C15ull + a * 0xBF58476D1CE4E5B9ull +
                               b * 0x94D049BB133111EBull);
}

// Mean validation loss and accuracy over `val_episodes` fixed episodes (same every epoch).
std::pair<double, double> validate(const Run& r, TrainBackend& backend, std::vector<float>& x) {
  const Config& c = r.c;
  EpisodeSampler sampler(r.val_classes, r.val_k_way, c.train_param.n_shot,
                         c.train_param.negative_train_contrast, mix_seed(c.train_param.seed, 0, 1));
  double loss = 0, acc = 0;
  const int n = c.train_param.val_episodes;
  for (int i = 0; i < n; ++i) {
    auto draws = sampler.next();
    std::vector<int> labels;
    for (auto& d : draws) labels.push_back(d.label);
    gather_segments(r.val_store, draws, r.seg_frames, c.train_param.short_segment, sampler.rng(),
                    x.data());
    auto res = backend.eval_step(x.data(), labels, r.seg_frames);
    loss += res.loss;
    acc += res.accuracy;
  }
  return {loss / n, acc / n};
}

}  // namespace

bool is_better_epoch(double acc, double loss, double best_acc, double best_loss) {
  return acc > best_acc || (acc == best_acc && loss < best_loss);
}

TrainResult train(const Config& c, const TrainOptions& opt) {
  const auto& tp = c.train_param;
  // runtime.device: cuda = the GPU or an error (before any output); auto = the CPU for training
  // (see resolve_device).
  const std::string device = resolve_device(c.runtime, Stage::training);
  TrainResult result;
  result.run_dir = c.run_dir();
  fs::create_directories(result.run_dir);
  const fs::path run_dir(result.run_dir);
  atomic_write_text(run_dir / "resolved_config.yaml", c.to_yaml());

  // ---- data ----
  const std::string type = c.features.types().front();
  const double fps = c.features.frame_rate();
  const int seg_frames = static_cast<int>(tp.seg_len * fps);
  // ---- synth_online: episodes generated in memory; no training files, no feature_stats.json.
  // The normalisation is measured on generated scenes and written to the run dir, so fsl_eval
  // can use it with path.train_dir=<run dir>. `mixed` alternates file and online episodes, both
  // normalised with the training files' statistics.
  const bool online = tp.source == "synth_online", mixed = tp.source == "mixed";
  const std::string train_dir = online ? "" : c.resolve(c.path.train_dir);
  FeatureStats stats;
  if (online) {
    stats[type] = measure_synth_stats(SynthEpisodeParams::from(c, seg_frames));
    write_feature_stats(run_dir.string(), stats);
  } else {
    if (train_dir.empty()) fail("path.train_dir is empty");
    if (!fs::is_directory(train_dir)) fail(train_dir, ": training directory does not exist (path.train_dir)");
    stats = read_feature_stats(train_dir);
  }
  // ---- end synth_online
  if (!stats.count(type))
    fail(feature_stats_path(train_dir), ": no statistics for feature type '", type,
         "' (run `fsl_features export CONFIG --split train`)");
  const float mean = static_cast<float>(stats[type].mean);
  const float stdv = static_cast<float>(stats[type].std > 0 ? stats[type].std : 1.0);
  // Stored in every checkpoint, so detection normalises as training did without the train dir.
  const std::map<std::string, std::string> normalisation = {
      {"feature_type", type}, {"feature_mean", exact(mean)}, {"feature_std", exact(stdv)}};
  Run r{c, type, fps, seg_frames,
        FeatureStore(c.features.n_mels, mean, stdv), FeatureStore(c.features.n_mels, mean, stdv),
        {}, {}, 0};
  if (!online) r.train_classes = build_event_classes(train_dir, type, fps, r.train_store);
  const std::string eval_dir = c.resolve(c.path.eval_dir);
  if (tp.val_episodes > 0 && !eval_dir.empty() && fs::is_directory(eval_dir)) {
    r.val_classes = build_event_classes(eval_dir, type, fps, r.val_store, 0.025, 0.2, true);
    r.val_k_way = std::min(tp.k_way, EpisodeSampler::eligible_classes(r.val_classes,
                                                                     tp.negative_train_contrast));
    if (r.val_k_way < 2) {
      warn(eval_dir + ": fewer than 2 usable validation files; validation is off");
      r.val_k_way = 0;
    }
  } else if (tp.val_episodes > 0) {
    warn("path.eval_dir '" + eval_dir + "' does not exist; validation is off");
  }
  std::unique_ptr<EpisodeSource> source;
  auto online_source = [&] {
    SynthEpisodeParams sp = SynthEpisodeParams::from(c, r.seg_frames);
    sp.mean = mean;
    sp.std = stdv;
    return std::make_unique<SynthEpisodeSource>(sp);
  };
  auto file_source = [&] {
    return std::make_unique<FileEpisodeSource>(r.train_store, r.train_classes, tp, r.seg_frames);
  };
  if (online)
    source = online_source();
  else if (mixed)
    source = std::make_unique<MixedEpisodeSource>(file_source(), online_source());
  else
    source = file_source();
  const int B = source->batch_size();
  const int valB = r.val_k_way > 0 ? r.val_k_way * 2 * tp.n_shot * (tp.negative_train_contrast ? 2 : 1) : 0;

  // ---- model + optimiser (encoder seeded with tp.seed, Adam at tp.lr_rate) on `device` ----
  const std::unique_ptr<TrainBackend> backend =
      make_train_backend(device, c, std::max(B, valB), r.seg_frames);
  if (r.seg_frames < backend->min_frames())
    fail("train_param.seg_len = ", tp.seg_len, " s gives ", r.seg_frames,
         " frames; the encoder needs at least ", backend->min_frames());
  StepLR sched{tp.lr_rate, tp.scheduler_step_size, tp.scheduler_gamma};

  std::vector<EpochMetrics> history;
  int start_epoch = 0, bad_epochs = 0;
  if (!tp.load_weight_from.empty() && !opt.resume) {
    backend->load(c.resolve(tp.load_weight_from), false);
    std::cerr << "fsl_train: weights loaded from " << tp.load_weight_from << "\n";
  }
  const fs::path last_path = run_dir / "last.safetensors", best_path = run_dir / "best.safetensors";
  if (opt.resume) {
    if (!fs::exists(last_path)) fail(last_path.string(), ": nothing to resume (no checkpoint)");
    auto meta = backend->load(last_path, true).metadata;
    for (const char* k : {"epoch", "best_val_acc", "best_epoch", "bad_epochs"})
      if (!meta.count(k)) fail(last_path.string(), ": not a training checkpoint (no '", k, "')");
    start_epoch = std::stoi(meta.at("epoch")) + 1;
    result.best_val_acc = std::stod(meta.at("best_val_acc"));
    // absent from checkpoints written before the tie-break: no tie then wins on loss
    if (meta.count("best_val_loss")) result.best_val_loss = std::stod(meta.at("best_val_loss"));
    result.best_epoch = std::stoi(meta.at("best_epoch"));
    bad_epochs = std::stoi(meta.at("bad_epochs"));
    history = parse_metrics(read_text(run_dir / "metrics.csv"));
    history.resize(std::min<size_t>(history.size(), start_epoch));
    std::cerr << "fsl_train: resuming " << run_dir.string() << " at epoch " << start_epoch + 1
              << "\n";
  }
  std::cerr << "fsl_train: "
            << (online ? "online synthetic"
                       : std::to_string(r.train_classes.size()) + (mixed ? " + online synthetic" : ""))
            << " training classes, "
            << r.val_classes.size() << " validation files, episodes of " << B << " x "
            << r.seg_frames << " x " << c.features.n_mels << ", " << backend->num_params()
            << " parameters on " << device << (device == "cuda" && c.runtime.tf32 ? " (TF32)" : "")
            << " -> " << run_dir.string() << "\n";

  std::vector<float> x(size_t(std::max(B, valB)) * r.seg_frames * c.features.n_mels);
  std::vector<int> labels;
  long episodes_total = 0;
  // The untrained encoder on the same validation episodes: the baseline every epoch improves on.
  if (!opt.resume && r.val_k_way > 0 && start_epoch == 0) {
    auto [vl, va] = validate(r, *backend, x);
    std::fprintf(stderr, "epoch 0 (before training): val loss %.4f acc %.3f\n", vl, va);
  }
  for (int epoch = start_epoch; epoch < tp.max_epochs; ++epoch) {
    auto t0 = std::chrono::steady_clock::now();
    const double lr = sched.lr_at(epoch);
    backend->set_lr(static_cast<float>(lr));
    // Every epoch's random stream depends only on (seed, epoch): a resumed run repeats it.
    std::mt19937_64 epoch_rng(mix_seed(tp.seed, epoch + 1));
    source->start_epoch(epoch, epoch_rng(), tp.num_episodes);
    backend->set_dropout_seed(epoch_rng());
    Progress bar("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(tp.max_epochs),
                 tp.num_episodes);
    double loss_sum = 0, acc_sum = 0;
    int done = 0;
    for (int ep = 0; ep < tp.num_episodes; ++ep) {
      if (opt.max_episodes >= 0 && episodes_total >= opt.max_episodes) break;
      source->next(x.data(), labels);
      const LossResult res = backend->train_step(x.data(), labels, r.seg_frames);
      if (!std::isfinite(res.loss))
        fail("non-finite loss at epoch ", epoch + 1, ", episode ", ep + 1,
             "; stopping. The last good checkpoint is kept: ", last_path.string());
      loss_sum += res.loss;
      acc_sum += res.accuracy;
      ++done;
      ++episodes_total;
      if (!opt.quiet) {
        char s[64];
        std::snprintf(s, sizeof s, "loss %.4f acc %.3f", loss_sum / done, acc_sum / done);
        bar.set_status(s);
        bar.advance();
      }
    }
    if (!opt.quiet) bar.finish();
    if (done == 0) break;
    EpochMetrics m;
    m.epoch = epoch + 1;
    m.train_loss = loss_sum / done;
    m.train_acc = acc_sum / done;
    m.lr = lr;
    if (r.val_k_way > 0) std::tie(m.val_loss, m.val_acc) = validate(r, *backend, x);
    m.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    history.push_back(m);
    std::fprintf(stderr,
                 "epoch %d: train loss %.4f acc %.3f | val loss %.4f acc %.3f | lr %.2e | %.0f s\n",
                 m.epoch, m.train_loss, m.train_acc, m.val_loss, m.val_acc, m.lr, m.seconds);
    // Selection metric: validation accuracy, or training accuracy when validation is off.
    const double score = r.val_k_way > 0 ? m.val_acc : m.train_acc;
    const double score_loss = r.val_k_way > 0 ? m.val_loss : m.train_loss;
    bool improved = is_better_epoch(score, score_loss, result.best_val_acc, result.best_val_loss);
    if (improved) {
      result.best_val_acc = score;
      result.best_val_loss = score_loss;
      result.best_epoch = m.epoch;
      bad_epochs = 0;
      auto meta = normalisation;
      meta["epoch"] = std::to_string(epoch);
      meta["config"] = c.to_yaml();
      backend->save(best_path, false, meta);
    } else {
      ++bad_epochs;
    }
    atomic_write_text(run_dir / "metrics.csv", metrics_csv(history));
    auto meta = normalisation;
    meta["epoch"] = std::to_string(epoch);
    meta["best_val_acc"] = exact(result.best_val_acc);
    meta["best_val_loss"] = exact(result.best_val_loss);
    meta["best_epoch"] = std::to_string(result.best_epoch);
    meta["bad_epochs"] = std::to_string(bad_epochs);
    meta["config"] = c.to_yaml();
    backend->save(last_path, true, meta);
    result.epochs_completed = m.epoch;
    result.last_train_loss = m.train_loss;
    result.last_val_loss = m.val_loss;
    result.last_val_acc = m.val_acc;
    if (bad_epochs >= tp.patience) {
      std::fprintf(stderr, "early stopping: no improvement for %d epochs (best epoch %d)\n",
                   bad_epochs, result.best_epoch);
      result.early_stopped = true;
      break;
    }
    if (opt.max_episodes >= 0 && episodes_total >= opt.max_episodes) break;
  }
  return result;
}

}  // namespace fsl
