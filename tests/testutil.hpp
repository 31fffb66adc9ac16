// Helpers shared by the tests: temporary directories, paths to test data and built binaries.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

namespace fsl::test {

// A fresh empty directory under the system temp dir, removed on destruction.
struct TempDir {
  TempDir();
  ~TempDir();
  std::filesystem::path path;
  std::filesystem::path operator/(const std::string& p) const { return path / p; }
};

std::filesystem::path data_path(const std::string& name);  // tests/data/<name>
std::filesystem::path bin_path(const std::string& name);   // <build>/<name>

// sqrt(sum (got - want)^2 / sum want^2), accumulated in double: the front-end parity measure
// (infinite when the sizes differ).
double relative_frobenius(const std::vector<float>& got, const std::vector<float>& want);

// Runs a shell command, returns its exit code; stdout+stderr captured into `output`.
int run_command(const std::string& cmd, std::string* output = nullptr);

}  // namespace fsl::test
