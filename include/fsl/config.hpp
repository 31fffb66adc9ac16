// Typed configuration, filled from YAML (conf/config.yaml) plus `section.key=value` overrides.
// The keys and defaults are the Python system's (see docs/REFERENCE.md); an unknown key, a value of
// the wrong type or an invalid choice is an Error that names the key.
#pragma once
#include <string>
#include <vector>

namespace fsl {

struct FeaturesConfig {
  double eps = 1e-8;            // logmel = log(mel + eps)
  double fmax = 11025;          // Hz
  double fmin = 50;             // Hz
  int sr = 22050;               // Hz, audio is resampled to this
  int n_fft = 1024;
  int n_mels = 128;
  int hop_mel = 256;
  std::string feature_types = "logmel";  // one or more of logmel, pcen joined by '@'
  std::string pad_mode = "constant";     // STFT centre padding: constant | reflect
  // PCEN (librosa.pcen defaults)
  double pcen_gain = 0.98;
  double pcen_bias = 2.0;
  double pcen_power = 0.5;
  double pcen_time_constant = 0.4;  // seconds
  double pcen_eps = 1e-6;
  bool pcen_baseline_hop = false;  // true: smoother assumes hop 512 as the Python baseline did
  // encoder
  int embedding_dim = 2048;
  double drop_rate = 0.1;
  bool with_bias = false;
  std::string non_linearity = "leaky_relu";  // leaky_relu | relu
  int time_max_pool_dim = 4;
  bool layer_4 = false;
  std::string arch = "v1";  // v1 | v2 (channel attention)
  // detection
  int test_seglen_len_lim = 30;
  int test_hoplen_fenmu = 3;

  std::vector<std::string> types() const;  // feature_types split on '@'
  double frame_rate() const { return double(sr) / hop_mel; }
};

struct TrainConfig {
  double seg_len = 0.2;  // seconds
  int n_shot = 5;
  int k_way = 10;
  double lr_rate = 1e-3;
  double scheduler_gamma = 0.65;
  int scheduler_step_size = 10;  // epochs
  int num_episodes = 2000;       // per epoch
  int val_episodes = 100;        // validation episodes per epoch
  int max_epochs = 50;
  int patience = 10;  // early stopping on validation accuracy
  bool negative_train_contrast = true;
  std::string load_weight_from;          // checkpoint path, empty = none
  std::string short_segment = "tile";    // tile | pad
  std::string source = "files";          // files | synth_online | mixed (alternating)
  // synth_online ablation: comma-separated randomisations to turn off, any of classes (plain
  // class space), confuser (same-band confusers), callers (other callers), background
  // (bursts, chorus, level swings), channel (EQ, band limits, reverb, gain, clipping), lowrate
  // (scenes recorded at 16 / 11.025 kHz). Empty: everything on.
  std::string synth_without = "";
  int seed = 42;

  std::vector<std::string> synth_without_list() const;  // validated names, in order
};

struct PathConfig {
  std::string root_dir = ".";
  std::string train_dir = "data/synth/small/Training_Set";
  std::string eval_dir = "data/synth/small/Validation_Set";
  std::string test_dir = "";
  std::string work_dir = "runs";  // runs/<exp_name>/...
};

struct RuntimeConfig {
  std::string device = "auto";  // auto | cpu | cuda, per stage: see resolve_device
  int num_workers = 2;          // threads
  int prefetch_factor = 2;
  bool tf32 = false;  // GPU training: allow TF32 tensor cores (faster, ~1e-3 relative)
};
// The stages that may run on the GPU, each resolving runtime.device on its own.
enum class Stage { features, training, detection };
// runtime.device resolved for one stage: "cpu" for cpu; "cuda" for cuda when a device is usable,
// else an Error naming the key and why. auto: "cuda" for features when a device is usable (the
// GPU front end has been checked against the CPU on a GPU), "cpu" for training and detection
// (their GPU paths have not yet passed tests/gpu_train.cpp on a GPU: only an explicit cuda
// uses it).
std::string resolve_device(const RuntimeConfig& runtime, Stage stage);

struct EvalConfig {
  std::string method = "encoder";  // encoder | frame_prototype (no-training floor)
  std::string checkpoint = "";     // default runs/<exp_name>/best.safetensors
  double threshold = 0.5;
  bool sweep = true;             // sweep thresholds 0.00..0.95 by 0.05
  double min_len_frac = 0.3;     // drop events shorter than this fraction of the shortest shot
  double min_len_s = 0.05;       // and shorter than this many seconds
  double merge_gap_s = 0.0;      // merge events closer than this (0 = off)
  bool merge_overlaps = true;    // merge events that overlap each other (encoder windows)
  int neg_iterations = 3;
  int neg_windows = 150;
  // prototypes: p = softmax(-d_pos, -d_neg) per negative prototype (the mean of neg_windows
  // windows), averaged over neg_iterations (the baseline). nearest: d_neg = mean distance to the
  // neg_nearest_k nearest of all drawn negative windows, p = d_neg / (d_pos + d_neg).
  // nearest is the default: it scored higher on the synthetic and on the real recordings
  // (bench/LOG.md, "Negatives at detection").
  std::string negatives = "nearest";
  int neg_nearest_k = 5;
  // d_pos with negatives = nearest: 0 = distance to the mean of every shot window (the positive
  // prototype); k > 0 = mean distance to the k nearest shot windows.
  int pos_nearest_k = 0;
  // Encoder input normalisation: train = the training set's global mean/std (the baseline);
  // file_band = each file's own mean/std per mel band (removes a recorder's fixed EQ and noise
  // floor).
  std::string normalise = "train";
  // Event boundaries of a run of positive windows: window = from the first window's start to the
  // last window's end (the baseline); shots = where the windows are longer than the file's shots,
  // the run is trimmed by (window - mean shot length) at each end, never below one mean shot
  // length, around its centre (a call shorter than the window otherwise yields an event about
  // two windows long, which the metric's IoU >= 0.3 rejects).
  std::string boundaries = "shots";
  // Query windows from shared maps: the encoder runs once over long runs of the query frames and
  // each window is pooled from the rows of the last maps under it (each frame goes through the
  // convolutions once instead of once per window that holds it); not the per-window forward: a window's edges see its
  // neighbouring frames instead of zero padding, and its start is rounded to the map stride (8
  // frames). Used only in files whose hop is at least one stride (segments >= 24 frames); shots
  // and negatives are still embedded window by window. v1 encoders only.
  bool shared_maps = false;
  // true: detection as the Python baseline decides (negatives = prototypes, boundaries = window,
  // frame_times = start, merge_overlaps = false), overriding those four keys.
  bool baseline = false;
  // Time of a feature frame in the output: centre = frame t covers [t - 1/2, t + 1/2) hops (the
  // STFT's frames are centred on t * hop_mel, so a run of frames [a, b) starts at (a - 1/2) hops);
  // start = t hops (the baseline's onset = index * hop / sr, half a frame late).
  std::string frame_times = "centre";
  int batch_size = 256;  // windows embedded at once
  int seed = 0;
};

struct Config {
  std::string exp_name = "default";
  FeaturesConfig features;
  TrainConfig train_param;
  PathConfig path;
  RuntimeConfig runtime;
  EvalConfig eval;

  // Loads `yaml_path`, applies `overrides` ("section.key=value" or "exp_name=..."), validates.
  static Config load(const std::string& yaml_path, const std::vector<std::string>& overrides = {});
  // Same from YAML text (tests); `origin` names the source in errors.
  static Config from_string(const std::string& yaml_text,
                            const std::vector<std::string>& overrides = {},
                            const std::string& origin = "<string>");
  // The resolved configuration as YAML, every key.
  std::string to_yaml() const;
  // Paths in the config are relative to path.root_dir (itself relative to the working dir).
  std::string resolve(const std::string& p) const;
  std::string run_dir() const;  // path.work_dir/exp_name
};

}  // namespace fsl
