// The development set on disk: a serial plan (subsets, classes, file specs, per-file seeds), then
// files rendered and written in parallel, then synth_manifest.json.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <exception>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "fsl/audio.hpp"
#include "fsl/error.hpp"
#include "fsl/fileio.hpp"
#include "fsl/progress.hpp"
#include "fsl/synth.hpp"
#include "synth_rng.hpp"

namespace fsl {

using namespace synth_detail;

SynthScale parse_synth_scale(const std::string& name) {
  if (name == "tiny") return SynthScale::tiny;
  if (name == "small") return SynthScale::small;
  if (name == "full") return SynthScale::full;
  fail("unknown scale '", name, "' (expected tiny, small or full)");
}

const char* to_string(SynthScale scale) {
  switch (scale) {
    case SynthScale::tiny:
      return "tiny";
    case SynthScale::small:
      return "small";
    case SynthScale::full:
      return "full";
  }
  return "?";
}

namespace {

// Sizes per scale. The last training subset is the single-`CALL`-column one.
struct ScalePlan {
  std::vector<int> train_classes;  // per training subset; the CALL subset has 1
  int train_files_lo, train_files_hi;
  double train_sec_lo, train_sec_hi;
  int val_subsets, val_files_lo, val_files_hi;
  double val_sec_lo, val_sec_hi;
};

ScalePlan scale_plan(SynthScale s) {
  switch (s) {
    case SynthScale::tiny:
      return {{3, 1}, 2, 3, 10, 20, 2, 2, 2, 20, 30};
    case SynthScale::small:
      return {{5, 5, 5, 4, 1}, 5, 7, 45, 75, 3, 3, 4, 60, 120};
    case SynthScale::full:
      return {{12, 12, 11, 11, 1}, 24, 28, 450, 750, 5, 5, 7, 400, 700};
  }
  return {};
}

const int kRates[] = {16000, 22050, 24000, 32000, 44100, 48000};

struct PlannedFile {
  std::string split, subset, stem, target;  // target: validation files' class
  std::vector<std::string> columns;         // training CSV class columns
  std::vector<int> present;                 // training: labelled class j is column present[j]
  int decimals = 3;
  FileSpec spec;
  uint64_t seed = 0;
};

struct PlannedSubset {
  std::string split, name;
  std::vector<int> rates;
  std::vector<std::string> classes;
  std::vector<std::string> class_shapes;
  int files = 0;
  double seconds = 0;
};

// The i-th file of a subset: its split, subset and stem "<SUBSET>_<i+1, 3 digits>".
PlannedFile planned_file(const PlannedSubset& sub, int i) {
  PlannedFile pf;
  pf.split = sub.split;
  pf.subset = sub.name;
  char stem[32];
  std::snprintf(stem, sizeof stem, "%s_%03d", sub.name.c_str(), i + 1);
  pf.stem = stem;
  return pf;
}

double max_hz_for(int sr) { return std::min(11000.0, 0.45 * sr); }

// Events of a class that fit comfortably (non-overlapping, with room) in `seconds`.
int fit_count(const CallClass& c, double seconds, int wanted, double share = 0.35) {
  int room = int(share * seconds / (c.duration * 1.5 + 0.05));
  return std::max(1, std::min(wanted, room));
}

std::string describe(const CallClass& c) {
  std::ostringstream os;
  os << to_string(c.shape) << "/" << to_string(c.contour) << " " << int(c.f_lo) << "-"
     << int(c.f_hi) << "Hz " << int(c.duration * 1000) << "ms";
  return os.str();
}

// Unannotated callers for a file: confusers of the annotated classes plus unrelated callers.
void add_distractors(FileSpec& f, std::mt19937_64& rng, const SynthOptions& opt, double max_hz,
                     int confusers, int others, int typical_count) {
  for (int i = 0; i < confusers + others; ++i) {
    const CallClass& near = f.labelled[size_t(uniform_int(rng, 0, int(f.labelled.size()) - 1))];
    CallClass d = i < confusers ? draw_confuser(near, rng, opt) : draw_class(rng, opt, max_hz);
    int count = fit_count(d, f.seconds, std::max(1, int(typical_count * uniform(rng, 0.5, 1.2))));
    f.distractors.push_back(d);
    f.distractor_counts.push_back(count);
  }
}

Layout draw_layout(std::mt19937_64& rng) {
  double u = uniform(rng);
  return u < 0.12 ? Layout::clustered : u < 0.22 ? Layout::dense : Layout::even;
}

void plan_training(const SynthOptions& opt, const ScalePlan& sp, std::mt19937_64& rng,
                   std::vector<PlannedSubset>& subsets, std::vector<PlannedFile>& files) {
  std::vector<int> rates(std::begin(kRates), std::end(kRates));
  std::shuffle(rates.begin(), rates.end(), rng);
  for (size_t s = 0; s < sp.train_classes.size(); ++s) {
    const bool call_subset = s + 1 == sp.train_classes.size();
    PlannedSubset sub;
    sub.split = "Training_Set";
    sub.name = call_subset ? "SCALL" : std::string("S") + char('A' + s);
    const int sr = rates[s % rates.size()];
    // Classes: half of them confusers of an earlier class of the subset (same band, other shape).
    std::vector<CallClass> classes;
    for (int k = 0; k < sp.train_classes[s]; ++k) {
      CallClass c = (k > 0 && chance(rng, 0.5))
                        ? draw_confuser(classes[size_t(uniform_int(rng, 0, k - 1))], rng, opt)
                        : draw_class(rng, opt, max_hz_for(sr));
      char buf[16];
      std::snprintf(buf, sizeof buf, "%s%02d", sub.name.c_str(), k + 1);
      c.name = call_subset ? sub.name : buf;
      sub.classes.push_back(c.name);
      sub.class_shapes.push_back(describe(c));
      classes.push_back(c);
    }
    const int decimals = std::array<int, 3>{3, 4, 6}[size_t(uniform_int(rng, 0, 2))];
    const int nfiles = uniform_int(rng, sp.train_files_lo, sp.train_files_hi);
    for (int i = 0; i < nfiles; ++i) {
      PlannedFile pf = planned_file(sub, i);
      pf.columns = call_subset ? std::vector<std::string>{"CALL"} : sub.classes;
      pf.decimals = decimals;
      FileSpec& f = pf.spec;
      f.sr = opt.randomise ? kRates[uniform_int(rng, 0, 5)] : sr;
      f.seconds = std::round(uniform(rng, sp.train_sec_lo, sp.train_sec_hi) * 10) / 10;
      // Every class appears in some file: file i holds class i % k plus a random few others.
      const int k = int(classes.size());
      std::vector<int> present{i % k};
      for (int extra = uniform_int(rng, 0, std::min(3, k - 1)); extra > 0; --extra) {
        int c = uniform_int(rng, 0, k - 1);
        if (std::find(present.begin(), present.end(), c) == present.end()) present.push_back(c);
      }
      int typical = 0;
      for (int c : present) {
        const CallClass& cc = classes[size_t(c)];
        int count = fit_count(cc, f.seconds / double(present.size()),
                              std::max(3, int(f.seconds / 60 * uniform(rng, 8, 40))));
        f.labelled.push_back(cc);
        f.counts.push_back(count);
        typical = std::max(typical, count);
      }
      add_distractors(f, rng, opt, max_hz_for(f.sr), uniform_int(rng, 0, 2), uniform_int(rng, 0, 2),
                      typical);
      f.background = draw_background(rng, opt, max_hz_for(f.sr));
      f.layout = draw_layout(rng);
      f.unk_fraction = uniform(rng, 0.0, 0.1);
      f.channel_effects = opt.randomise;
      pf.present = present;
      pf.seed = derive_seed(opt.seed, 1, files.size());
      files.push_back(std::move(pf));
      sub.files++;
      sub.seconds += f.seconds;
    }
    sub.rates = {sr};
    subsets.push_back(std::move(sub));
  }
}

void plan_validation(const SynthOptions& opt, const ScalePlan& sp, std::mt19937_64& rng,
                     std::vector<PlannedSubset>& subsets, std::vector<PlannedFile>& files) {
  std::vector<int> rates(std::begin(kRates), std::end(kRates));
  std::shuffle(rates.begin(), rates.end(), rng);
  for (int s = 0; s < sp.val_subsets; ++s) {
    PlannedSubset sub;
    sub.split = "Validation_Set";
    sub.name = std::string("V") + char('A' + s);
    const int sr = rates[size_t(s) % rates.size()];
    const bool shared_target = chance(rng, 0.4);  // one species for the whole subset, or per file
    CallClass shared = draw_class(rng, opt, max_hz_for(sr));
    const int nfiles = uniform_int(rng, sp.val_files_lo, sp.val_files_hi);
    for (int i = 0; i < nfiles; ++i) {
      PlannedFile pf = planned_file(sub, i);
      pf.decimals = 6;
      FileSpec& f = pf.spec;
      f.sr = opt.randomise ? kRates[uniform_int(rng, 0, 5)] : sr;
      f.seconds = std::round(uniform(rng, sp.val_sec_lo, sp.val_sec_hi) * 10) / 10;
      CallClass target = shared_target ? shared : draw_class(rng, opt, max_hz_for(f.sr));
      target.name = shared_target ? sub.name + "_T" : pf.stem + "_T";
      // Room for >= 15 events (5 shots + something to detect): shorten very long calls.
      target.duration = std::min(target.duration, 0.5 * f.seconds / (15 * 1.5) - 0.05);
      target.duration = std::max(target.duration, 0.01);
      int wanted = std::clamp(int(f.seconds * uniform(rng, 0.2, 0.6)), 15, 60);
      f.labelled = {target};
      f.counts = {std::max(15, fit_count(target, f.seconds, wanted, 0.5))};
      add_distractors(f, rng, opt, max_hz_for(f.sr), uniform_int(rng, 1, 2), uniform_int(rng, 1, 2),
                      f.counts[0]);
      f.background = draw_background(rng, opt, max_hz_for(f.sr));
      f.layout = draw_layout(rng);
      f.clean_first = 5;
      f.unk_fraction = uniform(rng, 0.05, 0.15);
      f.channel_effects = opt.randomise;
      pf.target = target.name;
      if (std::find(sub.classes.begin(), sub.classes.end(), target.name) == sub.classes.end()) {
        sub.classes.push_back(target.name);
        sub.class_shapes.push_back(describe(target));
      }
      if (std::find(sub.rates.begin(), sub.rates.end(), f.sr) == sub.rates.end())
        sub.rates.push_back(f.sr);
      pf.seed = derive_seed(opt.seed, 2, files.size());
      files.push_back(std::move(pf));
      sub.files++;
      sub.seconds += f.seconds;
    }
    subsets.push_back(std::move(sub));
  }
}

std::string format_time(double t, int decimals) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, t);
  return buf;
}

// DCASE CSV for one rendered file.
std::string make_csv(const PlannedFile& pf, const SynthFile& sf) {
  std::ostringstream os;
  const std::string wav = pf.stem + ".wav";
  if (pf.split == "Validation_Set") {
    os << "Audiofilename,Starttime,Endtime,Q\n";
    for (const auto& e : sf.events)
      os << wav << ',' << format_time(e.start, pf.decimals) << ','
         << format_time(e.end, pf.decimals) << ',' << (e.unknown ? "UNK" : "POS") << '\n';
    return os.str();
  }
  os << "Audiofilename,Starttime,Endtime";
  for (const auto& c : pf.columns) os << ',' << c;
  os << '\n';
  for (const auto& e : sf.events) {
    os << wav << ',' << format_time(e.start, pf.decimals) << ',' << format_time(e.end, pf.decimals);
    const int column = pf.columns.size() == 1 ? 0 : pf.present[size_t(e.cls)];
    for (size_t c = 0; c < pf.columns.size(); ++c)
      os << ',' << (int(c) != column ? "NEG" : e.unknown ? "UNK" : "POS");
    os << '\n';
  }
  return os.str();
}

std::string make_manifest(const SynthOptions& opt, const std::vector<PlannedSubset>& subsets) {
  std::ostringstream os;
  os << "{\n  \"generator\": \"fsl_synth\",\n  \"seed\": " << opt.seed << ",\n  \"scale\": \""
     << to_string(opt.scale) << "\",\n  \"randomise\": " << (opt.randomise ? "true" : "false")
     << ",\n";
  for (const char* split : {"Training_Set", "Validation_Set"}) {
    int nfiles = 0;
    double secs = 0;
    for (const auto& s : subsets)
      if (s.split == split) nfiles += s.files, secs += s.seconds;
    os << "  \"" << split << "\": {\"files\": " << nfiles << ", \"seconds\": " << secs << "},\n";
  }
  os << "  \"subsets\": [\n";
  for (size_t i = 0; i < subsets.size(); ++i) {
    const auto& s = subsets[i];
    os << "    {\"split\": \"" << s.split << "\", \"name\": \"" << s.name
       << "\", \"files\": " << s.files << ", \"seconds\": " << s.seconds << ", \"sample_rates\": [";
    for (size_t r = 0; r < s.rates.size(); ++r) os << (r ? ", " : "") << s.rates[r];
    os << "], \"classes\": [";
    for (size_t c = 0; c < s.classes.size(); ++c)
      os << (c ? ", " : "") << "{\"name\": \"" << s.classes[c] << "\", \"shape\": \""
         << s.class_shapes[c] << "\"}";
    os << "]}" << (i + 1 < subsets.size() ? "," : "") << "\n";
  }
  os << "  ]\n}\n";
  return os.str();
}

void make_dir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir))
    fail("cannot create output directory ", dir.string(), ": ",
         ec ? ec.message() : "not a directory");
}

}  // namespace

void write_dataset(const SynthOptions& opt, const std::string& out_dir) {
  const ScalePlan sp = scale_plan(opt.scale);
  std::mt19937_64 plan_rng(derive_seed(opt.seed, 0, 0));
  std::vector<PlannedSubset> subsets;
  std::vector<PlannedFile> files;
  plan_training(opt, sp, plan_rng, subsets, files);
  plan_validation(opt, sp, plan_rng, subsets, files);

  const fs::path root(out_dir);
  for (const auto& s : subsets) make_dir(root / s.split / s.name);

  double total_seconds = 0;
  for (const auto& f : files) total_seconds += f.spec.seconds;
  std::optional<Progress> progress;
  if (opt.show_progress)
    progress.emplace("fsl_synth", long(files.size()), total_seconds / 3600, "h audio");

  std::atomic<size_t> next{0};
  std::mutex error_mu;
  std::exception_ptr error;
  auto worker = [&] {
    for (size_t i; (i = next.fetch_add(1)) < files.size();) {
      try {
        const PlannedFile& pf = files[i];
        std::mt19937_64 rng(pf.seed);
        SynthFile sf = render_file(pf.spec, rng);
        const fs::path dir = root / pf.split / pf.subset;
        write_wav((dir / (pf.stem + ".wav")).string(), sf.audio, sf.sr);
        atomic_write_text(dir / (pf.stem + ".csv"), make_csv(pf, sf));
        if (progress) progress->advance(1, pf.spec.seconds / 3600);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mu);
        if (!error) error = std::current_exception();
        next = files.size();  // stop the other workers early
      }
    }
  };
  int threads = opt.threads > 0 ? opt.threads : int(std::thread::hardware_concurrency());
  threads = std::clamp(threads, 1, int(std::max<size_t>(1, files.size())));
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(worker);
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
  if (progress) progress->finish();
  atomic_write_text(root / "synth_manifest.json", make_manifest(opt, subsets));
}

}  // namespace fsl
