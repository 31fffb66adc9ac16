// fsl_synth: writes a synthetic development set in the DCASE Task 5 layout.
//   fsl_synth --out DIR [--seed N] [--scale tiny|small|full] [--randomise] [--threads N]
#include <chrono>
#include <cstdio>

#include "fsl/cli.hpp"
#include "fsl/synth.hpp"

int main(int argc, char** argv) {
  CLI::App app("Synthetic few-shot bioacoustic development set (DCASE layout)", "fsl_synth");
  std::string out, scale = "tiny";
  fsl::SynthOptions opt;
  app.add_option("--out", out, "output directory (Training_Set/, Validation_Set/, manifest)")
      ->required();
  app.add_option("--seed", opt.seed, "seed: the same seed gives byte-identical files");
  app.add_option("--scale", scale, "tiny (tests), small (demo) or full (like the real set)");
  app.add_flag("--randomise", opt.randomise,
               "domain randomisation: wider class space, reverberation, EQ, clipping");
  app.add_option("--threads", opt.threads, "worker threads (0: all cores)");
  app.add_flag(
      "--quiet", [&](int64_t) { opt.show_progress = false; }, "no progress output");
  return fsl::run_app(app, argc, argv, [&] {
    opt.scale = fsl::parse_synth_scale(scale);
    auto t0 = std::chrono::steady_clock::now();
    fsl::write_dataset(opt, out);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("fsl_synth: wrote %s set (seed %llu%s) to %s in %.2f s\n",
                fsl::to_string(opt.scale), static_cast<unsigned long long>(opt.seed),
                opt.randomise ? ", randomised" : "", out.c_str(), secs);
    return 0;
  });
}
