// DCASE Task 5 annotation CSVs: the training layout (one POS/NEG/UNK column per class) and the
// validation layout (one `Q` column, POS/UNK), plus the small CSV reader both use.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace fsl {

// ---- plain CSV ---------------------------------------------------------------------------------

// One non-blank line of a CSV: its cells (quotes removed, "" unescaped, whitespace kept) and the
// 1-based line number where it starts, for error messages.
struct CsvRow {
  std::vector<std::string> cells;
  int line = 0;
};

// Parses CSV text: strips a UTF-8 BOM, accepts LF/CRLF/CR, quoted fields (with "" escapes and
// embedded newlines), skips blank or whitespace-only lines. `path` only names the file in errors
// (an unterminated quote is an error).
std::vector<CsvRow> parse_csv(const std::string& text, const std::string& path);

// Whitespace-trimmed copy of `s`.
std::string trim(const std::string& s);

// Parses a finite decimal number (surrounding whitespace allowed); false if `s` is anything else.
bool parse_time(const std::string& s, double* out);

// ---- annotation files --------------------------------------------------------------------------

struct AnnotatedEvent {
  double start = 0, end = 0;  // seconds
};

struct AnnotationFile {
  std::string csv_path;
  std::string audio_path;  // sibling .wav/.flac/.ogg with the csv's stem; "" if none exists
  std::string subset;      // the csv's parent directory name
  std::vector<std::string> classes;  // in column order; `CALL` alone is renamed to `subset`;
                                     // the validation layout's class is `subset` too
  // Per class, sorted by onset (then offset). Every class in `classes` has an entry (maybe empty).
  std::map<std::string, std::vector<AnnotatedEvent>> pos, unk;
  bool validation_layout = false;  // header was Audiofilename,Starttime,Endtime,Q
};

// Reads one annotation CSV (either layout). Errors (fsl::Error) name the file and line: wrong
// header, too few columns, non-numeric time, start > end, a cell that is not POS/NEG/UNK (POS/UNK
// in the validation layout).
AnnotationFile read_annotations(const std::string& csv_path);

// Every *.csv under `dir` (recursive), sorted by path, read with read_annotations.
std::vector<AnnotationFile> read_annotation_dir(const std::string& dir);

// Negatives of one class in one file: the gaps between consecutive POS events (sorted by onset),
// [end_i, start_{i+1}], kept when at least `min_gap` seconds long. Overlapping events give no gap.
std::vector<AnnotatedEvent> negative_gaps(const std::vector<AnnotatedEvent>& pos_sorted,
                                          double min_gap);

}  // namespace fsl
