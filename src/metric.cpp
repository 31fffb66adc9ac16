// Official DCASE Task 5 metric: reading, per-file counts, per-subset and overall scores.
#include "fsl/metric.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <random>
#include <set>

#include "fsl/annotations.hpp"
#include "fsl/error.hpp"
#include "fsl/fileio.hpp"

namespace fsl {

namespace {

constexpr double kMinEvalValue = 0.00001;  // MIN_EVAL_VALUE
constexpr int kShots = 5;                  // N_SHOTS
constexpr double kMinIou = 0.3;            // MIN_IOU_TH

struct RefRow {
  double start = 0, end = 0;
  std::string q;  // POS or UNK
};

struct RefFile {
  std::string audio;  // "<csv stem>.wav", the key the script looks predictions up by
  std::string subset, csv_path;
  std::vector<RefRow> rows;  // file order (the script's row labels)
};

std::vector<RefRow> read_ref_rows(const std::string& csv_path) {
  std::vector<CsvRow> rows = parse_csv(read_text(csv_path), csv_path);
  if (rows.empty()) fail(csv_path, ": empty file, expected a header line");
  std::vector<std::string> names;
  for (const auto& c : rows[0].cells) names.push_back(trim(c));
  if (names != std::vector<std::string>{"Audiofilename", "Starttime", "Endtime", "Q"})
    fail(csv_path, ":", rows[0].line,
         ": wrong header for a reference file, expected Audiofilename,Starttime,Endtime,Q");
  std::vector<RefRow> out;
  for (size_t r = 1; r < rows.size(); ++r) {
    const CsvRow& row = rows[r];
    if (row.cells.size() < 4)
      fail(csv_path, ":", row.line, ": too few columns (", row.cells.size(), ", expected 4)");
    RefRow rr;
    if (!parse_time(row.cells[1], &rr.start))
      fail(csv_path, ":", row.line, ": Starttime '", trim(row.cells[1]), "' is not a number");
    if (!parse_time(row.cells[2], &rr.end))
      fail(csv_path, ":", row.line, ": Endtime '", trim(row.cells[2]), "' is not a number");
    if (rr.start > rr.end)
      fail(csv_path, ":", row.line, ": Starttime ", rr.start, " > Endtime ", rr.end);
    rr.q = trim(row.cells[3]);
    if (rr.q != "POS" && rr.q != "UNK")
      fail(csv_path, ":", row.line, ": column Q has '", rr.q, "', expected POS or UNK");
    out.push_back(rr);
  }
  return out;
}

// The script's view of the reference: every entry of ref_dir is a subset (os.listdir), its files
// are glob(<subset>/*.csv), not recursive, hidden names skipped.
std::vector<RefFile> read_reference(const std::string& ref_dir) {
  std::error_code ec;
  if (!fs::is_directory(ref_dir, ec)) fail(ref_dir, ": reference directory does not exist");
  std::vector<fs::path> entries;
  for (const auto& e : fs::directory_iterator(ref_dir, ec)) entries.push_back(e.path());
  if (ec) fail(ref_dir, ": cannot list: ", ec.message());
  std::sort(entries.begin(), entries.end());
  std::vector<RefFile> files;
  std::map<std::string, std::string> subset_of_audio;
  for (const auto& entry : entries) {
    std::vector<fs::path> csvs;
    if (fs::is_directory(entry, ec))
      for (const auto& f : fs::directory_iterator(entry, ec)) {
        std::string name = f.path().filename().string();
        if (f.is_regular_file() && name.size() > 4 && name[0] != '.' &&
            name.compare(name.size() - 4, 4, ".csv") == 0)
          csvs.push_back(f.path());
      }
    if (csvs.empty())
      fail(ref_dir, ": entry '", entry.filename().string(),
           "' holds no .csv file (every entry of the reference dir is a subset; the official "
           "script fails on it)");
    std::sort(csvs.begin(), csvs.end());
    for (const auto& csv : csvs) {
      RefFile rf;
      std::string name = csv.filename().string();
      rf.audio = name.substr(0, name.size() - 4) + ".wav";
      rf.subset = entry.filename().string();
      rf.csv_path = csv.string();
      auto [it, fresh] = subset_of_audio.emplace(rf.audio, rf.subset);
      if (!fresh)
        fail(ref_dir, ": audio name ", rf.audio, " is in subsets ", it->second, " and ", rf.subset,
             " (the official script keys files by name)");
      rf.rows = read_ref_rows(rf.csv_path);
      files.push_back(std::move(rf));
    }
  }
  if (files.empty()) fail(ref_dir, ": no subset folders with reference CSVs");
  return files;
}

// evaluation.py's remove_shots_from_ref + compute_tp_fp_fn for one file with predictions.
FileScore count_file(const RefFile& ref, const std::vector<const Prediction*>& preds) {
  FileScore fs{ref.audio, ref.subset, 0, 0, 0};
  // sort_values('Starttime'): numpy's quicksort argsort of the float column.
  const auto& rows = ref.rows;
  std::vector<int> order = detail::numpy_quicksort_argsort(
      static_cast<int>(rows.size()), [&](int a, int b) { return rows[a].start < rows[b].start; });
  std::vector<int> pos_labels;  // row labels of POS rows, in sorted order
  for (int label : order)
    if (rows[label].q == "POS") pos_labels.push_back(label);
  if (pos_labels.size() < kShots)
    fail(ref.csv_path, ": has ", pos_labels.size(), " POS events, fewer than ", kShots,
         ", but predictions name ", ref.audio, " (the official script fails here)");
  // Quirk: the 5th POS's row LABEL is used as a POSITION (iloc) into the sorted table; for a
  // sorted CSV both agree.
  const double cutoff = rows[order[pos_labels[kShots - 1]]].end;
  std::vector<detail::Span> ref_pos, ref_unk;
  for (int label : order) {
    const RefRow& r = rows[label];
    if (r.end <= cutoff) continue;
    (r.q == "POS" ? ref_pos : ref_unk).push_back({r.start, r.end});
  }

  // Predictions are strings to pandas: sorted by their Starttime text, numpy quicksort.
  std::vector<int> porder =
      detail::numpy_quicksort_argsort(static_cast<int>(preds.size()), [&](int a, int b) {
        const Prediction& pa = *preds[a];
        const Prediction& pb = *preds[b];
        if (pa.start_text.empty() || pb.start_text.empty()) return pa.start < pb.start;
        return pa.start_text < pb.start_text;
      });
  std::vector<detail::Span> est;
  for (int i : porder) est.push_back({preds[i]->start, preds[i]->end});

  auto m_pos = detail::match_events(ref_pos, est, kMinIou);
  std::vector<char> matched(est.size(), 0);
  for (const auto& [r, e] : m_pos) matched[e] = 1;
  // Round 2 (unmatched predictions vs UNK): only its size is used, which every maximum
  // matching shares, so the script's set-ordered columns need no emulation.
  std::vector<detail::Span> rest;
  for (size_t e = 0; e < est.size(); ++e)
    if (!matched[e]) rest.push_back(est[e]);
  auto m_unk = detail::match_events(ref_unk, rest, kMinIou);

  fs.tp = static_cast<long>(m_pos.size());
  fs.fp = static_cast<long>(est.size()) - fs.tp - static_cast<long>(m_unk.size());
  fs.fn = static_cast<long>(ref_pos.size()) - fs.tp;
  return fs;
}

std::string fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace

std::vector<Prediction> read_predictions(const std::string& csv_path) {
  std::vector<CsvRow> rows = parse_csv(read_text(csv_path), csv_path);
  if (rows.empty())
    fail(csv_path, ": empty file, expected the header Audiofilename,Starttime,Endtime");
  if (rows[0].cells != std::vector<std::string>{"Audiofilename", "Starttime", "Endtime"})
    fail(csv_path, ":", rows[0].line,
         ": wrong header, it must be exactly Audiofilename,Starttime,Endtime");
  std::vector<Prediction> out;
  for (size_t r = 1; r < rows.size(); ++r) {
    const CsvRow& row = rows[r];
    if (row.cells.size() < 3)
      fail(csv_path, ":", row.line, ": too few columns (", row.cells.size(), ", expected 3)");
    if (row.cells.size() > 3)
      fail(csv_path, ":", row.line, ": too many columns (", row.cells.size(), ", expected 3)");
    Prediction p;
    p.file = row.cells[0];
    if (trim(p.file).empty()) fail(csv_path, ":", row.line, ": empty Audiofilename");
    if (!parse_time(row.cells[1], &p.start))
      fail(csv_path, ":", row.line, ": Starttime '", row.cells[1], "' is not a number");
    if (!parse_time(row.cells[2], &p.end))
      fail(csv_path, ":", row.line, ": Endtime '", row.cells[2], "' is not a number");
    if (p.start > p.end)
      fail(csv_path, ":", row.line, ": Starttime ", p.start, " > Endtime ", p.end);
    p.start_text = row.cells[1];
    out.push_back(std::move(p));
  }
  return out;
}

SubsetScore subset_score(const std::string& name, long tp, long fp, long fn) {
  SubsetScore s{name, tp, fp, fn, 0, 0, 0};
  const double dtp = static_cast<double>(tp);
  s.precision = tp + fp != 0 ? dtp / static_cast<double>(tp + fp) : kMinEvalValue;
  if (s.precision < kMinEvalValue) s.precision = kMinEvalValue;
  s.recall = tp != 0 ? dtp / static_cast<double>(fn + tp) : kMinEvalValue;
  // The script's F = tp / (tp + (fp + fn) / 2), equal to 2PR/(P+R) up to rounding.
  s.fmeasure = tp != 0 ? dtp / (dtp + 0.5 * static_cast<double>(fp + fn)) : kMinEvalValue;
  return s;
}

void set_overall(Scores& s) {
  auto hmean = [&](double SubsetScore::*field) {
    double inv = 0;
    for (const auto& sub : s.subsets) inv += 1.0 / (sub.*field);
    return static_cast<double>(s.subsets.size()) / inv;
  };
  if (s.subsets.empty()) fail("no subsets to score");
  s.precision = hmean(&SubsetScore::precision);
  s.recall = hmean(&SubsetScore::recall);
  s.fmeasure = hmean(&SubsetScore::fmeasure);
  s.fmeasure_percent = std::nearbyint(s.fmeasure * 100 * 1000) / 1000;  // np.round(x, 3)
}

Scores score_predictions(const std::string& ref_dir, const std::vector<Prediction>& predictions) {
  std::vector<RefFile> refs = read_reference(ref_dir);
  std::map<std::string, size_t> index_of_audio;
  for (size_t i = 0; i < refs.size(); ++i) index_of_audio[refs[i].audio] = i;
  std::vector<std::vector<const Prediction*>> preds_of(refs.size());
  for (const auto& p : predictions) {
    auto it = index_of_audio.find(p.file);
    if (it == index_of_audio.end())
      fail("prediction for '", p.file, "', which is not a reference file in ", ref_dir,
           " (expected <csv stem>.wav; the official script fails here)");
    preds_of[it->second].push_back(&p);
  }
  Scores scores;
  std::map<std::string, SubsetScore> sums;
  for (size_t i = 0; i < refs.size(); ++i) {
    FileScore f;
    if (preds_of[i].empty()) {  // no prediction: FN = all POS rows, the shots included
      f = FileScore{refs[i].audio, refs[i].subset, 0, 0, 0};
      for (const auto& r : refs[i].rows) f.fn += r.q == "POS";
    } else {
      f = count_file(refs[i], preds_of[i]);
    }
    SubsetScore& sum = sums[f.subset];
    sum.tp += f.tp;
    sum.fp += f.fp;
    sum.fn += f.fn;
    scores.files.push_back(f);
  }
  for (const auto& [name, sum] : sums)
    scores.subsets.push_back(subset_score(name, sum.tp, sum.fp, sum.fn));
  set_overall(scores);
  return scores;
}

std::string format_scores_table(const Scores& s) {
  auto line = [](const std::string& name, const std::string& tp, const std::string& fp,
                 const std::string& fn, double p, double r, double f) {
    char buf[256];
    std::snprintf(buf, sizeof buf, "%-12s %8s %8s %8s %10.3f %10.3f %10.3f\n", name.c_str(),
                  tp.c_str(), fp.c_str(), fn.c_str(), 100 * p, 100 * r, 100 * f);
    return std::string(buf);
  };
  char head[256];
  std::snprintf(head, sizeof head, "%-12s %8s %8s %8s %10s %10s %10s\n", "subset", "TP", "FP", "FN",
                "P(%)", "R(%)", "F(%)");
  std::string out = head;
  long tp = 0, fp = 0, fn = 0;
  for (const auto& sub : s.subsets) {
    out += line(sub.name, std::to_string(sub.tp), std::to_string(sub.fp), std::to_string(sub.fn),
                sub.precision, sub.recall, sub.fmeasure);
    tp += sub.tp;
    fp += sub.fp;
    fn += sub.fn;
  }
  // The overall row: summed counts for reference, scores are the harmonic means of the subsets.
  out += line("overall", std::to_string(tp), std::to_string(fp), std::to_string(fn), s.precision,
              s.recall, s.fmeasure);
  return out;
}

std::string scores_json(const Scores& s) {
  std::string out = "{\n  \"subsets\": {";
  for (size_t i = 0; i < s.subsets.size(); ++i) {
    const auto& sub = s.subsets[i];
    out += i ? ",\n    " : "\n    ";
    out += json_string(sub.name) + ": {\"tp\": " + std::to_string(sub.tp) +
           ", \"fp\": " + std::to_string(sub.fp) + ", \"fn\": " + std::to_string(sub.fn) +
           ", \"precision\": " + fmt("%.17g", sub.precision) +
           ", \"recall\": " + fmt("%.17g", sub.recall) +
           ", \"fmeasure\": " + fmt("%.17g", sub.fmeasure) + "}";
  }
  out += "\n  },\n  \"overall\": {\"precision\": " + fmt("%.17g", s.precision) +
         ", \"recall\": " + fmt("%.17g", s.recall) + ", \"fmeasure\": " + fmt("%.17g", s.fmeasure) +
         ", \"fmeasure_percent\": " + fmt("%.3f", s.fmeasure_percent) + "}\n}\n";
  return out;
}

Interval bootstrap_fmeasure(const Scores& s, int n_resamples, unsigned long long seed) {
  if (n_resamples < 1) fail("bootstrap: the number of resamples must be >= 1");
  std::map<std::string, std::vector<const FileScore*>> files_of;
  for (const auto& f : s.files) files_of[f.subset].push_back(&f);
  std::mt19937_64 rng(seed);
  std::vector<double> fs;
  for (int b = 0; b < n_resamples; ++b) {
    Scores sample;
    for (const auto& [name, files] : files_of) {
      long tp = 0, fp = 0, fn = 0;
      std::uniform_int_distribution<size_t> pick(0, files.size() - 1);
      for (size_t k = 0; k < files.size(); ++k) {
        const FileScore* f = files[pick(rng)];
        tp += f->tp;
        fp += f->fp;
        fn += f->fn;
      }
      sample.subsets.push_back(subset_score(name, tp, fp, fn));
    }
    set_overall(sample);
    fs.push_back(sample.fmeasure);
  }
  std::sort(fs.begin(), fs.end());
  auto percentile = [&](double q) {  // numpy's default "linear" method
    double pos = q / 100 * static_cast<double>(fs.size() - 1);
    size_t lo = static_cast<size_t>(std::floor(pos));
    size_t hi = std::min(lo + 1, fs.size() - 1);
    return fs[lo] + (pos - static_cast<double>(lo)) * (fs[hi] - fs[lo]);
  };
  Interval iv;
  iv.low = percentile(2.5);
  iv.high = percentile(97.5);
  double sum = 0;
  for (double f : fs) sum += f;
  iv.mean = sum / static_cast<double>(fs.size());
  return iv;
}

}  // namespace fsl
