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

// The data one run reads, built once. Not movable in practice: the episode sources hold
// references into the stores and class lists.
struct Run {
  Run(const Config& c, int seg_frames, float mean, float stdv)
      : c(c),
        seg_frames(seg_frames),
        train_store(c.features.n_mels, mean, stdv),
        val_store(c.features.n_mels, mean, stdv) {}
  const Config& c;
  int seg_frames;
  FeatureStore train_store, val_store;
  std::vector<EventClass> train_classes, val_classes;
  int val_k_way = 0;
};

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

// train()'s steps and the state they pass on: setup (data, episodes, backend, warm start),
// resume, the start line, one epoch, its checkpoint. Each step's side effects (files, stderr
// lines, random draws) happen in the order the steps are called.
class Trainer {
 public:
  Trainer(const Config& c, const TrainOptions& opt) : c_(c), tp_(c.train_param), opt_(opt) {}

  void setup();
  // Continues last.safetensors: weights, Adam, counters, metrics history.
  void resume();
  // The start line, and the untrained encoder's validation (the baseline every epoch improves
  // on) when starting afresh.
  void start();
  // Trains epoch `epoch`; false when no episode ran (opt.max_episodes already reached).
  bool run_epoch(int epoch, EpochMetrics& m);
  // Records `m`: best checkpoint when it improves, metrics.csv, last checkpoint. Returns true
  // when training stops after it (early stopping or opt.max_episodes).
  bool checkpoint(int epoch, const EpochMetrics& m);

  int start_epoch() const { return start_epoch_; }
  const TrainResult& result() const { return result_; }

 private:
  const Config& c_;
  const TrainConfig& tp_;
  const TrainOptions& opt_;
  TrainResult result_;
  std::string device_;
  fs::path run_dir_, last_path_, best_path_;
  bool online_ = false, mixed_ = false;
  std::map<std::string, std::string> normalisation_;  // written into every checkpoint
  std::unique_ptr<Run> r_;
  std::unique_ptr<EpisodeSource> source_;
  int B_ = 0, valB_ = 0;  // training and validation episode sizes
  std::unique_ptr<TrainBackend> backend_;
  StepLR sched_;
  std::vector<EpochMetrics> history_;
  int start_epoch_ = 0, bad_epochs_ = 0;
  std::vector<float> x_;  // (max(B, valB), seg_frames, n_mels): one episode
  std::vector<int> labels_;
  long episodes_total_ = 0;
};

void Trainer::setup() {
  // runtime.device: cuda = the GPU or an error (before any output); auto = the CPU for training
  // (see resolve_device).
  device_ = resolve_device(c_.runtime, Stage::training);
  result_.run_dir = c_.run_dir();
  fs::create_directories(result_.run_dir);
  run_dir_ = result_.run_dir;
  atomic_write_text(run_dir_ / "resolved_config.yaml", c_.to_yaml());

  // ---- data ----
  const std::string type = c_.features.types().front();
  const double fps = c_.features.frame_rate();
  const int seg_frames = static_cast<int>(tp_.seg_len * fps);
  // ---- synth_online: episodes generated in memory; no training files, no feature_stats.json.
  // The normalisation is measured on generated scenes and written to the run dir, so fsl_eval
  // can use it with path.train_dir=<run dir>. `mixed` alternates file and online episodes, both
  // normalised with the training files' statistics.
  online_ = tp_.source == "synth_online";
  mixed_ = tp_.source == "mixed";
  const std::string train_dir = online_ ? "" : c_.resolve(c_.path.train_dir);
  FeatureStats stats;
  if (online_) {
    stats[type] = measure_synth_stats(SynthEpisodeParams::from(c_, seg_frames));
    write_feature_stats(run_dir_.string(), stats);
  } else {
    if (train_dir.empty()) fail("path.train_dir is empty");
    if (!fs::is_directory(train_dir))
      fail(train_dir, ": training directory does not exist (path.train_dir)");
    stats = read_feature_stats(train_dir);
  }
  // ---- end synth_online
  if (!stats.count(type))
    fail(feature_stats_path(train_dir), ": no statistics for feature type '", type,
         "' (run `fsl_features export CONFIG --split train`)");
  const float mean = static_cast<float>(stats[type].mean);
  const float stdv = static_cast<float>(stats[type].std > 0 ? stats[type].std : 1.0);
  // Stored in every checkpoint, so detection normalises as training did without the train dir.
  normalisation_ = {
      {"feature_type", type}, {"feature_mean", exact(mean)}, {"feature_std", exact(stdv)}};
  r_ = std::make_unique<Run>(c_, seg_frames, mean, stdv);
  Run& r = *r_;
  if (!online_) r.train_classes = build_event_classes(train_dir, type, fps, r.train_store);
  const std::string eval_dir = c_.resolve(c_.path.eval_dir);
  if (tp_.val_episodes > 0 && !eval_dir.empty() && fs::is_directory(eval_dir)) {
    r.val_classes = build_event_classes(eval_dir, type, fps, r.val_store, 0.025, 0.2, true);
    r.val_k_way = std::min(
        tp_.k_way, EpisodeSampler::eligible_classes(r.val_classes, tp_.negative_train_contrast));
    if (r.val_k_way < 2) {
      warn(eval_dir + ": fewer than 2 usable validation files; validation is off");
      r.val_k_way = 0;
    }
  } else if (tp_.val_episodes > 0) {
    warn("path.eval_dir '" + eval_dir + "' does not exist; validation is off");
  }
  auto online_source = [&] {
    SynthEpisodeParams sp = SynthEpisodeParams::from(c_, r.seg_frames);
    sp.mean = mean;
    sp.std = stdv;
    return std::make_unique<SynthEpisodeSource>(sp);
  };
  auto file_source = [&] {
    return std::make_unique<FileEpisodeSource>(r.train_store, r.train_classes, tp_, r.seg_frames);
  };
  if (online_)
    source_ = online_source();
  else if (mixed_)
    source_ = std::make_unique<MixedEpisodeSource>(file_source(), online_source());
  else
    source_ = file_source();
  B_ = source_->batch_size();
  valB_ =
      r.val_k_way > 0 ? r.val_k_way * 2 * tp_.n_shot * (tp_.negative_train_contrast ? 2 : 1) : 0;

  // ---- model + optimiser (encoder seeded with tp.seed, Adam at tp.lr_rate) on `device` ----
  backend_ = make_train_backend(device_, c_, std::max(B_, valB_), r.seg_frames);
  if (r.seg_frames < backend_->min_frames())
    fail("train_param.seg_len = ", tp_.seg_len, " s gives ", r.seg_frames,
         " frames; the encoder needs at least ", backend_->min_frames());
  sched_ = StepLR{tp_.lr_rate, tp_.scheduler_step_size, tp_.scheduler_gamma};

  if (!tp_.load_weight_from.empty() && !opt_.resume) {
    backend_->load(c_.resolve(tp_.load_weight_from), false);
    std::cerr << "fsl_train: weights loaded from " << tp_.load_weight_from << "\n";
  }
  last_path_ = run_dir_ / "last.safetensors";
  best_path_ = run_dir_ / "best.safetensors";
}

void Trainer::resume() {
  if (!fs::exists(last_path_)) fail(last_path_.string(), ": nothing to resume (no checkpoint)");
  auto meta = backend_->load(last_path_, true).metadata;
  for (const char* k : {"epoch", "best_val_acc", "best_epoch", "bad_epochs"})
    if (!meta.count(k)) fail(last_path_.string(), ": not a training checkpoint (no '", k, "')");
  start_epoch_ = std::stoi(meta.at("epoch")) + 1;
  result_.best_val_acc = std::stod(meta.at("best_val_acc"));
  // absent from checkpoints written before the tie-break: no tie then wins on loss
  if (meta.count("best_val_loss")) result_.best_val_loss = std::stod(meta.at("best_val_loss"));
  result_.best_epoch = std::stoi(meta.at("best_epoch"));
  bad_epochs_ = std::stoi(meta.at("bad_epochs"));
  history_ = parse_metrics(read_text(run_dir_ / "metrics.csv"));
  history_.resize(std::min<size_t>(history_.size(), start_epoch_));
  std::cerr << "fsl_train: resuming " << run_dir_.string() << " at epoch " << start_epoch_ + 1
            << "\n";
}

void Trainer::start() {
  const Run& r = *r_;
  std::cerr << "fsl_train: "
            << (online_ ? "online synthetic"
                        : std::to_string(r.train_classes.size()) +
                              (mixed_ ? " + online synthetic" : ""))
            << " training classes, " << r.val_classes.size() << " validation files, episodes of "
            << B_ << " x " << r.seg_frames << " x " << c_.features.n_mels << ", "
            << backend_->num_params() << " parameters on " << device_
            << (device_ == "cuda" && c_.runtime.tf32 ? " (TF32)" : "") << " -> "
            << run_dir_.string() << "\n";
  x_.resize(size_t(std::max(B_, valB_)) * r.seg_frames * c_.features.n_mels);
  if (!opt_.resume && r.val_k_way > 0 && start_epoch_ == 0) {
    auto [vl, va] = validate(r, *backend_, x_);
    std::fprintf(stderr, "epoch 0 (before training): val loss %.4f acc %.3f\n", vl, va);
  }
}

bool Trainer::run_epoch(int epoch, EpochMetrics& m) {
  const Run& r = *r_;
  auto t0 = std::chrono::steady_clock::now();
  const double lr = sched_.lr_at(epoch);
  backend_->set_lr(static_cast<float>(lr));
  // Every epoch's random stream depends only on (seed, epoch): a resumed run repeats it.
  std::mt19937_64 epoch_rng(mix_seed(tp_.seed, epoch + 1));
  source_->start_epoch(epoch, epoch_rng(), tp_.num_episodes);
  backend_->set_dropout_seed(epoch_rng());
  Progress bar("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(tp_.max_epochs),
               tp_.num_episodes);
  double loss_sum = 0, acc_sum = 0;
  int done = 0;
  for (int ep = 0; ep < tp_.num_episodes; ++ep) {
    if (opt_.max_episodes >= 0 && episodes_total_ >= opt_.max_episodes) break;
    source_->next(x_.data(), labels_);
    const LossResult res = backend_->train_step(x_.data(), labels_, r.seg_frames);
    if (!std::isfinite(res.loss))
      fail("non-finite loss at epoch ", epoch + 1, ", episode ", ep + 1,
           "; stopping. The last good checkpoint is kept: ", last_path_.string());
    loss_sum += res.loss;
    acc_sum += res.accuracy;
    ++done;
    ++episodes_total_;
    if (!opt_.quiet) {
      char s[64];
      std::snprintf(s, sizeof s, "loss %.4f acc %.3f", loss_sum / done, acc_sum / done);
      bar.set_status(s);
      bar.advance();
    }
  }
  if (!opt_.quiet) bar.finish();
  if (done == 0) return false;
  m.epoch = epoch + 1;
  m.train_loss = loss_sum / done;
  m.train_acc = acc_sum / done;
  m.lr = lr;
  if (r.val_k_way > 0) std::tie(m.val_loss, m.val_acc) = validate(r, *backend_, x_);
  m.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr,
               "epoch %d: train loss %.4f acc %.3f | val loss %.4f acc %.3f | lr %.2e | %.0f s\n",
               m.epoch, m.train_loss, m.train_acc, m.val_loss, m.val_acc, m.lr, m.seconds);
  return true;
}

bool Trainer::checkpoint(int epoch, const EpochMetrics& m) {
  history_.push_back(m);
  // Selection metric: validation accuracy, or training accuracy when validation is off.
  const bool validated = r_->val_k_way > 0;
  const double score = validated ? m.val_acc : m.train_acc;
  const double score_loss = validated ? m.val_loss : m.train_loss;
  if (is_better_epoch(score, score_loss, result_.best_val_acc, result_.best_val_loss)) {
    result_.best_val_acc = score;
    result_.best_val_loss = score_loss;
    result_.best_epoch = m.epoch;
    bad_epochs_ = 0;
    auto meta = normalisation_;
    meta["epoch"] = std::to_string(epoch);
    meta["config"] = c_.to_yaml();
    backend_->save(best_path_, false, meta);
  } else {
    ++bad_epochs_;
  }
  atomic_write_text(run_dir_ / "metrics.csv", metrics_csv(history_));
  auto meta = normalisation_;
  meta["epoch"] = std::to_string(epoch);
  meta["best_val_acc"] = exact(result_.best_val_acc);
  meta["best_val_loss"] = exact(result_.best_val_loss);
  meta["best_epoch"] = std::to_string(result_.best_epoch);
  meta["bad_epochs"] = std::to_string(bad_epochs_);
  meta["config"] = c_.to_yaml();
  backend_->save(last_path_, true, meta);
  result_.epochs_completed = m.epoch;
  result_.last_train_loss = m.train_loss;
  result_.last_val_loss = m.val_loss;
  result_.last_val_acc = m.val_acc;
  if (bad_epochs_ >= tp_.patience) {
    std::fprintf(stderr, "early stopping: no improvement for %d epochs (best epoch %d)\n",
                 bad_epochs_, result_.best_epoch);
    result_.early_stopped = true;
    return true;
  }
  return opt_.max_episodes >= 0 && episodes_total_ >= opt_.max_episodes;
}

}  // namespace

bool is_better_epoch(double acc, double loss, double best_acc, double best_loss) {
  return acc > best_acc || (acc == best_acc && loss < best_loss);
}

TrainResult train(const Config& c, const TrainOptions& opt) {
  Trainer t(c, opt);
  t.setup();
  if (opt.resume) t.resume();
  t.start();
  for (int epoch = t.start_epoch(); epoch < c.train_param.max_epochs; ++epoch) {
    EpochMetrics m;
    if (!t.run_epoch(epoch, m)) break;
    if (t.checkpoint(epoch, m)) break;
  }
  return t.result();
}

}  // namespace fsl
