// Faults: kill -9 during `fsl_features export` and `fsl_train`, a full disk (RLIMIT_FSIZE) while
// writing features and checkpoints, a truncated feature file. Nothing the user already has may be
// lost or corrupted, a rerun (or --resume) must finish the job, errors must say what happened.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <thread>

#include "fsl/fileio.hpp"
#include "testutil.hpp"

namespace fs = std::filesystem;
using fsl::test::bin_path;
using fsl::test::run_command;

namespace {

// Starts argv[0] (a built app) with stdout+stderr into `log`. `fsize_limit` > 0: RLIMIT_FSIZE in
// the child, with SIGXFSZ ignored, so a write past it fails with EFBIG like on a full disk.
pid_t spawn(const std::vector<std::string>& args, const fs::path& log, rlim_t fsize_limit = 0) {
  pid_t pid = ::fork();
  if (pid != 0) return pid;
  int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    ::dup2(fd, 1);
    ::dup2(fd, 2);
  }
  if (fsize_limit > 0) {
    ::signal(SIGXFSZ, SIG_IGN);
    rlimit lim{fsize_limit, fsize_limit};
    ::setrlimit(RLIMIT_FSIZE, &lim);
  }
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  ::execv(argv[0], argv.data());
  ::_exit(127);
}

// Waits for the child: its exit code, or -signal when a signal ended it.
int wait_for(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

// Polls until `ready()` (then SIGKILL, returns true) or the child exits by itself (false).
bool kill_when(pid_t pid, const std::function<bool()>& ready) {
  for (;;) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) return false;
    if (ready()) {
      ::kill(pid, SIGKILL);
      return wait_for(pid) == -SIGKILL;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

std::string file_bytes(const fs::path& p) { return fsl::read_text(p); }

// Every file under `dir` with extension `ext` -> its bytes.
std::map<std::string, std::string> snapshot(const fs::path& dir, const std::string& ext) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file() && e.path().extension() == ext) out[e.path().string()] = file_bytes(e.path());
  return out;
}

bool has_temp_files(const fs::path& dir) {
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.path().filename().string().find(".tmp.") != std::string::npos) return true;
  return false;
}

std::string config() { return std::string(FSL_TEST_DATA) + "/../../conf/tiny.yaml"; }

// A tiny synthetic data set, fresh per test (the tests damage it).
struct TinySet {
  fsl::test::TempDir dir;
  fs::path data = dir / "synth";
  TinySet() {
    std::string out;
    EXPECT_EQ(run_command(bin_path("fsl_synth").string() + " --quiet --out " + data.string() +
                              " --scale tiny --seed 5", &out), 0) << out;
  }
  std::vector<std::string> paths() const {
    return {"path.train_dir=" + (data / "Training_Set").string(),
            "path.eval_dir=" + (data / "Validation_Set").string(),
            "path.work_dir=" + (dir / "runs").string()};
  }
  std::vector<std::string> features(const std::string& cmd, std::vector<std::string> extra = {}) const {
    std::vector<std::string> a{bin_path("fsl_features").string(), cmd, config()};
    for (const auto& p : paths()) a.push_back(p);
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  std::vector<std::string> train(std::vector<std::string> extra) const {
    std::vector<std::string> a{bin_path("fsl_train").string(), config(),
                               "train_param.num_episodes=3", "train_param.val_episodes=2"};
    for (const auto& p : paths()) a.push_back(p);
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  // Runs to completion; returns the exit code, `log` gets the output.
  int run(const std::vector<std::string>& args, std::string* log, rlim_t fsize_limit = 0) const {
    fs::path lp = dir / "log.txt";
    int rc = wait_for(spawn(args, lp, fsize_limit));
    *log = file_bytes(lp);
    return rc;
  }
  // metrics.csv of a run without its wall-clock (last) column.
  std::string metrics(const std::string& exp) const {
    std::istringstream is(file_bytes(dir / "runs" / exp / "metrics.csv"));
    std::string line, all;
    while (std::getline(is, line)) all += line.substr(0, line.rfind(',')) + "\n";
    return all;
  }
};

TEST(Faults, KillDuringExportThenRerunCompletes) {
  TinySet s;
  const fs::path train = s.data / "Training_Set";
  pid_t pid = spawn(s.features("export", {"runtime.num_workers=1"}), s.dir / "killed.txt");
  bool killed = kill_when(pid, [&] { return !snapshot(train, ".npy").empty(); });
  EXPECT_TRUE(killed) << "export finished before the kill: the test proved nothing";
  std::string log;
  EXPECT_EQ(s.run(s.features("check"), &log), 1) << log;  // missing files are listed
  ASSERT_EQ(s.run(s.features("export"), &log), 0) << log;
  ASSERT_EQ(s.run(s.features("check"), &log), 0) << log;
  // The resumed export equals a clean one, byte for byte.
  auto after_rerun = snapshot(s.data, ".npy");
  auto stats = file_bytes(train / "feature_stats.json");
  ASSERT_EQ(s.run(s.features("export", {"--force"}), &log), 0) << log;
  EXPECT_EQ(snapshot(s.data, ".npy"), after_rerun);
  EXPECT_EQ(file_bytes(train / "feature_stats.json"), stats);
}

TEST(Faults, TruncatedFeatureFileIsFoundAndExportedAgain) {
  TinySet s;
  std::string log;
  ASSERT_EQ(s.run(s.features("export"), &log), 0) << log;
  auto good = snapshot(s.data, ".npy");
  ASSERT_FALSE(good.empty());
  const std::string victim = good.begin()->first;
  fs::resize_file(victim, good.begin()->second.size() / 2);
  EXPECT_EQ(s.run(s.features("check"), &log), 1) << log;
  EXPECT_NE(log.find(victim), std::string::npos) << log;
  ASSERT_EQ(s.run(s.features("export"), &log), 0) << log;  // no --force: repairs only that one
  EXPECT_NE(log.find("1 written"), std::string::npos) << log;
  EXPECT_EQ(snapshot(s.data, ".npy"), good);
  EXPECT_EQ(s.run(s.features("check"), &log), 0) << log;
}

TEST(Faults, FullDiskDuringExportKeepsPreviousFiles) {
  TinySet s;
  std::string log;
  ASSERT_EQ(s.run(s.features("export"), &log), 0) << log;
  auto npy = snapshot(s.data, ".npy");
  auto json = snapshot(s.data, ".json");
  // 4 KiB: smaller than any feature file, so every rewrite fails mid-file.
  EXPECT_EQ(s.run(s.features("export", {"--force"}), &log, 4096), 1) << log;
  EXPECT_NE(log.find("disk full"), std::string::npos) << log;
  EXPECT_NE(log.find(".npy"), std::string::npos) << log;  // names the file
  EXPECT_EQ(snapshot(s.data, ".npy"), npy);
  EXPECT_EQ(snapshot(s.data, ".json"), json);
  EXPECT_FALSE(has_temp_files(s.data));
}

// Shared by the two training tests: features exported, an uninterrupted 3-epoch reference run.
class FaultsTrain : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    set_ = new TinySet;
    std::string log;
    ASSERT_EQ(set_->run(set_->features("export"), &log), 0) << log;
    ASSERT_EQ(set_->run(set_->train({"exp_name=ref", "train_param.max_epochs=3"}), &log), 0) << log;
  }
  static void TearDownTestSuite() { delete set_; }
  static TinySet* set_;
};
TinySet* FaultsTrain::set_ = nullptr;

TEST_F(FaultsTrain, KillDuringTrainingThenResumeEndsLikeUninterruptedRun) {
  const fs::path last = set_->dir / "runs/killed/last.safetensors";
  pid_t pid = spawn(set_->train({"exp_name=killed", "train_param.max_epochs=3"}),
                    set_->dir / "killed.txt");
  bool killed = kill_when(pid, [&] { return fs::exists(last); });
  ASSERT_TRUE(killed) << "training finished before the kill: the test proved nothing";
  EXPECT_NE(set_->metrics("killed"), set_->metrics("ref"));
  std::string log;
  ASSERT_EQ(set_->run(set_->train({"exp_name=killed", "train_param.max_epochs=3", "--resume"}), &log), 0)
      << log;
  EXPECT_EQ(set_->metrics("killed"), set_->metrics("ref"));
}

TEST_F(FaultsTrain, FullDiskDuringCheckpointKeepsPreviousCheckpoint) {
  const fs::path run = set_->dir / "runs/full";
  std::string log;
  ASSERT_EQ(set_->run(set_->train({"exp_name=full", "train_param.max_epochs=2"}), &log), 0) << log;
  auto checkpoints = snapshot(run, ".safetensors");
  ASSERT_EQ(checkpoints.size(), 2u);
  // 64 KiB: room for the config and metrics.csv, not for a checkpoint.
  EXPECT_EQ(set_->run(set_->train({"exp_name=full", "train_param.max_epochs=3", "--resume"}), &log,
                      64 * 1024), 1) << log;
  EXPECT_NE(log.find(".safetensors: write failed (disk full?)"), std::string::npos) << log;
  EXPECT_EQ(snapshot(run, ".safetensors"), checkpoints);
  EXPECT_FALSE(has_temp_files(run));
  // The disk has room again: resuming finishes exactly like the uninterrupted run.
  ASSERT_EQ(set_->run(set_->train({"exp_name=full", "train_param.max_epochs=3", "--resume"}), &log), 0)
      << log;
  EXPECT_EQ(set_->metrics("full"), set_->metrics("ref"));
}

}  // namespace
