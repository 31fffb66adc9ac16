// Shared by the fuzz targets: the input written to a per-process temp file, for readers that
// take a path. Only fsl::Error may escape a reader: anything else (another exception, a crash,
// a sanitizer report, a leak) is a finding.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

namespace fsl::fuzz {

// <tmp>/fsl_fuzz_<pid>/<subdir>/<name>, written with `size` bytes of `data`.
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

}  // namespace fsl::fuzz
