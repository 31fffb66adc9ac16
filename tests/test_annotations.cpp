#include <gtest/gtest.h>

#include <fstream>

#include "fsl/annotations.hpp"
#include "fsl/error.hpp"
#include "testutil.hpp"

namespace {

namespace fs = std::filesystem;

std::string write_file(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
  return p.string();
}

// The error message of read_annotations on `text`, or "" if it did not throw.
std::string error_of(const fsl::test::TempDir& dir, const std::string& text) {
  auto p = write_file(dir / "SUB/bad.csv", text);
  try {
    fsl::read_annotations(p);
  } catch (const fsl::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Csv, QuotesCrlfBomAndBlankLines) {
  auto rows = fsl::parse_csv(
      "\xEF\xBB\xBF"
      "a,\"b,c\",\"d\"\"e\"\r\n\r\n  \n1,2,3\r\n\n\n",
      "x.csv");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].cells, (std::vector<std::string>{"a", "b,c", "d\"e"}));
  EXPECT_EQ(rows[0].line, 1);
  EXPECT_EQ(rows[1].cells, (std::vector<std::string>{"1", "2", "3"}));
  EXPECT_EQ(rows[1].line, 4);
  EXPECT_THROW(fsl::parse_csv("a,\"b\n", "x.csv"), fsl::Error);
  auto last = fsl::parse_csv("a,b\n1,2", "x.csv");  // no final newline
  ASSERT_EQ(last.size(), 2u);
  EXPECT_EQ(last[1].cells[1], "2");
}

TEST(Csv, ParseTime) {
  double v = 0;
  EXPECT_TRUE(fsl::parse_time(" 1.5 ", &v));
  EXPECT_EQ(v, 1.5);
  EXPECT_TRUE(fsl::parse_time("2e-1", &v));
  EXPECT_EQ(v, 0.2);
  for (const char* bad : {"", "abc", "1.5x", "nan", "inf", "0x10", "1,5"})
    EXPECT_FALSE(fsl::parse_time(bad, &v)) << bad;
}

TEST(Annotations, TrainingLayoutSeveralClasses) {
  fsl::test::TempDir dir;
  auto csv = write_file(dir / "HT/a.csv",
                        "Audiofilename,Starttime,Endtime,CLASS_A, CLASS_B \r\n"
                        "a.wav,5.0,6.0,POS,NEG\r\n"
                        "a.wav,1.0,2.0,POS,UNK\r\n"
                        "\"a.wav\", 3.0 ,4.0,NEG,POS\r\n\r\n");
  write_file(dir / "HT/a.wav", "not really audio");
  auto af = fsl::read_annotations(csv);
  EXPECT_EQ(af.subset, "HT");
  EXPECT_EQ(af.audio_path, (dir / "HT/a.wav").string());
  EXPECT_FALSE(af.validation_layout);
  EXPECT_EQ(af.classes, (std::vector<std::string>{"CLASS_A", "CLASS_B"}));
  ASSERT_EQ(af.pos["CLASS_A"].size(), 2u);  // sorted by onset, not by row
  EXPECT_EQ(af.pos["CLASS_A"][0].start, 1.0);
  EXPECT_EQ(af.pos["CLASS_A"][1].end, 6.0);
  ASSERT_EQ(af.pos["CLASS_B"].size(), 1u);
  EXPECT_EQ(af.pos["CLASS_B"][0].start, 3.0);
  ASSERT_EQ(af.unk["CLASS_B"].size(), 1u);
  EXPECT_TRUE(af.unk["CLASS_A"].empty());
}

TEST(Annotations, CallColumnTakesSubsetName) {
  fsl::test::TempDir dir;
  auto csv = write_file(dir / "BV/b.csv", "Audiofilename,Starttime,Endtime,CALL\nb.wav,0,1,POS\n");
  auto af = fsl::read_annotations(csv);
  EXPECT_EQ(af.classes, (std::vector<std::string>{"BV"}));
  EXPECT_EQ(af.pos["BV"].size(), 1u);
  EXPECT_EQ(af.audio_path, "");
}

TEST(Annotations, ValidationLayout) {
  fsl::test::TempDir dir;
  auto csv = write_file(dir / "ME/c.csv",
                        "Audiofilename,Starttime,Endtime,Q\nc.wav,1,2,POS\nc.wav,0.5,0.7,UNK\n");
  write_file(dir / "ME/c.flac", "x");
  auto af = fsl::read_annotations(csv);
  EXPECT_TRUE(af.validation_layout);
  EXPECT_EQ(af.classes, (std::vector<std::string>{"ME"}));
  EXPECT_EQ(af.audio_path, (dir / "ME/c.flac").string());
  EXPECT_EQ(af.pos["ME"].size(), 1u);
  EXPECT_EQ(af.unk["ME"][0].start, 0.5);
}

TEST(Annotations, ErrorsNameFileAndLine) {
  fsl::test::TempDir dir;
  const std::string h = "Audiofilename,Starttime,Endtime,Q\n";
  struct Case {
    std::string text, expect;
  };
  std::vector<Case> cases = {
      {"Audiofilename,Start,Endtime,Q\n", "bad.csv:1: wrong header"},
      {"Audiofilename,Starttime,Endtime\n", "bad.csv:1: wrong header"},
      {"", "empty file"},
      {h + "c.wav,1,2,POS\nc.wav,1\n", "bad.csv:3: too few columns"},
      {h + "c.wav,x,2,POS\n", "bad.csv:2: Starttime 'x' is not a number"},
      {h + "c.wav,1,,POS\n", "bad.csv:2: Endtime '' is not a number"},
      {h + "\nc.wav,3,2,POS\n", "bad.csv:3: Starttime 3 > Endtime 2"},
      {h + "c.wav,1,2,NEG\n", "bad.csv:2: column Q has 'NEG'"},
      {"Audiofilename,Starttime,Endtime,A\r\nc.wav,1,2,MAYBE\r\n", "bad.csv:2: column A"},
  };
  for (const auto& c : cases) {
    std::string msg = error_of(dir, c.text);
    EXPECT_NE(msg.find(c.expect), std::string::npos) << "got '" << msg << "' for " << c.text;
  }
}

TEST(Annotations, DirIsRecursiveAndSorted) {
  fsl::test::TempDir dir;
  const std::string body = "Audiofilename,Starttime,Endtime,Q\nx.wav,1,2,POS\n";
  write_file(dir / "B/z.csv", body);
  write_file(dir / "A/deep/y.csv", body);
  write_file(dir / "A/x.csv", body);
  write_file(dir / "A/notes.txt", "ignored");
  auto files = fsl::read_annotation_dir(dir.path.string());
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(files[0].csv_path, (dir / "A/deep/y.csv").string());
  EXPECT_EQ(files[0].subset, "deep");
  EXPECT_EQ(files[1].csv_path, (dir / "A/x.csv").string());
  EXPECT_EQ(files[2].subset, "B");
  EXPECT_THROW(fsl::read_annotation_dir((dir / "missing").string()), fsl::Error);
}

TEST(Annotations, NegativeGaps) {
  std::vector<fsl::AnnotatedEvent> pos = {{0, 1}, {1.1, 2}, {3, 10}, {4, 5}, {10.5, 11}, {12, 13}};
  auto gaps = fsl::negative_gaps(pos, 0.2);
  // 1->1.1 too short; 2->3 kept; {4,5} lies inside {3,10}, so the next gap starts at 10, not 5.
  ASSERT_EQ(gaps.size(), 3u);
  EXPECT_EQ(gaps[0].start, 2);
  EXPECT_EQ(gaps[0].end, 3);
  EXPECT_EQ(gaps[1].start, 10);
  EXPECT_EQ(gaps[1].end, 10.5);
  EXPECT_EQ(gaps[2].start, 11);
  EXPECT_TRUE(fsl::negative_gaps({}, 0.2).empty());
}
