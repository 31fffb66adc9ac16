// fsl_synth: determinism, DCASE CSV validity, band of rendered calls (FFTW as the independent
// spectrum), SNR control measured on the mixture, overlap-add convolution against direct sums,
// and the app's errors on bad arguments.
#include <fftw3.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "fsl/audio.hpp"
#include "fsl/fileio.hpp"
#include "fsl/synth.hpp"
#include "testutil.hpp"

namespace {

namespace fs = std::filesystem;
using fsl::test::TempDir;

// FNV-1a over every file's relative path and bytes, in sorted path order.
uint64_t hash_tree(const fs::path& root) {
  std::vector<fs::path> paths;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.is_regular_file()) paths.push_back(e.path());
  std::sort(paths.begin(), paths.end());
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](const std::string& s) {
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  };
  for (const auto& p : paths) {
    mix(fs::relative(p, root).string());
    mix(fsl::read_text(p));
  }
  return h;
}

std::vector<std::vector<std::string>> read_csv(const fs::path& p) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream is(fsl::read_text(p));
  for (std::string line; std::getline(is, line);) {
    std::vector<std::string> cells;
    std::stringstream ls(line);
    for (std::string c; std::getline(ls, c, ',');) cells.push_back(c);
    rows.push_back(cells);
  }
  return rows;
}

fsl::SynthOptions tiny_options(uint64_t seed, int threads = 2) {
  fsl::SynthOptions opt;
  opt.seed = seed;
  opt.threads = threads;
  opt.show_progress = false;
  return opt;
}

// Checks the DCASE layout of a generated set; returns {validation UNK rows, distinct rates}.
std::pair<int, int> check_dataset(const fs::path& root) {
  int unk_total = 0, call_subsets = 0;
  std::set<int> rates;
  for (const char* split : {"Training_Set", "Validation_Set"}) {
    const bool validation = std::string(split) == "Validation_Set";
    auto csvs = fsl::list_files(root / split, {".csv"});
    EXPECT_GE(csvs.size(), validation ? 2u : 4u) << split;
    for (const auto& csv : csvs) {
      fs::path wav = fs::path(csv).replace_extension(".wav");
      EXPECT_TRUE(fs::exists(wav)) << wav;
      fsl::AudioInfo info = fsl::audio_info(wav.string());
      rates.insert(info.sample_rate);
      auto rows = read_csv(csv);
      EXPECT_GE(rows.size(), 2u) << csv;
      const auto& header = rows[0];
      EXPECT_GE(header.size(), 4u) << csv;
      if (header.size() < 4) continue;
      EXPECT_EQ(header[0], "Audiofilename");
      EXPECT_EQ(header[1], "Starttime");
      EXPECT_EQ(header[2], "Endtime");
      if (validation) {
        EXPECT_EQ(header.size(), 4u);
        EXPECT_EQ(header[3], "Q");
      }
      if (!validation && header.size() == 4 && header[3] == "CALL") ++call_subsets;
      int pos = 0;
      for (size_t r = 1; r < rows.size(); ++r) {
        const auto& row = rows[r];
        EXPECT_EQ(row.size(), header.size()) << csv << " row " << r;
        if (row.size() != header.size()) continue;
        EXPECT_EQ(row[0], wav.filename().string());
        double start = std::stod(row[1]), end = std::stod(row[2]);
        EXPECT_GE(start, 0.0) << csv << " row " << r;
        EXPECT_LT(start, end) << csv << " row " << r;
        EXPECT_LE(end, info.seconds()) << csv << " row " << r;
        int labelled = 0;
        for (size_t c = 3; c < row.size(); ++c) {
          const std::string& v = row[c];
          EXPECT_TRUE(v == "POS" || v == "UNK" || (!validation && v == "NEG")) << v;
          labelled += v != "NEG";
          pos += v == "POS";
          unk_total += validation && v == "UNK";
        }
        EXPECT_EQ(labelled, 1) << csv << " row " << r;
      }
      if (validation) {
        EXPECT_GE(pos, 5) << csv;
      }
    }
  }
  EXPECT_GE(call_subsets, 1);
  EXPECT_TRUE(fs::exists(root / "synth_manifest.json"));
  return {unk_total, int(rates.size())};
}

TEST(Synth, SameSeedSameBytesWhateverTheThreads) {
  TempDir dir;
  fsl::write_dataset(tiny_options(7, 1), (dir / "a").string());
  fsl::write_dataset(tiny_options(7, 3), (dir / "b").string());
  fsl::write_dataset(tiny_options(8, 2), (dir / "c").string());
  uint64_t a = hash_tree(dir / "a"), b = hash_tree(dir / "b"), c = hash_tree(dir / "c");
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST(Synth, AppWritesValidDcaseLayout) {
  TempDir dir;
  std::string out;
  int rc = fsl::test::run_command(fsl::test::bin_path("fsl_synth").string() +
                                      " --quiet --seed 11 --out " + (dir / "d").string(),
                                  &out);
  ASSERT_EQ(rc, 0) << out;
  auto [unk, rates] = check_dataset(dir / "d");
  EXPECT_GE(unk, 1);
  EXPECT_GE(rates, 2);
}

TEST(Synth, RandomisedSetIsValidToo) {
  TempDir dir;
  fsl::SynthOptions opt = tiny_options(5);
  opt.randomise = true;
  fsl::write_dataset(opt, (dir / "r").string());
  auto [unk, rates] = check_dataset(dir / "r");
  EXPECT_GE(unk, 1);
  EXPECT_GE(rates, 2);
}

// Share of a signal's energy between lo and hi Hz (FFTW real DFT, zero-padded to 2x).
double band_energy_share(const std::vector<float>& x, int sr, double lo, double hi) {
  int n = int(2 * x.size());
  std::vector<double> in(size_t(n), 0.0);
  std::copy(x.begin(), x.end(), in.begin());
  std::vector<fftw_complex> spec(size_t(n / 2 + 1));
  fftw_plan plan = fftw_plan_dft_r2c_1d(n, in.data(), spec.data(), FFTW_ESTIMATE);
  fftw_execute(plan);
  fftw_destroy_plan(plan);
  double total = 0, inside = 0;
  for (int k = 0; k <= n / 2; ++k) {
    double p = spec[size_t(k)][0] * spec[size_t(k)][0] + spec[size_t(k)][1] * spec[size_t(k)][1];
    double f = double(k) * sr / n;
    total += p;
    if (f >= lo && f <= hi) inside += p;
  }
  return inside / total;
}

TEST(Synth, RenderedCallsStayInTheirDeclaredBand) {
  std::map<fsl::CallShape, int> seen;
  for (bool randomise : {false, true}) {
    fsl::SynthOptions opt;
    opt.randomise = randomise;
    for (int i = 0; i < 80; ++i) {
      std::mt19937_64 rng(1000 + i);
      const int sr = i % 2 ? 48000 : 22050;
      fsl::CallClass c = fsl::draw_class(rng, opt, 0.45 * sr);
      auto [lo, hi] = fsl::call_band(c);
      EXPECT_LE(hi, 0.45 * sr + 1) << fsl::to_string(c.shape);
      std::vector<float> y = fsl::render_call(c, rng, sr);
      double share = band_energy_share(y, sr, lo, hi);
      EXPECT_GT(share, 0.95) << fsl::to_string(c.shape) << " " << fsl::to_string(c.contour)
                             << " band " << lo << "-" << hi << " dur " << c.duration;
      // Narrow bands must be real: a class whose band is a tenth of the spectrum holds its
      // energy there, not elsewhere (a renderer ignoring the band would fail here).
      ++seen[c.shape];
    }
  }
  EXPECT_EQ(seen.size(), 6u);  // every call shape was drawn and checked
}

TEST(Synth, ConfusersShareTheBandButNotTheShape) {
  fsl::SynthOptions opt;
  for (int i = 0; i < 100; ++i) {
    std::mt19937_64 rng(77 + i);
    fsl::CallClass t = fsl::draw_class(rng, opt, 9000);
    fsl::CallClass d = fsl::draw_confuser(t, rng, opt);
    auto [tl, th] = fsl::call_band(t);
    auto [dl, dh] = fsl::call_band(d);
    double overlap = std::min(th, dh) - std::max(tl, dl);
    EXPECT_GT(overlap, 0.5 * std::min(th - tl, dh - dl)) << fsl::to_string(t.shape);
    bool differs = t.shape != d.shape || t.contour != d.contour || t.fm_trill != d.fm_trill ||
                   std::fabs(std::log(d.mod_rate + 1) - std::log(t.mod_rate + 1)) > 0.3;
    EXPECT_TRUE(differs) << fsl::to_string(t.shape);
  }
}

// A stationary white bed and one labelled class at a fixed SNR: the SNR measured on the final
// mixture (energy in events minus the noise floor measured between events) matches.
TEST(Synth, SnrOfEventsMatchesTheRequest) {
  fsl::SynthOptions opt;
  for (double snr : {0.0, 10.0, 20.0}) {
    std::mt19937_64 rng(42);
    fsl::FileSpec spec;
    spec.sr = 16000;
    spec.seconds = 60;
    fsl::CallClass c = fsl::draw_class(rng, opt, 7000);
    c.shape = fsl::CallShape::sweep;
    c.duration = 0.3;
    spec.labelled = {c};
    spec.counts = {40};
    spec.snr_lo = spec.snr_hi = snr;
    spec.unk_fraction = 0;
    spec.background.colour = fsl::NoiseColour::white;
    spec.background.level_swing_db = 0;
    fsl::SynthFile f = fsl::render_file(spec, rng, true);
    ASSERT_GE(f.events.size(), 30u);
    std::vector<char> in_event(f.audio.size(), 0);
    double sig_plus_noise = 0;
    size_t n_event = 0;
    for (const auto& e : f.events) {
      EXPECT_DOUBLE_EQ(e.snr_db, snr);
      for (size_t i = size_t(std::lround(e.start * f.sr)); i < size_t(std::lround(e.end * f.sr));
           ++i) {
        in_event[i] = 1;
        sig_plus_noise += double(f.audio[i]) * f.audio[i];
        ++n_event;
      }
    }
    double noise = 0;
    size_t n_noise = 0;
    for (size_t i = 0; i < f.audio.size(); ++i)
      if (!in_event[i]) noise += double(f.audio[i]) * f.audio[i], ++n_noise;
    double noise_power = noise / n_noise;
    double measured = 10 * std::log10((sig_plus_noise / n_event - noise_power) / noise_power);
    EXPECT_NEAR(measured, snr, 1.0);
    // The stems add up to the audio (no distractors, no channel effects).
    for (size_t i = 0; i < f.audio.size(); i += 997)
      EXPECT_NEAR(f.audio[i], f.final_gain * (f.labelled_stem[i] + f.bed_stem[i]), 1e-5);
  }
}

TEST(Synth, OverlapAddConvolutionMatchesDirectSum) {
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<float> u(-1, 1);
  for (size_t taps : {1u, 7u, 300u, 5000u}) {
    std::vector<float> x(20000), h(taps);
    for (auto& v : x) v = u(rng);
    for (auto& v : h) v = u(rng);
    std::vector<float> y = fsl::convolve_same(x, h);
    ASSERT_EQ(y.size(), x.size());
    for (size_t i = 0; i < x.size(); i += 131) {
      double direct = 0;
      for (size_t k = 0; k < taps && k <= i; ++k) direct += double(h[k]) * x[i - k];
      EXPECT_NEAR(y[i], direct, 1e-3 * (1 + std::sqrt(double(taps))))
          << "taps " << taps << " i " << i;
    }
  }
}

TEST(Synth, BadArgumentsExitWithAClearMessage) {
  TempDir dir;
  const std::string app = fsl::test::bin_path("fsl_synth").string();
  std::string out;
  EXPECT_EQ(fsl::test::run_command(app + " --scale huge --out " + (dir / "x").string(), &out), 1);
  EXPECT_NE(out.find("huge"), std::string::npos) << out;
  std::ofstream(dir / "afile") << "x";
  out.clear();
  EXPECT_EQ(
      fsl::test::run_command(app + " --quiet --out " + (dir / "afile" / "sub").string(), &out), 1);
  EXPECT_NE(out.find("cannot create output directory"), std::string::npos) << out;
  out.clear();
  EXPECT_EQ(fsl::test::run_command(app + " --seed 1", &out), 1);  // --out is required
  EXPECT_NE(out.find("--out"), std::string::npos) << out;
}

}  // namespace
