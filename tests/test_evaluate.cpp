// fsl::evaluate in process (fsl_eval's work without the CLI): what it returns is what it wrote,
// for a fixed threshold, a sweep, --from-scores and the test split. The floor method on one
// hand-made file whose later bumps are the events (tests/detect_fixtures.hpp).
#include <gtest/gtest.h>

#include <algorithm>

#include "detect_fixtures.hpp"
#include "fsl/evaluate.hpp"
#include "fsl/fileio.hpp"
#include "fsl/npy.hpp"
#include "testutil.hpp"

using namespace fsl::test;

namespace {

class Evaluate : public ::testing::Test {
 protected:
  void SetUp() override {
    write_reference(dir_ / "val");
    // Bumps (bins 0..3) at the shots and at 10, 20, 30 s; 40 s in all.
    std::vector<fsl::FrameSpan> bumps;
    for (double on : {1.0, 2.0, 3.0, 4.0, 5.0})
      bumps.push_back({long(on * kFps), long((on + 0.2) * kFps)});
    for (double on : {10.0, 20.0, 30.0})
      bumps.push_back({long(on * kFps), long((on + 0.5) * kFps)});
    auto x = bump_matrix(long(40 * kFps), bumps, 3.f, 0.3f);
    fsl::npy_write((dir_ / "val" / "S" / "f_logmel.npy").string(), x.data(),
                   {x.size() / kMels, size_t(kMels)});
  }
  fsl::Config config(const std::string& exp_name) const {
    const std::string val = (dir_ / "val").string();
    return fsl::Config::load(data_path("../../conf/config.yaml").string(),
                             {"path.eval_dir=" + val, "path.test_dir=" + val,
                              "path.work_dir=" + (dir_ / "runs").string(), "exp_name=" + exp_name,
                              "eval.method=frame_prototype"});
  }
  std::string eval_path(const std::string& exp_name, const std::string& rest) const {
    return (dir_ / "runs" / exp_name / "eval" / rest).string();
  }
  TempDir dir_;
};

TEST_F(Evaluate, FixedThresholdReturnsTheScoresItWrites) {
  fsl::EvalOptions opt;
  opt.threshold = 0.5;
  opt.with_floor = true;  // the floor beside the floor: not run
  const auto r = fsl::evaluate(config("fixed"), opt);
  EXPECT_FALSE(r.floor.has_value());
  EXPECT_EQ(r.main.eval_dir, (dir_ / "runs" / "fixed" / "eval").string());
  EXPECT_EQ(r.main.threshold, 0.5);
  ASSERT_EQ(r.main.scores.subsets.size(), 1u);
  const auto& s = r.main.scores.subsets[0];
  EXPECT_EQ(s.name, "S");
  EXPECT_EQ(s.tp, 3);
  EXPECT_EQ(s.fp, 0);
  EXPECT_EQ(s.fn, 0);
  EXPECT_NEAR(r.main.scores.fmeasure, 1.0, 1e-4);
  const std::vector<std::string> written = {eval_path("fixed", "file_scores.txt"),
                                            eval_path("fixed", "0.50/Eval_out.csv"),
                                            eval_path("fixed", "0.50/scores.json")};
  EXPECT_EQ(r.main.written, written);
  EXPECT_EQ(fsl::read_text(written[2]), fsl::scores_json(r.main.scores));

  // --from-scores: no detection, nothing but the threshold's files written, the same scores.
  opt.from_scores = written[0];
  opt.with_floor = false;
  const auto again = fsl::evaluate(config("again"), opt);
  EXPECT_EQ(again.main.written, std::vector<std::string>({eval_path("again", "0.50/Eval_out.csv"),
                                                          eval_path("again", "0.50/scores.json")}));
  EXPECT_EQ(fsl::scores_json(again.main.scores), fsl::scores_json(r.main.scores));
}

TEST_F(Evaluate, SweepReturnsTheBestThresholdAndTestSplitOnlyTheCsv) {
  const auto r = fsl::evaluate(config("sweep"));
  EXPECT_EQ(r.main.written.size(), 1u + 2u * fsl::sweep_thresholds().size());
  for (const auto& p : r.main.written) EXPECT_TRUE(fsl::fs::exists(p)) << p;
  const std::string best = fsl::threshold_name(r.main.threshold);
  EXPECT_EQ(fsl::read_text(eval_path("sweep", best + "/scores.json")),
            fsl::scores_json(r.main.scores));

  fsl::EvalOptions test;
  test.split = "test";
  const auto t = fsl::evaluate(config("test"), test);
  EXPECT_TRUE(t.main.scores.subsets.empty());
  EXPECT_EQ(t.main.written, std::vector<std::string>({eval_path("test", "file_scores.txt"),
                                                      eval_path("test", "0.50/Eval_out.csv")}));
}

}  // namespace
