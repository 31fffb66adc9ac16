// Few-shot detection on one annotated file (docs/REFERENCE.md §7): the first n_shot POS rows are the
// shots; every later frame/window gets p(pos) from prototypes; thresholds + post-processing turn
// p into events. Two methods share everything after p:
//   - detect_with_embedder: windows of an adaptive length embedded by an Embedder (the encoder),
//   - detect_frame_prototype: the no-training floor, one z-scored feature frame = one query.
// Features are read through a memory map and released as they are consumed: memory does not grow
// with the file's length (only p, one float per query step, is kept).
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "fsl/annotations.hpp"
#include "fsl/config.hpp"
#include "fsl/metric.hpp"

namespace fsl {

// The DCASE protocol gives exactly 5 shots per file (the metric cuts at the 5th POS), whatever
// train_param.n_shot the encoder was trained with.
constexpr int kDetectionShots = 5;


// An event in seconds [start, end]: the annotations' type, reused for detected events.
using EventSpan = AnnotatedEvent;

// What the detector needs to know about one file.
struct DetectFile {
  std::string name;            // Audiofilename written to the output CSV
  std::string feature_path;    // (frames, n_mels) float32 .npy
  std::vector<EventSpan> pos;  // POS rows in CSV order (the first n_shot are the shots)
};

// A shot in frames, [begin, end), with the 25 ms margins (floor of time * frame rate, as the
// Python system), clamped to [0, n_frames] and at least one frame long.
struct FrameSpan {
  long begin = 0, end = 0;
  long length() const { return end - begin; }
};
std::vector<FrameSpan> shot_frames(const std::vector<EventSpan>& shots, double frame_rate,
                                   long n_frames, double margin_s = 0.025);

// Adaptive segment length (frames) from the longest shot, and the query hop.
// max_len < 8 -> 8; < len_lim -> max_len; < 2*len_lim -> max_len/2; < 500 -> max_len/4;
// else max_len/8. hop = max(1, seg / hoplen_fenmu).
struct SegmentPlan {
  int seg = 0, hop = 0;
};
SegmentPlan adaptive_segment(long max_len, int len_lim, int hoplen_fenmu);

// Start frames of the seg-long windows covering a shot [begin, end) at `hop`; the last window is
// aligned to the shot's end. A shot shorter than seg gives one window at `begin` (to be tiled).
std::vector<long> shot_window_starts(FrameSpan shot, int seg, int hop);

// p(pos) of one file on a regular grid: step i covers [start_s + i*step_s, + extent_s].
struct FileScores {
  std::string name;
  std::vector<float> p;
  double start_s = 0;          // end of the last shot (frames * hop_mel / sr)
  double step_s = 0;           // seconds between consecutive p values
  double extent_s = 0;         // seconds covered by one step (window length; one frame: 1/fps)
  double duration_s = 0;       // file length; events are clipped to it
  double shortest_shot_s = 0;  // with margins
  double min_run_s = 0;        // method's own minimum event length (floor: half shortest shot)
  double mean_shot_s = 0;      // mean annotated length of the shots (0 = unknown)
};

// The result of running a method on one file.
struct FileResult {
  FileScores scores;     // p empty = no predictions for this file
  std::string warning;   // non-empty: why this file has no predictions
  bool skipped = false;  // fewer than n_shot POS rows: not scored at all
};

// Turns windows into embeddings. `windows` is (B, T, M) row-major, `out` is (B, dim()).
struct Embedder {
  virtual ~Embedder() = default;
  virtual int dim() const = 0;
  virtual void embed(const float* windows, int B, int T, int M, float* out) = 0;
  // Per-file input normalisation (eval.normalise = file | file_band): x' = (x - mean[m]) *
  // inv_std[m] per mel band m until the next call; empty vectors restore the embedder's own.
  virtual void set_file_normalisation(const std::vector<float>& mean,
                                      const std::vector<float>& inv_std) {
    (void)mean;
    (void)inv_std;
  }
  // eval.shared_maps (optional; map_stride() == 0: not offered): the last feature maps of B runs
  // of T frames, maps (B, map_floats(T)), row r of a run covering its frames [r s, (r + 1) s)
  // for s = map_stride(); pool_rows() then embeds a window from `rows` rows of one run's maps.
  virtual int map_stride() const { return 0; }
  virtual size_t map_floats(int T) const {
    (void)T;
    return 0;
  }
  virtual void run_maps(const float* runs, int B, int T, int M, float* maps);
  virtual void pool_rows(const float* maps, int T, int r0, int rows, float* out) const;
};

// The encoder (eval mode) as an Embedder; input normalised (on the host) with the training
// mean/std of the feature type. runtime.device resolved for detection picks the forward: cpu =
// EncoderInference, cuda = a CUDA TrainBackend's embed() in batches (no shared maps). Throws
// Error naming the checkpoint when it is missing or unreadable, and naming runtime.device when
// cuda is asked for without a usable device.
template <typename T>
class EncoderT;
class EncoderInference;
class TrainBackend;
class EncoderEmbedder : public Embedder {
 public:
  EncoderEmbedder(const Config& cfg, const std::string& checkpoint, double mean, double std);
  ~EncoderEmbedder() override;
  int dim() const override;
  void embed(const float* windows, int B, int T, int M, float* out) override;
  void set_file_normalisation(const std::vector<float>& mean,
                              const std::vector<float>& inv_std) override;
  int map_stride() const override;
  size_t map_floats(int T) const override;
  void run_maps(const float* runs, int B, int T, int M, float* maps) override;
  void pool_rows(const float* maps, int T, int r0, int rows, float* out) const override;

 private:
  void build(int max_frames);
  const float* normalise(const float* x, int B, int T, int M);
  Config config_;  // the CUDA backend is built from a whole Config
  const FeaturesConfig& cfg_ = config_.features;
  std::string checkpoint_;
  int requested_batch_, threads_;  // eval.batch_size; runtime.num_workers
  int max_frames_ = 0;             // the longest window the current build takes
  float mean_, inv_std_;
  std::vector<float> file_mean_, file_inv_std_;  // (n_mels) when a per-file normalisation is set
  std::unique_ptr<EncoderT<float>> encoder_;
  std::unique_ptr<EncoderInference> infer_;
  bool on_gpu_ = false;  // runtime.device = cuda: gpu_ instead of encoder_, infer_
  std::unique_ptr<TrainBackend> gpu_;
  int gpu_batch_ = 0;  // windows per gpu_ forward
  std::vector<float> normalised_;
};

// Encoder path: shots -> positive prototype, unlabelled audio before the last shot's end ->
// eval.neg_iterations negative prototypes (eval.neg_windows random windows each, seeded by
// eval.seed + file_index), queries from the last shot's end at the hop, p averaged over the
// iterations; or, with eval.negatives = nearest, p from the eval.neg_nearest_k nearest of all the
// drawn negative windows (see EvalConfig). Throws Error on an unreadable feature file.
FileResult detect_with_embedder(const DetectFile& file, const Config& cfg, Embedder& embedder,
                                int file_index);

// Floor: per-file z-scored frames, prototypes = mean frame in shots / in the background before
// the last shot's end, p per later frame, moving average over half the shortest shot.
FileResult detect_frame_prototype(const DetectFile& file, const Config& cfg);

// Post-processing parameters (config `eval`).
struct PostProcess {
  double min_len_frac = 0.3;  // of the shortest shot
  double min_len_s = 0.05;
  double merge_gap_s = 0.0;  // 0 = no merging
  bool fit_to_shots = false;  // eval.boundaries = shots
  bool merge_overlaps = false;  // merge events that overlap (windows longer than their hop)
  static PostProcess from(const EvalConfig& e);
};

// Runs of p > threshold become events [start + first*step, start + last*step + extent], clipped
// to the file; events shorter than max(min_len_frac * shortest shot, min_len_s, min_run_s) are
// dropped, then events separated by less than merge_gap_s (or overlapping, with merge_overlaps)
// are merged. With fit_to_shots and overlapping steps (extent > step: encoder windows) longer
// than the mean shot, each kept run [on, off] is first narrowed around its centre to
// max(mean shot, off - on - 2 * (extent - mean shot)).
std::vector<EventSpan> decide_events(const FileScores& s, double threshold, const PostProcess& pp);

// The output time of the start of feature frame `frame` (eval.frame_times).
double frame_start_time(long frame, const Config& cfg);

// Every file's p with its timing, as text (one header line, then per file a line of
// `name start_s step_s extent_s duration_s shortest_shot_s min_run_s mean_shot_s n` and a line of
// its n values of p), so post-processing can be rerun without the encoder (fsl_eval
// --from-scores). Names must not contain whitespace.
std::string file_scores_text(const std::vector<FileScores>& files);
// Parses file_scores_text's format; an error names `origin`, the line and what is wrong.
std::vector<FileScores> parse_file_scores(const std::string& text, const std::string& origin);

// Every file's events at one threshold (the metric's Prediction, start_text = the CSV's text),
// sorted by file then onset.
std::vector<Prediction> predictions_at(const std::vector<FileScores>& files, double threshold,
                                       const PostProcess& pp);

// The CSV text: header "Audiofilename,Starttime,Endtime", times with 3 decimals.
std::string predictions_csv(const std::vector<Prediction>& preds);

// One threshold's predictions scored against a reference dir (<SUBSET>/<file>.csv).
struct ThresholdScore {
  double threshold = 0;
  std::vector<Prediction> predictions;
  Scores scores;
};
// p is computed once; each threshold only re-decides events and re-scores them.
std::vector<ThresholdScore> score_thresholds(const std::vector<FileScores>& files,
                                             const std::vector<double>& thresholds,
                                             const PostProcess& pp, const std::string& ref_dir);
// Index of the highest overall F (the lowest threshold among equals).
size_t best_threshold(const std::vector<ThresholdScore>& results);

// 0.00, 0.05, ..., 0.95.
std::vector<double> sweep_thresholds();

// "%.2f" of a threshold: the name of its output folder.
std::string threshold_name(double threshold);

// Moving average over `width` values centred on each index (window clipped at the ends).
std::vector<float> moving_average(const std::vector<float>& x, int width);

class NpyMap;
namespace detail {
// Drops the resident pages of rows [row_begin, row_end) of a mapped feature file (they are read
// again on demand): what keeps a 10-hour file from filling memory as it is streamed.
void release_rows(const NpyMap& map, size_t row_begin, size_t row_end);

// The checks both methods share: >= n_shot POS rows (else result.skipped), shots inside the
// features, some background before the last shot's end, audio after it. Fills the shots in
// frames, the first query frame (the n_shot-th shot's end) and the background frame count;
// returns false with result.warning set when the file gets no predictions.
bool prepare_shots(const DetectFile& file, const Config& cfg, long n_frames,
                   std::vector<FrameSpan>& shots, long& query_begin, long& background_frames,
                   FileResult& result);

// Sorted, merged copy of spans.
std::vector<FrameSpan> merge_spans(const std::vector<FrameSpan>& spans);

// The file's input normalisation for eval.normalise = file | file_band, streamed over the mapped
// features: per band (file_band) or one value for all bands (file), inv_std = 1/std (1 where the
// std is ~0). Both empty for eval.normalise = train.
void file_normalisation(const NpyMap& map, const std::string& mode, std::vector<float>& mean,
                        std::vector<float>& inv_std);

// Squared Euclidean distance of two d-vectors, accumulated in double.
double squared_distance(const float* a, const float* b, int d);
// Mean of the k smallest values of d (all of them when fewer; k < 1 counts as 1); reorders d.
double mean_smallest(std::vector<double>& d, int k);

}  // namespace detail

}  // namespace fsl
