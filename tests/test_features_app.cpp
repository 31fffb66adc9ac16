// fsl_features export / check, run as the built binary on WAVs in a temporary directory.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <thread>

#include "fsl/audio.hpp"
#include "fsl/error.hpp"
#include "fsl/features.hpp"
#include "fsl/npy.hpp"
#include "testutil.hpp"

namespace fs = std::filesystem;

namespace {

// A train and a val split with a few tone WAVs; the config points at them.
struct Dataset {
  fsl::test::TempDir dir;
  std::string config;
  std::vector<std::string> train_wavs, val_wavs;

  Dataset(const std::string& types = "logmel@pcen") {
    fs::create_directories(dir / "train/A");
    fs::create_directories(dir / "val");
    for (int i = 0; i < 3; ++i) train_wavs.push_back(tone((dir / "train/A").string(), i, 44100));
    for (int i = 0; i < 2; ++i) val_wavs.push_back(tone((dir / "val").string(), 10 + i, 16000));
    config = (dir / "config.yaml").string();
    std::ofstream(config) << "features:\n  feature_types: " << types
                          << "\n  n_mels: 32\npath:\n  root_dir: " << dir.path.string()
                          << "\n  train_dir: train\n  eval_dir: val\n  test_dir: null\n"
                          << "runtime:\n  num_workers: 2\n";
  }
  static std::string tone(const std::string& d, int i, int sr) {
    std::vector<float> x(size_t(sr * (0.3 + 0.1 * i)));
    for (size_t k = 0; k < x.size(); ++k)
      x[k] = 0.5f * float(std::sin(2 * M_PI * (300.0 + 200 * i) * double(k) / sr));
    std::string p = d + "/rec" + std::to_string(i) + ".wav";
    fsl::write_wav(p, x, sr);
    return p;
  }
  int run(const std::string& args, std::string* out) const {
    return fsl::test::run_command(fsl::test::bin_path("fsl_features").string() + " " + args, out);
  }
};

bool has_temp_files(const fs::path& dir) {
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.find(".tmp") != std::string::npos || name.find("~") != std::string::npos) return true;
  }
  return false;
}

}  // namespace

TEST(FeaturesApp, ExportWritesSkipsAndForces) {
  Dataset d;
  std::string out;
  ASSERT_EQ(d.run("export " + d.config, &out), 0) << out;
  for (const auto& w : d.train_wavs) {
    for (std::string t : {"logmel", "pcen"}) {
      fsl::NpyMap m(fsl::feature_path(w, t));
      EXPECT_EQ(m.cols(), 32u);
      EXPECT_EQ(m.rows(), 1 + fsl::load_audio(w, 22050).size() / 256);
    }
  }
  EXPECT_TRUE(fs::exists(fsl::feature_path(d.val_wavs[1], "pcen")));
  EXPECT_FALSE(has_temp_files(d.dir.path));

  // Stats: population mean/std over all training logmel values, recomputed here in double.
  auto stats = fsl::read_feature_stats((d.dir / "train").string());
  ASSERT_EQ(stats.count("logmel"), 1u);
  double sum = 0, sumsq = 0;
  long long n = 0, frames = 0;
  for (const auto& w : d.train_wavs) {
    std::vector<size_t> shape;
    auto v = fsl::npy_read(fsl::feature_path(w, "logmel"), &shape);
    for (float x : v) sum += x, sumsq += double(x) * x;
    n += static_cast<long long>(v.size());
    frames += static_cast<long long>(shape[0]);
  }
  const double mean = sum / double(n);
  EXPECT_NEAR(stats["logmel"].mean, mean, 1e-9 * std::abs(mean));
  EXPECT_NEAR(stats["logmel"].std, std::sqrt(sumsq / double(n) - mean * mean), 1e-6);
  EXPECT_EQ(stats["logmel"].frames, frames);

  // Second run skips: modification times unchanged.
  const auto f0 = fsl::feature_path(d.train_wavs[0], "logmel");
  const auto t0 = fs::last_write_time(f0);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_EQ(d.run("export " + d.config, &out), 0) << out;
  EXPECT_EQ(fs::last_write_time(f0), t0);
  EXPECT_NE(out.find("0 written, 5 skipped"), std::string::npos) << out;

  ASSERT_EQ(d.run("export " + d.config + " --split train --force", &out), 0) << out;
  EXPECT_GT(fs::last_write_time(f0), t0);
  EXPECT_NE(out.find("3 written"), std::string::npos) << out;
  EXPECT_FALSE(has_temp_files(d.dir.path));
}

TEST(FeaturesApp, ExportOfOneTypeKeepsTheOtherTypesStats) {
  Dataset d("logmel");
  std::string out;
  ASSERT_EQ(d.run("export " + d.config + " --split train", &out), 0) << out;
  const auto train = (d.dir / "train").string();
  const auto logmel = fsl::read_feature_stats(train).at("logmel");
  ASSERT_EQ(d.run("export " + d.config + " --split train features.feature_types=pcen", &out), 0)
      << out;
  auto both = fsl::read_feature_stats(train);
  ASSERT_EQ(both.count("pcen"), 1u);
  ASSERT_EQ(both.count("logmel"), 1u);
  EXPECT_EQ(both["logmel"].mean, logmel.mean);
  EXPECT_EQ(both["logmel"].frames, logmel.frames);
  EXPECT_NE(both["pcen"].mean, logmel.mean);
}

TEST(FeaturesApp, CorruptWavFailsButOthersAreWritten) {
  Dataset d("logmel");
  const std::string bad = (d.dir / "train/A/broken.wav").string();
  std::ofstream(bad) << "RIFF....WAVEjunk that is not audio";
  std::string out;
  EXPECT_EQ(d.run("export " + d.config + " --split train", &out), 1) << out;
  EXPECT_NE(out.find(bad), std::string::npos) << out;
  for (const auto& w : d.train_wavs) EXPECT_TRUE(fs::exists(fsl::feature_path(w, "logmel")));
  EXPECT_FALSE(fs::exists(fsl::feature_path(bad, "logmel")));
  EXPECT_TRUE(fs::exists(d.dir / "train/feature_stats.json"));
  EXPECT_FALSE(has_temp_files(d.dir.path));
}

TEST(FeaturesApp, SplitErrors) {
  Dataset d("logmel");
  std::string out;
  // test_dir is null: named explicitly it is an error, under `all` a note.
  EXPECT_EQ(d.run("export " + d.config + " --split test", &out), 1);
  EXPECT_NE(out.find("path.test_dir"), std::string::npos) << out;
  out.clear();
  EXPECT_EQ(d.run("export " + d.config + " path.eval_dir=nowhere", &out), 1);
  EXPECT_NE(out.find("nowhere"), std::string::npos) << out;
}

TEST(FeaturesApp, CheckFindsMissingStaleAndTruncated) {
  Dataset d("logmel");
  std::string out;
  EXPECT_EQ(d.run("check " + d.config, &out), 1);
  EXPECT_NE(out.find("missing: " + fsl::feature_path(d.train_wavs[0], "logmel")), std::string::npos)
      << out;
  ASSERT_EQ(d.run("export " + d.config, &out), 0) << out;
  out.clear();
  EXPECT_EQ(d.run("check " + d.config, &out), 0) << out;

  // Stale: the audio is newer than its features. Truncated: the .npy is cut short.
  const auto stale = fsl::feature_path(d.train_wavs[1], "logmel");
  fs::last_write_time(d.train_wavs[1], fs::last_write_time(stale) + std::chrono::seconds(5));
  const auto cut = fsl::feature_path(d.val_wavs[0], "logmel");
  fs::resize_file(cut, fs::file_size(cut) - 64);
  // Wrong frame count: a valid NPY with fewer frames than the audio gives.
  const auto short_file = fsl::feature_path(d.val_wavs[1], "logmel");
  std::vector<float> few(3 * 32, 0.f);
  fsl::npy_write(short_file, few.data(), {3, 32});
  out.clear();
  EXPECT_EQ(d.run("check " + d.config, &out), 1);
  EXPECT_NE(out.find("stale: " + stale), std::string::npos) << out;
  EXPECT_NE(out.find("bad: " + cut), std::string::npos) << out;
  EXPECT_NE(out.find("bad: " + short_file), std::string::npos) << out;
  EXPECT_NE(out.find("3 problem(s)"), std::string::npos) << out;
}

TEST(FeaturesStats, MissingOrCorruptStatsNameTheFile) {
  fsl::test::TempDir dir;
  const std::string file = fsl::feature_stats_path(dir.path.string());
  try {
    fsl::read_feature_stats(dir.path.string());
    FAIL() << "no error for a missing file";
  } catch (const fsl::Error& e) {
    EXPECT_NE(std::string(e.what()).find(file), std::string::npos);
  }
  std::ofstream(file) << "{\"logmel\": {\"mean\": -3.5, \"std\": ";
  try {
    fsl::read_feature_stats(dir.path.string());
    FAIL() << "no error for a corrupt file";
  } catch (const fsl::Error& e) {
    EXPECT_NE(std::string(e.what()).find(file), std::string::npos);
  }
  fsl::write_feature_stats(dir.path.string(),
                           {{"logmel", {-3.5, 2.25, 100}}, {"pcen", {0.1, 0.2, 7}}});
  auto s = fsl::read_feature_stats(dir.path.string());
  EXPECT_EQ(s["logmel"].mean, -3.5);
  EXPECT_EQ(s["pcen"].std, 0.2);
  EXPECT_EQ(s["pcen"].frames, 7);
}
