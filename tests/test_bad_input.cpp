// Every bad input of tests/data/bad_input/cases.txt, run through the built apps: the exit code and
// a substring of the one-line message. docs/bad-input.md is generated from the same file
// (tests/data/bad_input/make_doc.sh); a test checks that it lists every case. The last test
// replays the committed fuzz corpus (crash inputs included) through the fuzz targets' bodies.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "../fuzz/targets.hpp"
#include "fsl/annotations.hpp"
#include "fsl/fileio.hpp"
#include "testutil.hpp"

namespace fs = std::filesystem;

namespace {

struct Case {
  std::string id, what, command, expect;
  int exit_code = 0;
};

std::vector<Case> read_cases() {
  std::ifstream in(fsl::test::data_path("bad_input/cases.txt"));
  std::vector<Case> cases;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> f;
    for (size_t start = 0;;) {
      size_t bar = line.find(" | ", start);
      f.push_back(fsl::trim(line.substr(start, bar - start)));
      if (bar == std::string::npos) break;
      start = bar + 3;
    }
    if (f.size() != 5)
      ADD_FAILURE() << "cases.txt: not 5 fields: " << line;
    else
      cases.push_back({f[0], f[1], f[2], f[4], std::stoi(f[3])});
  }
  return cases;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t p = 0; (p = s.find(from, p)) != std::string::npos; p += to.size())
    s.replace(p, from.size(), to);
  return s;
}

TEST(BadInput, EveryCaseExitsWithItsCodeAndMessage) {
  auto cases = read_cases();
  ASSERT_GE(cases.size(), 30u);
  fsl::test::TempDir tmp;
  fs::copy(fsl::test::data_path("bad_input/files"), tmp / "in", fs::copy_options::recursive);
  const std::string conf = (fsl::test::data_path("") / "../../conf").lexically_normal().string();
  for (const auto& c : cases) {
    std::string cmd = replace_all(c.command, "{bin}", fsl::test::bin_path("").string());
    cmd = replace_all(cmd, "{in}", (tmp / "in").string());
    cmd = replace_all(cmd, "{conf}", conf);
    cmd = replace_all(cmd, "{tmp}", tmp.path.string());
    std::string out;
    int rc = fsl::test::run_command("cd " + tmp.path.string() + " && " + cmd, &out);
    EXPECT_EQ(rc, c.exit_code) << c.id << ": " << cmd << "\n" << out;
    EXPECT_NE(out.find(c.expect), std::string::npos)
        << c.id << ": expected '" << c.expect << "' in:\n"
        << out;
    // Never a crash report, whatever the input.
    for (const char* crash :
         {"Segmentation", "Aborted", "terminate called", "AddressSanitizer", "runtime error:"})
      EXPECT_EQ(out.find(crash), std::string::npos) << c.id << ":\n" << out;
  }
}

TEST(BadInput, DocListsEveryCase) {
  for (const char* page : {"docs/bad-input.md", "README.md"}) {
    const std::string doc = fsl::read_text(fsl::test::data_path("") / "../.." / page);
    for (const auto& c : read_cases()) {
      size_t row = doc.find("\n| " + c.id + " | ");
      ASSERT_NE(row, std::string::npos) << c.id << " is not in " << page << ": rerun "
                                        << "tests/data/bad_input/make_doc.sh";
      std::string line = doc.substr(row + 1, doc.find('\n', row + 1) - row - 1);
      EXPECT_NE(line.find(c.expect), std::string::npos) << c.id << ": " << line;
      EXPECT_NE(line.find(" | " + std::to_string(c.exit_code) + " | "), std::string::npos) << line;
    }
  }
}

// Every file of fuzz/corpus/<target>/ (seeds and every input that once crashed, leaked or hung)
// through the target's body: only fsl::Error may escape, and (in the sanitizer suite) no report.
TEST(BadInput, FuzzCorpusReplaysCleanly) {
  const fs::path corpus = fsl::test::data_path("") / "../../fuzz/corpus";
  const std::vector<std::pair<std::string, void (*)(const uint8_t*, size_t)>> targets = {
      {"fuzz_annotations", fsl::fuzz::annotations_one},
      {"fuzz_npy", fsl::fuzz::npy_one},
      {"fuzz_config", fsl::fuzz::config_one},
      {"fuzz_safetensors", fsl::fuzz::safetensors_one},
      {"fuzz_predictions", fsl::fuzz::predictions_one},
      {"fuzz_file_scores", fsl::fuzz::file_scores_one}};
  for (const auto& [name, run_one] : targets) {
    int n = 0;
    for (const auto& e : fs::directory_iterator(corpus / name)) {
      const std::string bytes = fsl::read_text(e.path());
      EXPECT_NO_THROW(run_one(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()))
          << e.path();
      ++n;
    }
    EXPECT_GE(n, 2) << name << ": seed corpus missing";
  }
  std::error_code ec;
  fs::remove_all(fs::temp_directory_path() / ("fsl_fuzz_" + std::to_string(getpid())), ec);
}

}  // namespace
