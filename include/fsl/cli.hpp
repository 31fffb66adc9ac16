// Shared front-door pieces of every app: CONFIG + overrides + --print-config, and a main()
// wrapper that turns any Error into one line on stderr and exit code 1.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

#include "fsl/config.hpp"

namespace fsl {

struct ConfigArgs {
  std::string path;
  std::vector<std::string> overrides;
  bool print_config = false;
};

// Adds the positional CONFIG, trailing `section.key=value` overrides and --print-config.
void add_config_args(CLI::App& app, ConfigArgs& args);

// Loads the config; if --print-config was given, prints the resolved YAML and returns false.
bool load_config(const ConfigArgs& args, Config& out);

// Parses argv into `app`, then runs `body`. A CLI error, an fsl::Error or any std::exception
// becomes one line "<app name>: error: ..." on stderr and exit code 1; --help exits 0.
int run_app(CLI::App& app, int argc, char** argv, const std::function<int()>& body);

}  // namespace fsl
