// The scores file (fsl_eval's file_scores.txt): every file's p with its timing, written after
// detection and read back by --from-scores.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "fsl/detect.hpp"
#include "fsl/error.hpp"

namespace fsl {

namespace {
constexpr const char* kScoresHeader = "fsl-file-scores v1";
}

std::string file_scores_text(const std::vector<FileScores>& files) {
  std::string out = std::string(kScoresHeader) + "\n";
  char buf[64];
  for (const auto& f : files) {
    if (f.name.find_first_of(" \t\r\n") != std::string::npos)
      fail(f.name, ": a file name with whitespace cannot be saved in the scores file");
    out += f.name;
    for (double v : {f.start_s, f.step_s, f.extent_s, f.duration_s, f.shortest_shot_s, f.min_run_s,
                     f.mean_shot_s}) {
      std::snprintf(buf, sizeof buf, " %.17g", v);
      out += buf;
    }
    out += " " + std::to_string(f.p.size()) + "\n";
    for (size_t i = 0; i < f.p.size(); ++i) {
      std::snprintf(buf, sizeof buf, i ? " %.9g" : "%.9g", double(f.p[i]));
      out += buf;
    }
    out += "\n";
  }
  return out;
}

std::vector<FileScores> parse_file_scores(const std::string& text, const std::string& origin) {
  std::istringstream in(text);
  std::string line;
  long line_no = 1;
  if (!std::getline(in, line) || line != kScoresHeader)
    fail(origin, ":1: not an fsl scores file (expected the header '", kScoresHeader, "')");
  std::vector<FileScores> files;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty()) continue;
    FileScores f;
    long n = -1;
    std::istringstream head(line);
    head >> f.name >> f.start_s >> f.step_s >> f.extent_s >> f.duration_s >> f.shortest_shot_s >>
        f.min_run_s >> f.mean_shot_s >> n;
    std::string extra;
    if (!head || n < 0 || (head >> extra))
      fail(origin, ":", line_no, ": expected 'name' and 7 numbers and a count");
    if (!std::getline(in, line))
      fail(origin, ":", line_no + 1, ": the p values of ", f.name, " are missing");
    ++line_no;
    // Each value takes at least two characters with its separator: a count beyond that is wrong
    // (and must not allocate).
    if (size_t(n) > (line.size() + 1) / 2)
      fail(origin, ":", line_no, ": ", f.name, ": expected ", n, " finite values of p");
    // strtof, not >>: a stream fails on denormal values, which p near 0 can be.
    f.p.resize(size_t(n));
    const char* cursor = line.c_str();
    for (auto& v : f.p) {
      char* end = nullptr;
      v = std::strtof(cursor, &end);
      // Finite, not [0, 1]: the floor's moving average leaves p a few 1e-16 below 0.
      if (end == cursor || !std::isfinite(v))
        fail(origin, ":", line_no, ": ", f.name, ": expected ", n, " finite values of p");
      cursor = end;
    }
    if (std::string(cursor).find_first_not_of(" \t\r") != std::string::npos)
      fail(origin, ":", line_no, ": ", f.name, ": more than ", n, " values");
    files.push_back(std::move(f));
  }
  return files;
}

}  // namespace fsl
