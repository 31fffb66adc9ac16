// fsl_train end to end on the tiny synthetic set: checkpoints, metrics, exact resume, errors.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "fsl/fileio.hpp"
#include "fsl/train.hpp"
#include "fsl/safetensors.hpp"
#include "testutil.hpp"

namespace {

using fsl::test::bin_path;
using fsl::test::run_command;

// One tiny data set (synthesised + exported) shared by the tests of this file.
class Train : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fsl::test::TempDir;
    std::string out;
    ASSERT_EQ(run_command(bin_path("fsl_synth").string() + " --out " + data().string() +
                              " --scale tiny --seed 3", &out), 0) << out;
    ASSERT_EQ(run_command(bin_path("fsl_features").string() + " export " + config() + " " +
                              paths(), &out), 0) << out;
  }
  static void TearDownTestSuite() { delete dir_; }
  static fsl::fs::path data() { return dir_->path / "synth"; }
  static std::string config() { return std::string(FSL_TEST_DATA) + "/../../conf/tiny.yaml"; }
  static std::string paths() {
    return "path.train_dir=" + (data() / "Training_Set").string() +
           " path.eval_dir=" + (data() / "Validation_Set").string() +
           " path.work_dir=" + (dir_->path / "runs").string();
  }
  static int train(const std::string& extra, std::string* out) {
    out->clear();
    return run_command(bin_path("fsl_train").string() + " " + config() + " " + paths() +
                           " train_param.num_episodes=3 train_param.val_episodes=2 " + extra,
                       out);
  }
  static fsl::fs::path run(const std::string& name) { return dir_->path / "runs" / name; }
  // metrics.csv without the wall-clock column.
  static std::string metrics(const std::string& name) {
    std::istringstream is(fsl::read_text(run(name) / "metrics.csv"));
    std::string line, all;
    while (std::getline(is, line)) all += line.substr(0, line.rfind(',')) + "\n";
    return all;
  }
  static fsl::test::TempDir* dir_;
};
fsl::test::TempDir* Train::dir_ = nullptr;

TEST_F(Train, WritesCheckpointsMetricsAndConfig) {
  std::string out;
  ASSERT_EQ(train("exp_name=basic", &out), 0) << out;
  for (const char* f : {"last.safetensors", "best.safetensors", "metrics.csv", "resolved_config.yaml"})
    EXPECT_TRUE(fsl::fs::exists(run("basic") / f)) << f;
  std::string m = metrics("basic");
  EXPECT_EQ(m.substr(0, m.find('\n')), "epoch,train_loss,train_acc,val_loss,val_acc,lr");
  EXPECT_EQ(std::count(m.begin(), m.end(), '\n'), 3);  // header + 2 epochs
  // no temporary files left behind
  for (auto& e : fsl::fs::directory_iterator(run("basic")))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
}

TEST_F(Train, ResumedRunEqualsUninterruptedRun) {
  std::string out;
  ASSERT_EQ(train("exp_name=straight train_param.max_epochs=3", &out), 0) << out;
  ASSERT_EQ(train("exp_name=split train_param.max_epochs=1", &out), 0) << out;
  ASSERT_EQ(train("exp_name=split train_param.max_epochs=3 --resume", &out), 0) << out;
  EXPECT_NE(out.find("resuming"), std::string::npos) << out;
  EXPECT_EQ(metrics("straight"), metrics("split"));
  // every tensor (weights, BN statistics, Adam moments and step) identical
  auto a = fsl::read_safetensors(run("straight") / "last.safetensors");
  auto b = fsl::read_safetensors(run("split") / "last.safetensors");
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (const auto& [name, t] : a.tensors) {
    ASSERT_TRUE(b.tensors.count(name)) << name;
    EXPECT_TRUE(t.bytes == b.tensors.at(name).bytes) << name;
  }
}

TEST_F(Train, LoadWeightFromOwnCheckpoint) {
  std::string out;
  ASSERT_EQ(train("exp_name=base train_param.max_epochs=1", &out), 0) << out;
  ASSERT_EQ(train("exp_name=warm train_param.max_epochs=1 train_param.load_weight_from=" +
                      (run("base") / "best.safetensors").string(), &out), 0) << out;
  EXPECT_NE(out.find("weights loaded"), std::string::npos) << out;
}

TEST_F(Train, CheckpointCarriesTheNormalisationForDetection) {
  std::string out;
  ASSERT_EQ(train("exp_name=norm train_param.max_epochs=1", &out), 0) << out;
  auto meta = fsl::read_safetensors(run("norm") / "best.safetensors").metadata;
  auto stats = fsl::read_text(data() / "Training_Set" / "feature_stats.json");
  ASSERT_TRUE(meta.count("feature_mean") && meta.count("feature_std")) << "no normalisation";
  EXPECT_EQ(meta["feature_type"], "logmel");
  // the same mean as feature_stats.json (to float precision)
  auto at = stats.find("\"mean\": ") + 8;
  EXPECT_NEAR(std::stod(meta["feature_mean"]), std::stod(stats.substr(at)), 1e-5);
  // fsl_eval needs no train dir with such a checkpoint
  ASSERT_EQ(run_command(bin_path("fsl_eval").string() + " " + config() + " " + paths() +
                            " path.train_dir=/nonexistent exp_name=norm", &out), 0) << out;
  EXPECT_NE(out.find("overall"), std::string::npos) << out;
}

TEST_F(Train, BadInputsGiveOneClearLine) {
  struct Case {
    std::string args, expect;
  } cases[] = {
      {"exp_name=e1 train_param.k_way=50", "train_param.k_way"},
      {"exp_name=e2 path.train_dir=/nonexistent/dir", "/nonexistent/dir"},
      {"exp_name=e3 train_param.load_weight_from=" + (dir_->path / "nope.safetensors").string(),
       "nope.safetensors"},
      {"exp_name=e4 features.n_mels=64", "n_mels"},  // features exported with 32 mels
      {"exp_name=e5 --resume", "nothing to resume"},
  };
  for (const auto& c : cases) {
    std::string out;
    EXPECT_EQ(train(c.args, &out), 1) << c.args << "\n" << out;
    EXPECT_NE(out.find("fsl_train: error: "), std::string::npos) << out;
    EXPECT_NE(out.find(c.expect), std::string::npos) << c.args << "\n" << out;
  }
  // a corrupt checkpoint and one of another architecture
  std::ofstream(dir_->path / "corrupt.safetensors") << "garbage that is not safetensors";
  std::string out;
  EXPECT_EQ(train("exp_name=e6 train_param.load_weight_from=" +
                      (dir_->path / "corrupt.safetensors").string(), &out), 1) << out;
  EXPECT_NE(out.find("corrupt.safetensors"), std::string::npos) << out;
  ASSERT_EQ(train("exp_name=v2 features.arch=v2 train_param.max_epochs=1", &out), 0) << out;
  EXPECT_EQ(train("exp_name=e7 train_param.load_weight_from=" +
                      (run("v2") / "best.safetensors").string(), &out), 1) << out;
}

TEST_F(Train, MissingFeatureStatsIsNamed) {
  fsl::test::TempDir empty;
  std::string out;
  fsl::fs::create_directories(empty.path / "S");
  std::ofstream(empty.path / "S" / "a.csv") << "Audiofilename,Starttime,Endtime,CALL\n";
  EXPECT_EQ(run_command(bin_path("fsl_train").string() + " " + config() +
                            " path.train_dir=" + empty.path.string() +
                            " path.work_dir=" + (empty.path / "runs").string(), &out), 1) << out;
  EXPECT_NE(out.find("feature_stats.json"), std::string::npos) << out;
}

}  // namespace

TEST(TrainSelection, BestEpochIsHigherAccuracyThenLowerLoss) {
  const double inf = INFINITY;
  EXPECT_TRUE(fsl::is_better_epoch(0.5, 9.0, -1, inf));     // the first epoch always
  EXPECT_TRUE(fsl::is_better_epoch(0.94, 9.0, 0.93, 1.0));  // higher accuracy wins, whatever loss
  EXPECT_FALSE(fsl::is_better_epoch(0.92, 0.1, 0.93, 1.0)); // lower accuracy loses, whatever loss
  EXPECT_TRUE(fsl::is_better_epoch(0.93, 0.9, 0.93, 1.0));  // tie: lower loss wins
  EXPECT_FALSE(fsl::is_better_epoch(0.93, 1.0, 0.93, 1.0)); // tie, same loss: keep the earlier
  EXPECT_FALSE(fsl::is_better_epoch(0.93, 1.1, 0.93, 1.0));
  EXPECT_TRUE(fsl::is_better_epoch(0.93, 5.0, 0.93, inf));  // resumed from an old checkpoint
}
