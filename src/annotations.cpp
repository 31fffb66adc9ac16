#include "fsl/annotations.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "fsl/error.hpp"
#include "fsl/fileio.hpp"

namespace fsl {

std::vector<CsvRow> parse_csv(const std::string& text, const std::string& path) {
  std::vector<CsvRow> rows;
  size_t i = 0;
  const size_t n = text.size();
  if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) i = 3;
  int line = 1;
  CsvRow row;
  row.line = line;
  std::string cell;
  bool in_quotes = false, row_has_content = false;
  auto end_row = [&]() {
    row.cells.push_back(cell);
    cell.clear();
    // A blank (or whitespace-only) line is no row: trailing newlines, spacer lines.
    bool blank = row.cells.size() == 1 && !row_has_content && trim(row.cells[0]).empty();
    if (!blank) rows.push_back(std::move(row));
    row = CsvRow{};
    row_has_content = false;
  };
  int quote_line = 0;
  while (i < n) {
    char c = text[i];
    if (in_quotes) {
      if (c == '"') {
        if (i + 1 < n && text[i + 1] == '"') {
          cell += '"';
          ++i;
        } else {
          in_quotes = false;
        }
      } else {
        if (c == '\n' || (c == '\r' && !(i + 1 < n && text[i + 1] == '\n'))) ++line;
        cell += c;
      }
      ++i;
      continue;
    }
    if (c == '"') {
      in_quotes = true;
      row_has_content = true;
      quote_line = line;
    } else if (c == ',') {
      row.cells.push_back(cell);
      cell.clear();
      row_has_content = true;
    } else if (c == '\r' || c == '\n') {
      if (c == '\r' && i + 1 < n && text[i + 1] == '\n') ++i;
      end_row();
      ++line;
      row.line = line;
    } else {
      cell += c;
    }
    ++i;
  }
  if (in_quotes) fail(path, ":", quote_line, ": unterminated quoted field");
  if (row_has_content || !trim(cell).empty()) end_row();
  return rows;
}

std::string trim(const std::string& s) {
  const char* ws = " \t\r\n\v\f";
  size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

bool parse_time(const std::string& s, double* out) {
  std::string t = trim(s);
  if (t.empty()) return false;
  // Only plain decimal notation: strtod would also take "nan", "inf" and hex floats.
  for (char c : t)
    if (!(std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '+' ||
          c == 'e' || c == 'E'))
      return false;
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(t.c_str(), &end);
  if (end != t.c_str() + t.size() || errno == ERANGE || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

namespace {

std::string find_audio_sibling(const fs::path& csv) {
  for (const char* ext : {".wav", ".flac", ".ogg", ".WAV", ".FLAC", ".OGG"}) {
    fs::path p = csv;
    p.replace_extension(ext);
    std::error_code ec;
    if (fs::is_regular_file(p, ec)) return p.string();
  }
  return "";
}

void sort_events(std::vector<AnnotatedEvent>& v) {
  std::stable_sort(v.begin(), v.end(), [](const AnnotatedEvent& a, const AnnotatedEvent& b) {
    return a.start < b.start || (a.start == b.start && a.end < b.end);
  });
}

}  // namespace

AnnotationFile read_annotations(const std::string& csv_path) {
  AnnotationFile af;
  af.csv_path = csv_path;
  fs::path p(csv_path);
  af.subset = p.parent_path().filename().string();
  if (af.subset.empty()) af.subset = fs::absolute(p).parent_path().filename().string();
  af.audio_path = find_audio_sibling(p);

  std::vector<CsvRow> rows = parse_csv(read_text(p), csv_path);
  if (rows.empty()) fail(csv_path, ": empty file, expected a header line");
  const CsvRow& header = rows[0];
  std::vector<std::string> names;
  for (const auto& c : header.cells) names.push_back(trim(c));
  static const char* kFixed[] = {"Audiofilename", "Starttime", "Endtime"};
  if (names.size() < 4 || names[0] != kFixed[0] || names[1] != kFixed[1] || names[2] != kFixed[2])
    fail(csv_path, ":", header.line,
         ": wrong header, expected Audiofilename,Starttime,Endtime,<CLASS>... (or ...,Q)");
  af.validation_layout = names.size() == 4 && names[3] == "Q";
  for (size_t c = 3; c < names.size(); ++c) {
    if (names[c].empty()) fail(csv_path, ":", header.line, ": empty class name in column ", c + 1);
    af.classes.push_back(names[c]);
  }
  if (af.validation_layout || (af.classes.size() == 1 && af.classes[0] == "CALL"))
    af.classes[0] = af.subset;
  for (const auto& cls : af.classes) {
    af.pos[cls];
    af.unk[cls];
  }

  for (size_t r = 1; r < rows.size(); ++r) {
    const CsvRow& row = rows[r];
    if (row.cells.size() < names.size())
      fail(csv_path, ":", row.line, ": too few columns (", row.cells.size(), ", expected ",
           names.size(), ")");
    AnnotatedEvent ev;
    if (!parse_time(row.cells[1], &ev.start))
      fail(csv_path, ":", row.line, ": Starttime '", trim(row.cells[1]), "' is not a number");
    if (!parse_time(row.cells[2], &ev.end))
      fail(csv_path, ":", row.line, ": Endtime '", trim(row.cells[2]), "' is not a number");
    if (ev.start > ev.end)
      fail(csv_path, ":", row.line, ": Starttime ", ev.start, " > Endtime ", ev.end);
    for (size_t c = 3; c < names.size(); ++c) {
      std::string v = trim(row.cells[c]);
      const std::string& cls = af.classes[c - 3];
      if (v == "POS") {
        af.pos[cls].push_back(ev);
      } else if (v == "UNK") {
        af.unk[cls].push_back(ev);
      } else if (v != "NEG" || af.validation_layout) {
        fail(csv_path, ":", row.line, ": column ", names[c], " has '", v, "', expected ",
             af.validation_layout ? "POS or UNK" : "POS, NEG or UNK");
      }
    }
  }
  for (auto& [cls, v] : af.pos) sort_events(v);
  for (auto& [cls, v] : af.unk) sort_events(v);
  return af;
}

std::vector<AnnotationFile> read_annotation_dir(const std::string& dir) {
  std::vector<AnnotationFile> out;
  for (const auto& p : list_files(dir, {".csv"})) out.push_back(read_annotations(p.string()));
  return out;
}

std::vector<AnnotatedEvent> negative_gaps(const std::vector<AnnotatedEvent>& pos_sorted,
                                          double min_gap) {
  std::vector<AnnotatedEvent> gaps;
  if (pos_sorted.empty()) return gaps;
  // The running maximum offset, not the previous event's: a long event may contain the next.
  double covered_until = pos_sorted[0].end;
  for (size_t i = 1; i < pos_sorted.size(); ++i) {
    const AnnotatedEvent& e = pos_sorted[i];
    if (e.start - covered_until >= min_gap) gaps.push_back({covered_until, e.start});
    covered_until = std::max(covered_until, e.end);
  }
  return gaps;
}

}  // namespace fsl
