#include "fsl/cli.hpp"

#include <iostream>

#include "fsl/error.hpp"

namespace fsl {

void add_config_args(CLI::App& app, ConfigArgs& args) {
  app.add_option("config", args.path, "YAML config (e.g. conf/config.yaml)")->required();
  app.add_option("overrides", args.overrides,
                 "section.key=value overrides, and exp_name=NAME")
      ->expected(0, -1);
  app.add_flag("--print-config", args.print_config, "print the resolved config and exit");
}

bool load_config(const ConfigArgs& args, Config& out) {
  out = Config::load(args.path, args.overrides);
  if (args.print_config) {
    std::cout << out.to_yaml();
    return false;
  }
  return true;
}

int run_app(CLI::App& app, int argc, char** argv, const std::function<int()>& body) {
  const std::string prog = app.get_name().empty() ? "fsl" : app.get_name();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    std::cerr << prog << ": error: " << e.what() << " (see --help)\n";
    return 1;
  }
  try {
    return body();
  } catch (const Error& e) {
    std::cerr << prog << ": error: " << e.what() << "\n";
  } catch (const std::bad_alloc&) {
    std::cerr << prog << ": error: out of memory\n";
  } catch (const std::exception& e) {
    std::cerr << prog << ": error: " << e.what() << "\n";
  }
  return 1;
}

}  // namespace fsl
