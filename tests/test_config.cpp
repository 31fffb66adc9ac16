#include <gtest/gtest.h>

#include <filesystem>

#include "fsl/config.hpp"
#include "fsl/error.hpp"
#include "testutil.hpp"

using fsl::Config;

namespace {
std::string error_of(const std::string& yaml, const std::vector<std::string>& ov = {}) {
  try {
    Config::from_string(yaml, ov, "cfg.yaml");
  } catch (const fsl::Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(Config, DefaultsMatchTheShippedYaml) {
  Config shipped = Config::load(std::string(FSL_TEST_DATA) + "/../../conf/config.yaml");
  Config defaults;
  EXPECT_EQ(shipped.to_yaml(), defaults.to_yaml());
  EXPECT_EQ(shipped.features.n_mels, 128);
  EXPECT_DOUBLE_EQ(shipped.features.eps, 1e-8);
}

TEST(Config, OverridesApplyInOrder) {
  Config c = Config::from_string("train_param:\n  k_way: 10\n",
                                 {"train_param.k_way=5", "exp_name=abc", "+eval.threshold=0.25"});
  EXPECT_EQ(c.train_param.k_way, 5);
  EXPECT_EQ(c.exp_name, "abc");
  EXPECT_DOUBLE_EQ(c.eval.threshold, 0.25);
}

TEST(Config, RoundTripsThroughPrintedYaml) {
  Config c = Config::from_string("", {"features.feature_types=logmel@pcen", "path.test_dir=x/y"});
  Config d = Config::from_string(c.to_yaml());
  EXPECT_EQ(c.to_yaml(), d.to_yaml());
  EXPECT_EQ(d.features.types(), (std::vector<std::string>{"logmel", "pcen"}));
}

TEST(Config, InterpolationOfPythonKeys) {
  Config c = Config::from_string(
      "exp_name: run1\nfeatures:\n  sr: 16000\n  fmax: 8000\ntrain_param:\n  sr: ${features.sr}\n"
      "  exp_name: ${exp_name}\n");
  EXPECT_EQ(c.features.sr, 16000);
  EXPECT_EQ(c.exp_name, "run1");
}

TEST(Config, UnknownKeyIsNamed) {
  EXPECT_NE(error_of("features:\n  n_melz: 3\n").find("unknown key 'features.n_melz'"),
            std::string::npos);
  EXPECT_NE(error_of("", {"train_param.bogus=1"}).find("train_param.bogus"), std::string::npos);
}

TEST(Config, IgnoredAndRemovedKeys) {
  // the Python system's dead keys are accepted and change nothing
  Config c = Config::from_string(
      "train_param:\n  adaptive_seg_len: false\n  use_validation_first_5: true\n");
  EXPECT_EQ(c.to_yaml(), Config().to_yaml());
  // a removed option is refused with its reason
  auto e = error_of("eval:\n  calibrate: shots\n");
  EXPECT_NE(e.find("cfg.yaml: key 'eval.calibrate' removed"), std::string::npos) << e;
  EXPECT_NE(error_of("", {"eval.normalise=file"}).find("eval.normalise"), std::string::npos);
}

TEST(Config, BaselineSwitchSetsTheFourBaselineChoices) {
  Config c = Config::from_string("eval:\n  baseline: true\n  boundaries: shots\n");
  EXPECT_EQ(c.eval.negatives, "prototypes");
  EXPECT_EQ(c.eval.boundaries, "window");
  EXPECT_EQ(c.eval.frame_times, "start");
  EXPECT_FALSE(c.eval.merge_overlaps);
  Config d;  // fsl's defaults
  EXPECT_EQ(d.eval.negatives, "nearest");
  EXPECT_EQ(d.eval.boundaries, "shots");
  EXPECT_EQ(d.eval.frame_times, "centre");
  EXPECT_TRUE(d.eval.merge_overlaps);
}

TEST(Config, WrongTypeIsNamed) {
  auto e = error_of("train_param:\n  k_way: ten\n");
  EXPECT_NE(e.find("train_param.k_way"), std::string::npos) << e;
  EXPECT_NE(e.find("integer"), std::string::npos) << e;
  EXPECT_NE(error_of("features:\n  with_bias: maybe\n").find("true or false"), std::string::npos);
  EXPECT_NE(error_of("features:\n  eps: abc\n").find("a number"), std::string::npos);
  EXPECT_NE(error_of("features:\n  n_mels: [1, 2]\n").find("features.n_mels"), std::string::npos);
}

TEST(Config, BadChoicesAndRanges) {
  EXPECT_NE(error_of("runtime:\n  device: tpu\n").find("runtime.device"), std::string::npos);
  EXPECT_NE(error_of("features:\n  feature_types: mfcc\n").find("unsupported feature type 'mfcc'"),
            std::string::npos);
  EXPECT_NE(error_of("features:\n  fmax: 20000\n").find("features.fmax"), std::string::npos);
  EXPECT_NE(error_of("", {"novalue"}).find("expected section.key=value"), std::string::npos);
}

TEST(Config, SyntaxErrorNamesFileAndLine) {
  auto e = error_of("features:\n  sr: [1, 2\n");
  EXPECT_NE(e.find("cfg.yaml: line"), std::string::npos) << e;
}

TEST(Config, MissingFileIsNamed) {
  try {
    Config::load("/nonexistent/conf.yaml");
    FAIL();
  } catch (const fsl::Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/conf.yaml"), std::string::npos);
  }
}
