// Online synthetic episodes: the file source's layout contract, determinism across thread counts,
// new classes per episode, positives that hold the call, and fsl_train end to end on them.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <random>
#include <sstream>

#include "fsl/error.hpp"
#include "fsl/fileio.hpp"
#include "fsl/loss.hpp"
#include "fsl/safetensors.hpp"
#include "fsl/synth_episodes.hpp"
#include "testutil.hpp"

namespace {

using fsl::test::bin_path;
using fsl::test::run_command;

fsl::SynthEpisodeParams tiny_params(int workers = 1) {
  fsl::SynthEpisodeParams p;
  p.k_way = 3;
  p.n_shot = 2;
  p.seg_frames = 17;
  p.features.n_mels = 32;
  p.seed = 7;
  p.num_workers = workers;
  p.prefetch_factor = 2;
  return p;
}

// The contract EpisodeSampler::next keeps: K blocks of 2*n_shot positives labelled 2c (distinct
// c per block), then K blocks of negatives in the same class order labelled 2c+1.
void expect_episode_layout(const std::vector<int>& labels, int K, int n_shot) {
  const int per = 2 * n_shot;
  ASSERT_EQ(labels.size(), size_t(2 * K * per));
  std::vector<int> block_label;
  for (int c = 0; c < K; ++c) {
    const int l = labels[size_t(c * per)];
    EXPECT_EQ(l % 2, 0) << "block " << c;
    for (int j = 0; j < per; ++j) {
      EXPECT_EQ(labels[size_t(c * per + j)], l);
      EXPECT_EQ(labels[size_t(K * per + c * per + j)], l + 1);
    }
    for (int prev : block_label) EXPECT_NE(prev, l);
    block_label.push_back(l);
  }
}

TEST(SynthEpisodes, LayoutMatchesFileSourceAndLossAcceptsIt) {
  auto p = tiny_params();
  // The file source on a hand-built pool: its layout is the reference.
  std::vector<fsl::EventClass> pool(5);
  for (auto& ec : pool) {
    ec.pos = {{0, 0, 20}, {0, 40, 60}};
    ec.neg = {{0, 20, 40}};
  }
  fsl::EpisodeSampler sampler(pool, p.k_way, p.n_shot, true, 1);
  std::vector<int> file_labels;
  for (auto& d : sampler.next()) file_labels.push_back(d.label);
  expect_episode_layout(file_labels, p.k_way, p.n_shot);

  fsl::Frontend fe(fsl::FrontendParams::from(p.features));
  const int B = p.batch_size(), M = p.features.n_mels;
  ASSERT_EQ(B, sampler.batch_size());
  std::vector<float> x(size_t(B) * p.seg_frames * M, NAN);
  std::vector<int> labels(size_t(B), -1);
  fsl::make_synth_episode(p, fe, 123, x.data(), labels.data());
  expect_episode_layout(labels, p.k_way, p.n_shot);
  for (float v : x) ASSERT_TRUE(std::isfinite(v));

  // The loss the trainer uses accepts the batch as it is.
  const int D = 16;
  std::mt19937 rng(3);
  std::normal_distribution<float> g;
  std::vector<float> emb(size_t(B) * D), demb(emb.size());
  for (auto& v : emb) v = g(rng);
  auto res = fsl::prototypical_loss_filter_negative(emb.data(), labels.data(), B, D, p.n_shot,
                                                    demb.data());
  EXPECT_TRUE(std::isfinite(res.loss));
  EXPECT_GT(res.loss, 0);
  // Without negative contrast: positives only.
  p.negative_contrast = false;
  std::vector<int> pos_labels(size_t(p.batch_size()));
  fsl::make_synth_episode(p, fe, 123, x.data(), pos_labels.data());
  EXPECT_TRUE(std::equal(pos_labels.begin(), pos_labels.end(), labels.begin()));
}

TEST(SynthEpisodes, SameEpisodesWithOneOrTwoWorkersAndAfterRestart) {
  auto p1 = tiny_params(1), p2 = tiny_params(2);
  fsl::SynthEpisodeSource one(p1), two(p2);
  const size_t n = size_t(p1.batch_size()) * p1.seg_frames * p1.features.n_mels;
  std::vector<float> xa(n), xb(n);
  std::vector<int> la, lb;
  std::vector<std::vector<float>> epoch1;
  one.start_epoch(1, 0, 3);
  two.start_epoch(1, 999, 3);  // the trainer's epoch draw does not matter to this source
  for (int i = 0; i < 3; ++i) {
    one.next(xa.data(), la);
    two.next(xb.data(), lb);
    EXPECT_EQ(la, lb);
    EXPECT_TRUE(xa == xb) << "episode " << i;
    epoch1.push_back(xa);
  }
  EXPECT_FALSE(epoch1[0] == epoch1[1]);
  // A restart mid-epoch (as --resume does) repeats the epoch from its first episode, and each
  // episode equals the single-threaded builder on its (seed, epoch, index) seed.
  two.start_epoch(0, 0, 3);
  two.next(xb.data(), lb);  // epoch 0: other episodes
  EXPECT_FALSE(xb == epoch1[0]);
  two.start_epoch(1, 0, 3);
  fsl::Frontend fe(fsl::FrontendParams::from(p1.features));
  std::vector<int> direct_labels(size_t(p1.batch_size()));
  for (int i = 0; i < 3; ++i) {
    two.next(xb.data(), lb);
    EXPECT_TRUE(xb == epoch1[size_t(i)]) << "episode " << i;
    fsl::make_synth_episode(p1, fe, fsl::synth_episode_seed(p1.seed, 1, i), xa.data(),
                            direct_labels.data());
    EXPECT_TRUE(xa == epoch1[size_t(i)]) << "episode " << i;
  }
  // Past the announced count the source keeps going, on the same seed sequence.
  two.next(xb.data(), lb);
  fsl::make_synth_episode(p1, fe, fsl::synth_episode_seed(p1.seed, 1, 3), xa.data(),
                          direct_labels.data());
  EXPECT_TRUE(xa == xb);
  EXPECT_EQ(lb, direct_labels);
}

TEST(SynthEpisodes, EveryEpisodeDrawsDistinctNewClasses) {
  auto p = tiny_params();
  p.k_way = 5;
  fsl::Frontend fe(fsl::FrontendParams::from(p.features));
  std::vector<float> x(size_t(p.batch_size()) * p.seg_frames * p.features.n_mels);
  std::vector<int> labels(size_t(p.batch_size()));
  std::vector<fsl::CallClass> all;
  for (int e = 0; e < 3; ++e) {
    std::vector<fsl::CallClass> classes;
    fsl::make_synth_episode(p, fe, fsl::synth_episode_seed(p.seed, 0, e), x.data(), labels.data(),
                            &classes);
    ASSERT_EQ(classes.size(), size_t(p.k_way));
    all.insert(all.end(), classes.begin(), classes.end());
  }
  for (size_t i = 0; i < all.size(); ++i)
    for (size_t j = i + 1; j < all.size(); ++j)
      EXPECT_FALSE(all[i].shape == all[j].shape && all[i].f_lo == all[j].f_lo &&
                   all[i].f_hi == all[j].f_hi && all[i].duration == all[j].duration)
          << i << " " << j;
}

// Mean raw feature over the mel bands whose centre lies inside the class's band.
double band_energy(const float* seg, int frames, const std::vector<int>& bands, int M) {
  double s = 0;
  for (int t = 0; t < frames; ++t)
    for (int m : bands) s += seg[size_t(t) * M + size_t(m)];
  return s / double(frames * bands.size());
}

TEST(SynthEpisodes, PositivesHoldTheCallsEnergyInItsBand) {
  auto p = tiny_params();
  p.k_way = 4;
  p.n_shot = 3;
  const int M = p.features.n_mels, per = 2 * p.n_shot, K = p.k_way;
  auto fp = fsl::FrontendParams::from(p.features);
  fsl::Frontend fe(fp);
  // Centre frequency of each mel band: the peak of its filter.
  auto fb = fsl::mel_filterbank(fp);
  std::vector<double> centre(static_cast<size_t>(M));
  for (int m = 0; m < M; ++m) {
    const float* row = fb.data() + size_t(m) * fp.n_bins();
    centre[size_t(m)] = double(std::max_element(row, row + fp.n_bins()) - row) * fp.sr / fp.n_fft;
  }
  std::vector<float> x(size_t(p.batch_size()) * p.seg_frames * M);
  std::vector<int> labels(size_t(p.batch_size()));
  double diff_sum = 0;
  int classes = 0, louder = 0;
  for (int e = 0; e < 6; ++e) {
    std::vector<fsl::CallClass> cls;
    fsl::make_synth_episode(p, fe, fsl::synth_episode_seed(p.seed, 2, e), x.data(), labels.data(),
                            &cls);
    for (int c = 0; c < K; ++c) {
      auto [lo, hi] = fsl::call_band(cls[size_t(c)]);
      std::vector<int> bands;
      for (int m = 0; m < M; ++m)
        if (centre[size_t(m)] >= lo && centre[size_t(m)] <= hi) bands.push_back(m);
      if (bands.empty()) continue;
      double pos = 0, neg = 0;
      for (int j = 0; j < per; ++j) {
        const size_t seg = size_t(p.seg_frames) * M;
        pos += band_energy(x.data() + size_t(c * per + j) * seg, p.seg_frames, bands, M);
        neg += band_energy(x.data() + size_t(K * per + c * per + j) * seg, p.seg_frames, bands, M);
      }
      diff_sum += (pos - neg) / per;
      louder += pos > neg;
      ++classes;
    }
  }
  ASSERT_GE(classes, 15);
  // Normalised log-mel units (std 1): positives clearly louder in the call's band on average,
  // and in most classes (faint calls and loud confusers in the gaps make some exceptions).
  EXPECT_GT(diff_sum / classes, 0.5) << "mean difference";
  EXPECT_GE(louder, int(0.8 * classes)) << louder << " of " << classes;
}

TEST(SynthEpisodes, MeasuredStatsAreFiniteAndDeterministic) {
  auto p = tiny_params();
  auto a = fsl::measure_synth_stats(p, 3), b = fsl::measure_synth_stats(p, 3);
  EXPECT_EQ(a.mean, b.mean);
  EXPECT_EQ(a.std, b.std);
  EXPECT_GT(a.std, 0.5);  // log-mel of noise and calls spans several natural-log units
  EXPECT_GT(a.frames, 3 * 200);
}

// fsl_train with source=synth_online: no training directory, validation on tiny synthetic files.
// conf/tiny.yaml, and the tiny synthetic set (seed 5) made under dir/synth with the features of
// `split` exported; `paths` are the overrides that point the apps at it (runs under dir/runs).
const std::string kTinyConfig = std::string(FSL_TEST_DATA) + "/../../conf/tiny.yaml";
void make_tiny_set(const std::filesystem::path& dir, const std::string& train_dir,
                   const std::string& split, std::string* paths) {
  std::string out;
  const std::string data = (dir / "synth").string();
  ASSERT_EQ(run_command(bin_path("fsl_synth").string() + " --out " + data + " --scale tiny --seed 5",
                        &out),
            0)
      << out;
  *paths = " path.train_dir=" + (train_dir.empty() ? data + "/Training_Set" : train_dir) +
           " path.eval_dir=" + data + "/Validation_Set path.work_dir=" + (dir / "runs").string();
  ASSERT_EQ(run_command(bin_path("fsl_features").string() + " export " + kTinyConfig +
                            " --split " + split + *paths,
                        &out),
            0)
      << out;
}

TEST(SynthEpisodes, TrainRunsEndToEndAndResumesExactly) {
  fsl::test::TempDir dir;
  std::string out, paths;
  const std::string& config = kTinyConfig;
  make_tiny_set(dir.path, (dir.path / "absent").string(), "val", &paths);
  if (HasFatalFailure()) return;
  auto train = [&](const std::string& extra) {
    return run_command(bin_path("fsl_train").string() + " " + config + paths +
                           " train_param.source=synth_online train_param.num_episodes=3"
                           " train_param.val_episodes=2 runtime.num_workers=2 " +
                           extra,
                       &out);
  };
  ASSERT_EQ(train("exp_name=straight"), 0) << out;
  ASSERT_EQ(train("exp_name=split train_param.max_epochs=1"), 0) << out;
  ASSERT_EQ(train("exp_name=split --resume"), 0) << out;
  const auto runs = dir.path / "runs";
  auto metrics = [&](const std::string& name) {  // without the wall-clock column
    std::istringstream is(fsl::read_text(runs / name / "metrics.csv"));
    std::string line, all;
    while (std::getline(is, line)) all += line.substr(0, line.rfind(',')) + "\n";
    return all;
  };
  const std::string m = metrics("straight");
  EXPECT_EQ(std::count(m.begin(), m.end(), '\n'), 3) << m;  // header + 2 epochs
  EXPECT_EQ(m.find("nan"), std::string::npos) << m;         // validation ran
  EXPECT_EQ(m, metrics("split"));
  auto a = fsl::read_safetensors(runs / "straight" / "last.safetensors");
  auto b = fsl::read_safetensors(runs / "split" / "last.safetensors");
  for (const auto& [name, t] : a.tensors) EXPECT_TRUE(t.bytes == b.tensors.at(name).bytes) << name;
  // The normalisation used is written where fsl_eval looks for it (path.train_dir=<run dir>).
  auto stats = fsl::read_feature_stats((runs / "straight").string());
  ASSERT_TRUE(stats.count("logmel"));
  EXPECT_GT(stats["logmel"].std, 0);
}

// `train_param.source: mixed`: the file source on even episodes, the online one on odd ones,
// each told its share of the epoch; sources of different batch sizes are refused.
class TaggedSource : public fsl::EpisodeSource {
 public:
  TaggedSource(int tag, int batch) : tag_(tag), batch_(batch) {}
  int batch_size() const override { return batch_; }
  void start_epoch(int epoch, uint64_t, int num_episodes) override {
    announced.push_back({epoch, num_episodes});
    count_ = 0;
  }
  void next(float* x, std::vector<int>& labels) override {
    x[0] = float(tag_);
    x[1] = float(count_++);
    labels.assign(size_t(batch_), tag_);
  }
  std::vector<std::pair<int, int>> announced;  // (epoch, num_episodes) per start_epoch

 private:
  int tag_, batch_, count_ = 0;
};

TEST(SynthEpisodes, MixedSourceAlternatesFilesAndOnline) {
  auto files = std::make_unique<TaggedSource>(1, 4), online = std::make_unique<TaggedSource>(2, 4);
  TaggedSource *f = files.get(), *o = online.get();
  fsl::MixedEpisodeSource mixed(std::move(files), std::move(online));
  EXPECT_EQ(mixed.batch_size(), 4);
  std::vector<float> x(2);
  std::vector<int> labels;
  for (int epoch = 0; epoch < 2; ++epoch) {
    mixed.start_epoch(epoch, 0, 5);
    const float expect[5][2] = {{1, 0}, {2, 0}, {1, 1}, {2, 1}, {1, 2}};
    for (int i = 0; i < 5; ++i) {
      mixed.next(x.data(), labels);
      EXPECT_EQ(x[0], expect[i][0]) << "epoch " << epoch << " episode " << i;
      EXPECT_EQ(x[1], expect[i][1]) << "epoch " << epoch << " episode " << i;
      EXPECT_EQ(labels, std::vector<int>(4, int(expect[i][0])));
    }
  }
  EXPECT_EQ(f->announced, (std::vector<std::pair<int, int>>{{0, 3}, {1, 3}}));
  EXPECT_EQ(o->announced, (std::vector<std::pair<int, int>>{{0, 2}, {1, 2}}));
  EXPECT_THROW(fsl::MixedEpisodeSource(std::make_unique<TaggedSource>(1, 4),
                                       std::make_unique<TaggedSource>(2, 8)),
               fsl::Error);
}

// fsl_train on `mixed` end to end: training files (tiny synthetic set) plus online episodes.
TEST(SynthEpisodes, MixedTrainingRunsEndToEnd) {
  fsl::test::TempDir dir;
  std::string out, paths;
  const std::string data = (dir.path / "synth").string();
  make_tiny_set(dir.path, "", "all", &paths);
  if (HasFatalFailure()) return;
  ASSERT_EQ(run_command(bin_path("fsl_train").string() + " " + kTinyConfig + paths +
                            " exp_name=mixed train_param.source=mixed train_param.num_episodes=4"
                            " train_param.max_epochs=1 train_param.val_episodes=2",
                        &out),
            0)
      << out;
  EXPECT_NE(out.find("+ online synthetic"), std::string::npos) << out;
  EXPECT_TRUE(std::filesystem::exists(dir.path / "runs" / "mixed" / "best.safetensors"));
  // The checkpoint normalises as the training files do (the online half used their statistics).
  const auto stats = fsl::read_feature_stats(data + "/Training_Set");
  auto ckpt = fsl::read_safetensors(dir.path / "runs" / "mixed" / "best.safetensors");
  EXPECT_FLOAT_EQ(std::stof(ckpt.metadata.at("feature_mean")), float(stats.at("logmel").mean));
}

}  // namespace

// The ablation knobs (train_param.synth_without): parsed and validated by the config; each one
// changes the scenes it should, and with everything but the class off the negatives' pool (the
// gaps) is a steadier bed: no bursts, chorus, level swings, confusers or other callers.
TEST(SynthEpisodes, AblationKnobsParseAndChangeTheScenes) {
  auto c = fsl::Config::from_string("train_param:\n  synth_without: channel, lowrate\n", {}, "t.yaml");
  EXPECT_EQ(c.train_param.synth_without_list(), (std::vector<std::string>{"channel", "lowrate"}));
  auto sp = fsl::SynthEpisodeParams::from(c, 17);
  EXPECT_TRUE(sp.no_channel && sp.no_lowrate);
  EXPECT_FALSE(sp.plain_classes || sp.no_confuser || sp.no_callers || sp.no_background);
  try {
    fsl::Config::from_string("train_param:\n  synth_without: channel,reverb\n", {}, "t.yaml");
    FAIL() << "no error";
  } catch (const fsl::Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("train_param.synth_without"), std::string::npos) << what;
    EXPECT_NE(what.find("reverb"), std::string::npos) << what;
  }

  auto base = tiny_params();
  fsl::Frontend fe(fsl::FrontendParams::from(base.features));
  const int M = base.features.n_mels, seeds = 8;
  // Spread over time of the gap frames' mean log-mel: how unsteady the negatives' pool is.
  auto gap_spread = [&](const fsl::SynthScene& s) {
    double sum = 0, sum_sq = 0;
    long n = 0;
    for (const auto& g : s.gaps)
      for (int t = g.start; t < g.end; ++t) {
        double e = 0;
        for (int m = 0; m < M; ++m) e += s.features[size_t(t) * M + m];
        e /= M;
        sum += e;
        sum_sq += e * e;
        ++n;
      }
    const double mean = sum / double(n);
    return std::sqrt(std::max(0.0, sum_sq / double(n) - mean * mean));
  };
  std::vector<fsl::SynthScene> on;
  double spread_on = 0;
  for (int i = 0; i < seeds; ++i) {
    on.push_back(fsl::render_scene(base, fe, 1000 + uint64_t(i)));
    spread_on += gap_spread(on.back());
  }
  const std::vector<bool fsl::SynthEpisodeParams::*> knobs = {
      &fsl::SynthEpisodeParams::plain_classes, &fsl::SynthEpisodeParams::no_confuser,
      &fsl::SynthEpisodeParams::no_callers,    &fsl::SynthEpisodeParams::no_background,
      &fsl::SynthEpisodeParams::no_channel,    &fsl::SynthEpisodeParams::no_lowrate};
  for (size_t k = 0; k < knobs.size(); ++k) {
    auto p = base;
    p.*knobs[k] = true;
    int changed = 0;
    for (int i = 0; i < seeds; ++i) {
      auto s = fsl::render_scene(p, fe, 1000 + uint64_t(i));
      EXPECT_FALSE(s.calls.empty() || s.gaps.empty()) << "knob " << k << " seed " << i;
      changed += s.features != on[size_t(i)].features;
    }
    EXPECT_GT(changed, 0) << "knob " << k << " changed no scene";
  }
  auto steady = base;
  steady.no_confuser = steady.no_callers = steady.no_background = steady.no_channel = true;
  double spread_off = 0;
  for (int i = 0; i < seeds; ++i)
    spread_off += gap_spread(fsl::render_scene(steady, fe, 1000 + uint64_t(i)));
  EXPECT_LT(spread_off, 0.7 * spread_on) << spread_off / seeds << " vs " << spread_on / seeds;
}
