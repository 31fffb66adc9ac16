// Feature statistics (feature_stats.json) and fsl_features check.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "fsl/audio.hpp"
#include "fsl/error.hpp"
#include "fsl/features.hpp"
#include "fsl/fileio.hpp"
#include "fsl/frontend.hpp"
#include "fsl/npy.hpp"

namespace fsl {

std::string feature_stats_path(const std::string& train_dir) {
  return (fs::path(train_dir) / "feature_stats.json").string();
}

void write_feature_stats(const std::string& train_dir, const FeatureStats& stats) {
  std::ostringstream os;
  os.precision(17);
  os << "{";
  bool first = true;
  for (const auto& [type, s] : stats) {
    os << (first ? "\n  " : ",\n  ") << '"' << type << "\": {\"mean\": " << s.mean
       << ", \"std\": " << s.std << ", \"frames\": " << s.frames << "}";
    first = false;
  }
  os << "\n}\n";
  atomic_write_text(feature_stats_path(train_dir), os.str());
}

namespace {
// A reader for exactly the shape write_feature_stats writes: {"type": {"key": number, ...}, ...}.
struct StatsParser {
  const std::string& text;
  const std::string& file;
  size_t pos = 0;

  [[noreturn]] void bad(const std::string& what) {
    fail(file, ": corrupt feature statistics (", what, " at byte ", pos, ")");
  }
  void skip_space() {
    while (pos < text.size() && std::isspace(static_cast<unsigned char>(text[pos]))) ++pos;
  }
  bool take(char c) {
    skip_space();
    if (pos < text.size() && text[pos] == c) return ++pos, true;
    return false;
  }
  void expect(char c) {
    if (!take(c)) bad(std::string("expected '") + c + "'");
  }
  std::string string() {
    expect('"');
    size_t end = text.find('"', pos);
    if (end == std::string::npos) bad("unterminated string");
    std::string s = text.substr(pos, end - pos);
    pos = end + 1;
    return s;
  }
  double number() {
    skip_space();
    const char* begin = text.c_str() + pos;
    char* end = nullptr;
    double v = std::strtod(begin, &end);
    if (end == begin) bad("expected a number");
    pos += size_t(end - begin);
    return v;
  }
  FeatureStats parse() {
    FeatureStats out;
    expect('{');
    if (take('}')) return out;
    do {
      std::string type = string();
      expect(':');
      expect('{');
      FeatureStat s;
      bool has_mean = false, has_std = false;
      do {
        std::string key = string();
        expect(':');
        double v = number();
        if (key == "mean") s.mean = v, has_mean = true;
        if (key == "std") s.std = v, has_std = true;
        if (key == "frames") s.frames = static_cast<long long>(v);
      } while (take(','));
      expect('}');
      if (!has_mean || !has_std) bad("type '" + type + "' lacks mean or std");
      if (!std::isfinite(s.mean) || !std::isfinite(s.std) || s.std <= 0)
        bad("type '" + type + "' has a non-finite mean or a std <= 0");
      out[type] = s;
    } while (take(','));
    expect('}');
    return out;
  }
};
}  // namespace

FeatureStats read_feature_stats(const std::string& train_dir) {
  const std::string file = feature_stats_path(train_dir);
  if (!fs::exists(file))
    fail(file, ": feature statistics missing (run `fsl_features export CONFIG --split train`)");
  const std::string text = read_text(file);
  return StatsParser{text, file}.parse();
}

FeatureStats compute_feature_stats(const std::string& dir, const std::vector<std::string>& types,
                                   int n_mels) {
  const auto audio = list_files(dir, audio_extensions());
  FeatureStats out;
  for (const auto& t : types) {
    // Per-file mean and sum of squared deviations, merged (Chan et al.): stable in double.
    double mean = 0, m2 = 0;
    long long count = 0, frames = 0;
    for (const auto& a : audio) {
      const std::string path = feature_path(a.string(), t);
      if (!fs::exists(path)) continue;
      NpyMap m(path);
      if (m.cols() != size_t(n_mels) || m.size() == 0) continue;
      double fm = 0, fm2 = 0;
      const float* d = m.data();
      for (size_t i = 0; i < m.size(); ++i) fm += d[i];
      fm /= double(m.size());
      for (size_t i = 0; i < m.size(); ++i) fm2 += (d[i] - fm) * (d[i] - fm);
      const long long n = static_cast<long long>(m.size());
      const double delta = fm - mean, total = double(count + n);
      mean += delta * double(n) / total;
      m2 += fm2 + delta * delta * double(count) * double(n) / total;
      count += n;
      frames += static_cast<long long>(m.rows());
    }
    if (count == 0) continue;
    FeatureStat s;
    s.mean = mean;
    s.std = std::sqrt(m2 / double(count));
    if (!(s.std > 0)) s.std = 1;  // constant features: normalising must not divide by zero
    s.frames = frames;
    out[t] = s;
  }
  return out;
}

long check_features(const Config& c, const std::string& split) {
  const auto types = c.features.types();
  const FrontendParams params = FrontendParams::from(c.features);
  long problems = 0, files = 0;
  for (const auto& s : split_names(split)) {
    const std::string dir = split_dir(c, s);
    if (dir.empty()) {
      if (split != "all") fail("split '", s, "': its directory is not set in the config");
      continue;
    }
    if (!fs::is_directory(dir)) fail("split '", s, "': directory ", dir, " does not exist");
    for (const auto& a : list_files(dir, audio_extensions())) {
      for (const auto& t : types) {
        ++files;
        const std::string path = feature_path(a.string(), t);
        if (!fs::exists(path)) {
          std::cout << "missing: " << path << "\n";
          ++problems;
          continue;
        }
        if (fs::last_write_time(path) < fs::last_write_time(a)) {
          std::cout << "stale: " << path << " (older than " << a.string() << ")\n";
          ++problems;
          continue;
        }
        try {
          NpyMap m(path);
          if (m.shape().size() != 2 || m.cols() != size_t(params.n_mels))
            fail("shape is not (frames, ", params.n_mels, ")");
          // Frames expected from the audio header: 1 + resampled length / hop.
          const AudioInfo info = audio_info(a.string());
          const auto resampled =
              static_cast<size_t>(std::ceil(double(info.frames) * params.sr / info.sample_rate));
          if (m.rows() != 1 + resampled / size_t(params.hop))
            fail(m.rows(), " frames, the audio gives ", 1 + resampled / size_t(params.hop));
        } catch (const Error& e) {
          std::string what = e.what();
          if (what.rfind(path, 0) == 0) what = what.substr(path.size() + 2);
          std::cout << "bad: " << path << ": " << what << "\n";
          ++problems;
        }
      }
    }
    if (s == "train") {
      try {
        read_feature_stats(dir);
      } catch (const Error& e) {
        std::cout << "bad: " << e.what() << "\n";
        ++problems;
      }
    }
  }
  std::cout << files << " feature files checked, " << problems << " problem(s)\n";
  return problems;
}

}  // namespace fsl
