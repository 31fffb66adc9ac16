// The bodies of the fuzz targets, shared by fuzz/fuzz_*.cpp (libFuzzer) and by
// tests/test_bad_input.cpp, which replays every committed corpus file (fuzz/corpus/<target>/,
// crash inputs included) in the normal and the sanitizer test suites.
// Only fsl::Error may escape a reader: anything else (another exception, a crash, a sanitizer
// report, a leak, a hang) is a finding.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "fsl/annotations.hpp"
#include "fsl/config.hpp"
#include "fsl/detect.hpp"
#include "fsl/error.hpp"
#include "fsl/metric.hpp"
#include "fsl/npy.hpp"
#include "fsl/safetensors.hpp"

namespace fsl::fuzz {

// <tmp>/fsl_fuzz_<pid>/<subdir>/<name>, written with `size` bytes of `data`, for readers that
// take a path.
inline std::string write_temp(const uint8_t* data, size_t size, const std::string& subdir,
                              const std::string& name) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("fsl_fuzz_" + std::to_string(getpid())) / subdir;
  fs::create_directories(dir);
  fs::path p = dir / name;
  std::ofstream(p, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  return p.string();
}

// The CSV parser and the annotation reader (either layout) on arbitrary bytes.
inline void annotations_one(const uint8_t* data, size_t size) {
  try {
    fsl::parse_csv(std::string(reinterpret_cast<const char*>(data), size), "fuzz.csv");
  } catch (const fsl::Error&) {
  }
  try {
    auto file = fsl::read_annotations(write_temp(data, size, "Sub", "rec.csv"));
    for (const auto& [cls, events] : file.pos) fsl::negative_gaps(events, 0.1);
  } catch (const fsl::Error&) {
  }
}

// The NPY header parser on the raw bytes, NpyMap on them as a file (every element touched).
inline void npy_one(const uint8_t* data, size_t size) {
  std::vector<size_t> shape;
  try {
    fsl::npy_parse_header(data, size, shape, "fuzz.npy");
  } catch (const fsl::Error&) {
  }
  try {
    fsl::NpyMap map(write_temp(data, size, "npy", "x.npy"));
    volatile float sum = 0;
    for (size_t i = 0; i < map.size(); ++i) sum = sum + map.data()[i];
    (void)map.rows();
    (void)map.cols();
  } catch (const fsl::Error&) {
  }
}

// Config::from_string: YAML text, optionally a line `%%` and one `section.key=value` override per
// line after it. A config that loads must print and load back.
inline void config_one(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size), yaml = text;
  std::vector<std::string> overrides;
  if (size_t sep = text.find("\n%%\n"); sep != std::string::npos) {
    yaml = text.substr(0, sep);
    std::istringstream rest(text.substr(sep + 4));
    for (std::string line; std::getline(rest, line);) overrides.push_back(line);
  }
  try {
    fsl::Config c = fsl::Config::from_string(yaml, overrides, "fuzz.yaml");
    fsl::Config::from_string(c.to_yaml(), {}, "fuzz-roundtrip.yaml");
  } catch (const fsl::Error&) {
  }
}

// The safetensors reader (header JSON, dtypes, shapes, offsets).
inline void safetensors_one(const uint8_t* data, size_t size) {
  try {
    auto st = fsl::read_safetensors(write_temp(data, size, "st", "x.safetensors"));
    for (const auto& [name, t] : st.tensors) (void)t.numel();
  } catch (const fsl::Error&) {
  }
}

// fsl_score's prediction-CSV reader.
inline void predictions_one(const uint8_t* data, size_t size) {
  try {
    fsl::read_predictions(write_temp(data, size, "pred", "pred.csv"));
  } catch (const fsl::Error&) {
  }
}

// fsl_eval --from-scores' parser; scores that parse must decide events and print back to scores
// that parse the same.
inline void file_scores_one(const uint8_t* data, size_t size) {
  std::vector<fsl::FileScores> files;
  try {
    files = fsl::parse_file_scores(std::string(reinterpret_cast<const char*>(data), size),
                                   "fuzz_scores.txt");
  } catch (const fsl::Error&) {
    return;
  }
  fsl::PostProcess pp;
  pp.fit_to_shots = pp.merge_overlaps = true;
  for (const auto& f : files) (void)fsl::decide_events(f, 0.5, pp);
  // A parsed name holds no whitespace, so what parsed always prints and parses back: an Error
  // here is a finding too.
  try {
    auto back = fsl::parse_file_scores(fsl::file_scores_text(files), "fuzz-roundtrip.txt");
    if (back.size() != files.size()) __builtin_trap();
    for (size_t i = 0; i < files.size(); ++i)
      if (back[i].p != files[i].p) __builtin_trap();
  } catch (const fsl::Error&) {
    __builtin_trap();
  }
}

}  // namespace fsl::fuzz
