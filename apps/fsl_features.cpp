// fsl_features export CONFIG [--split train|val|test|all] [--force] [overrides]
// fsl_features check  CONFIG [--split ...]
#include <iostream>

#include "fsl/cli.hpp"
#include "fsl/features.hpp"

int main(int argc, char** argv) {
  CLI::App app{"Export and check the feature files (<stem>_<type>.npy next to each audio file)",
               "fsl_features"};
  app.require_subcommand(1);

  fsl::ConfigArgs export_args, check_args;
  std::string export_split = "all", check_split = "all", exp_name;
  bool force = false;
  auto* exp = app.add_subcommand("export", "compute features and feature_stats.json");
  fsl::add_config_args(*exp, export_args);
  exp->add_option("--split", export_split, "train, val, test or all")
      ->check(CLI::IsMember({"train", "val", "test", "all"}));
  exp->add_flag("--force", force, "rewrite feature files that already exist");
  exp->add_option("--exp-name", exp_name, "experiment name (same as exp_name=NAME)");
  auto* chk = app.add_subcommand("check", "list missing, stale or unreadable feature files");
  fsl::add_config_args(*chk, check_args);
  chk->add_option("--split", check_split, "train, val, test or all")
      ->check(CLI::IsMember({"train", "val", "test", "all"}));

  return fsl::run_app(app, argc, argv, [&]() -> int {
    fsl::Config config;
    if (exp->parsed()) {
      if (!exp_name.empty()) export_args.overrides.push_back("exp_name=" + exp_name);
      if (!fsl::load_config(export_args, config)) return 0;
      auto s = fsl::export_features(config, export_split, force);
      std::cerr << "features: " << s.written << " written, " << s.skipped << " skipped, "
                << s.failed << " failed\n";
      return s.failed > 0 ? 1 : 0;
    }
    if (!fsl::load_config(check_args, config)) return 0;
    return fsl::check_features(config, check_split) > 0 ? 1 : 0;
  });
}
