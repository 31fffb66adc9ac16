// Fuzzes Config::from_string: the input is YAML text, optionally followed by a line `%%` and one
// `section.key=value` override per line.
#include <sstream>

#include "fsl/config.hpp"
#include "fsl/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  std::string yaml = text;
  std::vector<std::string> overrides;
  if (size_t sep = text.find("\n%%\n"); sep != std::string::npos) {
    yaml = text.substr(0, sep);
    std::istringstream rest(text.substr(sep + 4));
    for (std::string line; std::getline(rest, line);) overrides.push_back(line);
  }
  try {
    fsl::Config c = fsl::Config::from_string(yaml, overrides, "fuzz.yaml");
    // The resolved config must print and read back.
    fsl::Config::from_string(c.to_yaml(), {}, "fuzz-roundtrip.yaml");
  } catch (const fsl::Error&) {
  }
  return 0;
}
