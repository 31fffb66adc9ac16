// Synthetic development sets in the DCASE Task 5 layout, and the pieces to build episodes in
// memory: parametric animal-like call classes, non-stationary backgrounds, whole labelled files.
// Everything is driven by explicitly seeded std::mt19937_64 generators, so a seed gives the same
// bytes whatever the thread count.
#pragma once
#include <array>
#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace fsl {

enum class SynthScale { tiny, small, full };
SynthScale parse_synth_scale(const std::string& name);  // throws Error naming the bad value
const char* to_string(SynthScale scale);

struct SynthOptions {
  uint64_t seed = 1;
  SynthScale scale = SynthScale::tiny;
  bool randomise = false;  // domain randomisation: wider class space, room/channel effects
  int threads = 0;         // 0: std::thread::hardware_concurrency()
  bool show_progress = true;
};

// ---- calls (src/synth_calls.cpp) -------------------------------------------------------------
enum class CallShape { sweep, harmonic, trill, pulse_train, click, noisy };
enum class Contour { up, down, u, inverted_u, step, flat };
const char* to_string(CallShape shape);
const char* to_string(Contour contour);

// One call type. An instance is the class plus per-instance jitter of duration, pitch and
// contour curvature (render_call draws it).
struct CallClass {
  std::string name;
  CallShape shape = CallShape::sweep;
  Contour contour = Contour::up;
  double f_lo = 1000, f_hi = 2000;  // Hz: range of the fundamental's contour (click/noisy: band)
  double duration = 0.2;            // s, median instance duration
  double duration_jitter = 0.1;     // sd of log duration
  double pitch_jitter = 0.03;       // sd of log pitch (whole contour shifted)
  double shape_jitter = 0.1;        // sd of log contour curvature exponent
  int partials = 1;                 // harmonics, fundamental included (<= 6)
  std::array<float, 6> partial_amp{1, 0, 0, 0, 0, 0};
  double mod_rate = 0;      // trill: AM/FM rate Hz; pulse train / click: pulses per second
  double mod_depth = 0;     // trill: AM depth (0..1) or FM depth (fraction of f)
  bool fm_trill = false;    // trill modulates frequency rather than amplitude
  double pulse_len = 0.01;  // s, one pulse or click
  std::array<float, 4> rhythm{1, 1, 1, 1};  // relative inter-pulse intervals, cycled
  double rhythm_jitter = 0.05;              // sd of relative inter-pulse interval
  double attack = 0.1, release = 0.2;       // fractions of the duration (raised-cosine ramps)
};

// Band (Hz) that holds the energy of every instance (jitter and partials included).
std::pair<double, double> call_band(const CallClass& c);

// A random class. `max_hz` bounds the band (use < 0.45 sr of the files that will hold it).
CallClass draw_class(std::mt19937_64& rng, const SynthOptions& opt, double max_hz = 11000);

// A class in the same band as `target` with another time-frequency shape (other contour, other
// shape, or another modulation/pulse rate): a distractor that band energy cannot tell apart.
CallClass draw_confuser(const CallClass& target, std::mt19937_64& rng, const SynthOptions& opt);

// One instance at `sr`, unit RMS (over its own length). Length = jittered duration * sr.
std::vector<float> render_call(const CallClass& c, std::mt19937_64& rng, int sr);

// ---- backgrounds and effects (src/synth_background.cpp) --------------------------------------
enum class NoiseColour { white, pink, brown };

struct BackgroundSpec {
  NoiseColour colour = NoiseColour::pink;
  double level_swing_db = 3;      // slow level changes: +-swing, knots every few seconds
  double rain_per_min = 0;        // bursts of rain-like noise (broadband, droplet clicks)
  double wind_per_min = 0;        // bursts of wind-like noise (low, slowly modulated)
  double burst_db = 6;            // burst level above the bed
  std::vector<CallClass> chorus;  // faint callers, unlabelled
  double chorus_per_s = 0;
  double chorus_db = -6;  // chorus call level relative to the bed
};

BackgroundSpec draw_background(std::mt19937_64& rng, const SynthOptions& opt,
                               double max_hz = 11000);

// Background bed of `n` samples, stationary part at unit RMS before level changes and bursts.
std::vector<float> render_background(const BackgroundSpec& bg, std::mt19937_64& rng, int sr,
                                     size_t n);

// Domain-randomisation channel: random EQ / band limit, reverberation (exponentially decaying
// noise impulse response), slow gain changes, and sometimes clipping. In place.
void apply_channel(std::vector<float>& x, std::mt19937_64& rng, int sr);

// Convolves x with h (overlap-add FFT); output has x's length. Used for reverberation.
std::vector<float> convolve_same(const std::vector<float>& x, const std::vector<float>& h);

// ---- files (src/synth_file.cpp) --------------------------------------------------------------
struct LabelledEvent {
  double start = 0, end = 0;  // s
  int cls = 0;                // index into FileSpec::labelled
  bool unknown = false;       // UNK: annotators were unsure (faint, or overlapped)
  double snr_db = 0;          // requested: call power over the bed's power in its window
};

enum class Layout { even, clustered, dense };  // clustered: long stretches without calls

struct FileSpec {
  int sr = 22050;
  double seconds = 20;
  std::vector<CallClass> labelled;     // annotated classes (CSV columns)
  std::vector<int> counts;             // events per labelled class
  std::vector<CallClass> distractors;  // unannotated callers (confusers among them)
  std::vector<int> distractor_counts;
  double snr_lo = -5, snr_hi = 20;  // dB, target events
  int clean_first = 0;              // first N events of class 0 get SNR >= 3 dB and POS (shots)
  double unk_fraction = 0.08;       // share of events marked UNK (the faintest first)
  Layout layout = Layout::even;
  BackgroundSpec background;
  bool channel_effects = false;  // apply_channel after mixing
};

struct SynthFile {
  std::vector<float> audio;  // mono, peak <= 1
  int sr = 0;
  std::vector<LabelledEvent> events;  // sorted by start
  // Only with keep_stems (tests): the labelled calls alone and the bed alone, before the final
  // gain and channel effects (audio = gain * (labelled + distractors + bed)).
  std::vector<float> labelled_stem, bed_stem;
  float final_gain = 1;
};

SynthFile render_file(const FileSpec& spec, std::mt19937_64& rng, bool keep_stems = false);

// ---- the dataset (src/synth_dataset.cpp) -----------------------------------------------------
// Writes out_dir/Training_Set/<SUBSET>/*.wav+.csv, out_dir/Validation_Set/<SUBSET>/*.wav+.csv and
// out_dir/synth_manifest.json. Files are rendered on opt.threads threads, each from its own seed.
void write_dataset(const SynthOptions& opt, const std::string& out_dir);

}  // namespace fsl
