// The official DCASE Task 5 event-based F-measure (evaluation_metrics/evaluation.py + metrics.py
// of c4dm/dcase-few-shot-bioacoustic), reproduced with its quirks; see docs/REFERENCE.md §8.
#pragma once
#include <functional>
#include <string>
#include <vector>

namespace fsl {

struct Prediction {
  std::string file;  // Audiofilename as written in the CSV (the script wants "<csv stem>.wav")
  double start = 0, end = 0;
  // The Starttime cell as written. The script reads predictions as strings and sorts a file's
  // predictions by this TEXT (so "10.0" < "9.0"); the order decides which maximum matching is
  // found. Empty: sorted by `start`. read_predictions fills it; to get the script's numbers for
  // predictions held in memory, set it to the text the CSV writer writes.
  std::string start_text;
};

// Reads a prediction CSV. The header must be exactly `Audiofilename,Starttime,Endtime`; a row
// with an empty file name, too few columns, a non-numeric time or start > end is an Error naming
// the file and line. Blank lines are skipped; an empty table is fine.
std::vector<Prediction> read_predictions(const std::string& csv_path);

struct SubsetScore {
  std::string name;
  long tp = 0, fp = 0, fn = 0;
  double precision = 0, recall = 0, fmeasure = 0;  // fractions, with the script's 1e-5 floors
};

struct FileScore {    // counts of one reference file, as the script's counts_per_audiofile
  std::string audio;  // "<csv stem>.wav"
  std::string subset;
  long tp = 0, fp = 0, fn = 0;
};

struct Scores {
  std::vector<SubsetScore> subsets;                // sorted by name
  std::vector<FileScore> files;                    // sorted by subset, then name
  double precision = 0, recall = 0, fmeasure = 0;  // harmonic means over the subsets
  double fmeasure_percent = 0;  // the script's "fmeasure (percentage)": round(100 F, 3 decimals)
};

// Scores predictions against the reference dir `ref_dir`/<SUBSET>/<file>.csv (validation
// layout). Errors (fsl::Error), where the official script fails: a prediction for a file not in
// the reference, a top-level entry of `ref_dir` without CSVs, predictions for a reference file
// with fewer than 5 POS; also malformed reference CSVs and an audio name in two subsets.
Scores score_predictions(const std::string& ref_dir, const std::vector<Prediction>& predictions);

// The per-subset P/R/F of summed counts, with the script's floors (compute_scores_from_counts).
SubsetScore subset_score(const std::string& name, long tp, long fp, long fn);

// Subset scores -> overall harmonic means (fills precision/recall/fmeasure/fmeasure_percent).
void set_overall(Scores& s);

// Table: one row per subset (TP FP FN precision recall F, in percent), last row `overall`.
std::string format_scores_table(const Scores& s);

// {"subsets":{"<name>":{"tp":..,"fp":..,"fn":..,"precision":..,"recall":..,"fmeasure":..}},
//  "overall":{"precision":..,"recall":..,"fmeasure":..,"fmeasure_percent":..}}, fractions, %.17g.
std::string scores_json(const Scores& s);

// 95% interval (2.5 and 97.5 percentiles, numpy's linear interpolation) of the overall F over
// `n_resamples` bootstrap samples: within each subset its files are drawn with replacement (so
// every subset stays present), counts summed, scores recomputed. Seeded, deterministic.
struct Interval {
  double low = 0, high = 0, mean = 0;
};
Interval bootstrap_fmeasure(const Scores& s, int n_resamples, unsigned long long seed);

namespace detail {

struct Span {
  double on = 0, off = 0;
};

// numpy's argsort(kind="quicksort") (introsort: median-of-3 quicksort, insertion sort below 17
// elements, heapsort past the depth limit), which is not stable: equal keys land where numpy
// puts them. pandas' sort_values uses it.
std::vector<int> numpy_quicksort_argsort(int n, const std::function<bool(int, int)>& less);

// metrics.match_events(ref, est, min_iou): edges where the closed spans intersect and
// IoU > min_iou, in (ref, est) order; mir_eval's Hopcroft-Karp (_bipartite_match) on the graph
// est -> refs. Returns (ref, est) pairs sorted by ref.
std::vector<std::pair<int, int>> match_events(const std::vector<Span>& ref,
                                              const std::vector<Span>& est, double min_iou);

}  // namespace detail

}  // namespace fsl
