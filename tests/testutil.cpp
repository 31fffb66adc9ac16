#include "testutil.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>

namespace fsl::test {

TempDir::TempDir() {
  std::random_device rd;
  path = std::filesystem::temp_directory_path() /
         ("fsl_test_" + std::to_string(::getpid()) + "_" + std::to_string(rd()));
  std::filesystem::create_directories(path);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

// The build's paths, unless the environment moves them (scripts/gpu-suite.sh --prebuilt runs the
// test programs on another machine, from another checkout path).
static std::filesystem::path env_or(const char* var, const char* built_in) {
  const char* v = std::getenv(var);
  return std::filesystem::path(v && *v ? v : built_in);
}

std::filesystem::path data_path(const std::string& name) {
  return env_or("FSL_TEST_DATA", FSL_TEST_DATA) / name;
}

std::filesystem::path bin_path(const std::string& name) {
  return env_or("FSL_BIN_DIR", FSL_BIN_DIR) / name;
}

double relative_frobenius(const std::vector<float>& got, const std::vector<float>& want) {
  if (got.size() != want.size()) return INFINITY;  // a shape mismatch fails any tolerance
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    num += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    den += double(want[i]) * want[i];
  }
  return std::sqrt(num / den);
}

int run_command(const std::string& cmd, std::string* output) {
  std::string full = cmd + " 2>&1";
  FILE* p = ::popen(full.c_str(), "r");
  if (!p) return -1;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0)
    if (output) output->append(buf.data(), n);
  int status = ::pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace fsl::test
