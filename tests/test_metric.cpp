// The metric against the OFFICIAL DCASE script: tests/data/metric/<case>/expected.json were
// written by tools/golden/make_metric_golden.py running evaluation_metrics/evaluation.py of
// c4dm/dcase-few-shot-bioacoustic on the same hand-built reference dirs and prediction CSVs.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include "fsl/error.hpp"
#include "fsl/fileio.hpp"
#include "fsl/metric.hpp"
#include "testutil.hpp"

namespace {

namespace fs = std::filesystem;

// A minimal JSON reader for expected.json (objects, arrays, strings, numbers, null).
struct Json {
  enum Kind { Null, Number, String, Array, Object } kind = Null;
  double number = 0;
  std::string text;
  std::vector<Json> items;
  std::map<std::string, Json> members;
  const Json& operator[](const std::string& k) const { return members.at(k); }
};

struct JsonReader {
  const std::string& s;
  size_t i = 0;
  void ws() {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  }
  std::string str() {
    std::string out;
    for (++i; s.at(i) != '"'; ++i) {
      if (s[i] == '\\') ++i;
      out += s.at(i);
    }
    ++i;
    return out;
  }
  Json value() {
    ws();
    Json j;
    if (s.at(i) == '{') {
      j.kind = Json::Object;
      ++i;
      for (ws(); s.at(i) != '}'; ws()) {
        if (s[i] == ',') ++i, ws();
        std::string k = str();
        ws();
        ++i;  // ':'
        j.members[k] = value();
      }
      ++i;
    } else if (s[i] == '[') {
      j.kind = Json::Array;
      ++i;
      for (ws(); s.at(i) != ']'; ws()) {
        if (s[i] == ',') ++i;
        j.items.push_back(value());
      }
      ++i;
    } else if (s[i] == '"') {
      j.kind = Json::String;
      j.text = str();
    } else if (s.compare(i, 4, "null") == 0) {
      i += 4;
    } else {
      j.kind = Json::Number;
      size_t used = 0;
      j.number = std::stod(s.substr(i, 40), &used);
      i += used;
    }
    return j;
  }
};

Json read_json(const fs::path& p) {
  std::string text = fsl::read_text(p);
  JsonReader r{text};
  return r.value();
}

fs::path case_dir(const std::string& name) { return fsl::test::data_path("metric/" + name); }

fsl::Scores score_case(const std::string& name) {
  auto preds = fsl::read_predictions((case_dir(name) / "pred.csv").string());
  return fsl::score_predictions((case_dir(name) / "ref").string(), preds);
}

void expect_matches_official(const std::string& name) {
  SCOPED_TRACE(name);
  Json expected = read_json(case_dir(name) / "expected.json");
  ASSERT_EQ(expected["error"].kind, Json::Null);
  fsl::Scores got = score_case(name);
  const auto& subsets = expected["subsets"].items;
  ASSERT_EQ(got.subsets.size(), subsets.size());
  for (size_t k = 0; k < subsets.size(); ++k) {
    const auto& e = subsets[k];
    const auto& g = got.subsets[k];
    EXPECT_EQ(g.name, e["name"].text);
    EXPECT_EQ(g.tp, long(e["tp"].number)) << g.name;
    EXPECT_EQ(g.fp, long(e["fp"].number)) << g.name;
    EXPECT_EQ(g.fn, long(e["fn"].number)) << g.name;
    EXPECT_NEAR(g.precision, e["precision"].number, 1e-9) << g.name;
    EXPECT_NEAR(g.recall, e["recall"].number, 1e-9) << g.name;
    EXPECT_NEAR(g.fmeasure, e["fmeasure"].number, 1e-9) << g.name;
  }
  EXPECT_NEAR(got.precision, expected["overall"]["precision"].number, 1e-9);
  EXPECT_NEAR(got.recall, expected["overall"]["recall"].number, 1e-9);
  EXPECT_EQ(got.fmeasure_percent, expected["overall"]["fmeasure_percent"].number);
}

void expect_fails_like_official(const std::string& name, const std::string& message_part) {
  SCOPED_TRACE(name);
  Json expected = read_json(case_dir(name) / "expected.json");
  ASSERT_EQ(expected["error"].kind, Json::String);  // the official script failed on it
  try {
    score_case(name);
    ADD_FAILURE() << "no error";
  } catch (const fsl::Error& e) {
    EXPECT_NE(std::string(e.what()).find(message_part), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(MetricGolden, IouExactlyPoint3IsNoMatch) { expect_matches_official("iou_threshold"); }
TEST(MetricGolden, MaximumNotGreedyAndScriptOrder) { expect_matches_official("maximum_matching"); }
TEST(MetricGolden, UnkMatches) { expect_matches_official("unk_matches"); }
TEST(MetricGolden, PredictionsBeforeFifthShot) { expect_matches_official("before_fifth_shot"); }
TEST(MetricGolden, FileWithoutPredictions) { expect_matches_official("no_predictions"); }
TEST(MetricGolden, SeveralSubsetsHarmonicMean) { expect_matches_official("several_subsets"); }
TEST(MetricGolden, UnsortedReference) { expect_matches_official("unsorted_reference"); }
TEST(MetricGolden, DenseRandom) { expect_matches_official("dense_random"); }

TEST(MetricGolden, FailsWhereTheScriptFails) {
  expect_fails_like_official("error_unknown_file", "other.wav");
  expect_fails_like_official("error_subset_without_csv", "'EMPTY' holds no .csv");
  expect_fails_like_official("error_few_shots", "4 POS events, fewer than 5");
  expect_fails_like_official("error_pred_header", "wrong header");
}

TEST(Metric, NumpyQuicksortArgsortMatchesNumpy) {
  // argsort.txt: numpy's object-array argsort(kind="quicksort") on keys with many ties.
  std::ifstream in(case_dir("argsort.txt"));
  std::string line;
  int n_cases = 0;
  while (std::getline(in, line)) {
    auto bar = line.find('|');
    std::istringstream ks(line.substr(0, bar)), os(line.substr(bar + 1));
    std::vector<long> keys, expected;
    for (long v; ks >> v;) keys.push_back(v);
    for (long v; os >> v;) expected.push_back(v);
    auto got = fsl::detail::numpy_quicksort_argsort(
        int(keys.size()), [&](int a, int b) { return keys[a] < keys[b]; });
    ASSERT_EQ(std::vector<long>(got.begin(), got.end()), expected) << "n=" << keys.size();
    ++n_cases;
  }
  EXPECT_EQ(n_cases, 30);
}

TEST(Metric, SubsetScoreFloors) {
  auto none = fsl::subset_score("x", 0, 0, 4);  // no predictions at all
  EXPECT_EQ(none.precision, 1e-5);
  EXPECT_EQ(none.recall, 1e-5);
  EXPECT_EQ(none.fmeasure, 1e-5);
  auto wrong = fsl::subset_score("x", 0, 3, 4);
  EXPECT_EQ(wrong.precision, 1e-5);
  auto s = fsl::subset_score("x", 3, 1, 2);
  EXPECT_DOUBLE_EQ(s.precision, 0.75);
  EXPECT_DOUBLE_EQ(s.recall, 0.6);
  EXPECT_DOUBLE_EQ(s.fmeasure, 2 * 0.75 * 0.6 / (0.75 + 0.6));
}

TEST(Metric, ReadPredictionsErrorsNameTheLine) {
  fsl::test::TempDir dir;
  auto write = [&](const std::string& text) {
    auto p = (dir / "p.csv").string();
    std::ofstream(p) << text;
    return p;
  };
  const std::string h = "Audiofilename,Starttime,Endtime\n";
  auto ok = fsl::read_predictions(write("\xEF\xBB\xBF" + h + "a.wav,1.50,2\r\n\r\n"));
  ASSERT_EQ(ok.size(), 1u);
  EXPECT_EQ(ok[0].start_text, "1.50");
  EXPECT_EQ(ok[0].end, 2.0);
  EXPECT_TRUE(fsl::read_predictions(write(h)).empty());
  struct Case {
    std::string text, expect;
  };
  for (const Case& c : std::vector<Case>{
           {"Audiofilename,Starttime\n", "p.csv:1: wrong header"},
           {"audiofilename,Starttime,Endtime\n", "p.csv:1: wrong header"},
           {h + "a.wav,1,2\na.wav,x,2\n", "p.csv:3: Starttime 'x'"},
           {h + "a.wav,1\n", "p.csv:2: too few columns"},
           {h + "a.wav,1,2,3\n", "p.csv:2: too many columns"},
           {h + "a.wav,3,2\n", "p.csv:2: Starttime 3 > Endtime 2"},
           {h + ",1,2\n", "p.csv:2: empty Audiofilename"},
       }) {
    try {
      fsl::read_predictions(write(c.text));
      ADD_FAILURE() << "no error for " << c.text;
    } catch (const fsl::Error& e) {
      EXPECT_NE(std::string(e.what()).find(c.expect), std::string::npos) << e.what();
    }
  }
}

TEST(Metric, BootstrapIsSeededAndBracketsTheScore) {
  fsl::Scores s = score_case("dense_random");
  auto a = fsl::bootstrap_fmeasure(s, 200, 1);
  auto b = fsl::bootstrap_fmeasure(s, 200, 1);
  auto c = fsl::bootstrap_fmeasure(s, 200, 2);
  EXPECT_EQ(a.low, b.low);
  EXPECT_EQ(a.high, b.high);
  EXPECT_NE(a.low, c.low);
  EXPECT_LT(a.low, s.fmeasure);
  EXPECT_GT(a.high, s.fmeasure);
  EXPECT_LT(a.low, a.high);
}

TEST(FslScore, TableJsonAndExitCodes) {
  const std::string bin = fsl::test::bin_path("fsl_score").string();
  const std::string ref = (case_dir("several_subsets") / "ref").string();
  const std::string pred = (case_dir("several_subsets") / "pred.csv").string();
  std::string out;  // run_command appends: cleared before each run
  ASSERT_EQ(fsl::test::run_command(bin + " --ref " + ref + " --pred " + pred, &out), 0) << out;
  // overall F = harmonic mean of 0.75, 2/3 and 1e-5, in percent
  EXPECT_NE(out.find("overall"), std::string::npos) << out;
  EXPECT_NE(out.find("HB"), std::string::npos);
  Json expected = read_json(case_dir("several_subsets") / "expected.json");
  char pct[32];
  std::snprintf(pct, sizeof pct, "%.3f", expected["overall"]["fmeasure_percent"].number);
  auto overall_row = out.substr(out.find("overall"));
  EXPECT_NE(overall_row.find(pct), std::string::npos) << overall_row;

  out.clear();
  ASSERT_EQ(fsl::test::run_command(bin + " --json --ref " + ref + " --pred " + pred, &out), 0);
  Json j = [&] {
    JsonReader r{out};
    return r.value();
  }();
  EXPECT_EQ(j["subsets"]["ME"]["tp"].number, 1);
  EXPECT_NEAR(j["overall"]["recall"].number, expected["overall"]["recall"].number, 1e-12);

  out.clear();
  ASSERT_EQ(fsl::test::run_command(
                bin + " --bootstrap 50 --seed 3 --ref " + ref + " --pred " + pred, &out),
            0);
  EXPECT_NE(out.find("95% interval"), std::string::npos) << out;

  const std::string bad = (case_dir("error_unknown_file") / "pred.csv").string();
  const std::string bad_ref = (case_dir("error_unknown_file") / "ref").string();
  out.clear();
  EXPECT_EQ(fsl::test::run_command(bin + " --ref " + bad_ref + " --pred " + bad, &out), 1);
  EXPECT_NE(out.find("fsl_score: error:"), std::string::npos) << out;
  EXPECT_NE(out.find("other.wav"), std::string::npos) << out;
  EXPECT_EQ(fsl::test::run_command(bin + " --ref " + ref + " --pred /nonexistent.csv", &out), 1);
  EXPECT_EQ(fsl::test::run_command(bin + " --pred " + pred, &out), 1);  // --ref missing
}
