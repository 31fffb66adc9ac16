// Hand-made feature matrices for the detection tests: a constant (lightly noisy) background with
// bumps of a distinct spectral shape at known frames, the files holding them, and an embedder whose
// prototypes can be computed by hand.
#pragma once
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "fsl/detect.hpp"
#include "fsl/npy.hpp"
#include "testutil.hpp"

namespace fsl::test {

inline const double kFps = 22050.0 / 256.0;
constexpr int kMels = 8;

inline fsl::Config test_config() {
  fsl::Config c;
  c.eval.neg_iterations = 3;
  c.eval.neg_windows = 150;
  c.eval.batch_size = 64;
  c.eval.negatives = "prototypes";  // the baseline's formula, computed by hand below
  return c;
}

// (frames, kMels): background 0 (+ noise), bins 0..3 raised by `height` inside each bump.
inline std::vector<float> bump_matrix(long frames, const std::vector<fsl::FrameSpan>& bumps, float height,
                               float noise) {
  std::vector<float> x(size_t(frames) * kMels);
  uint32_t s = 12345;
  for (auto& v : x) {
    s = s * 1664525u + 1013904223u;
    v = noise * (float(s >> 8) / float(1 << 24) - 0.5f);
  }
  for (const auto& b : bumps)
    for (long t = b.begin; t < b.end; ++t)
      for (int m = 0; m < 4; ++m) x[size_t(t) * kMels + m] += height;
  return x;
}

// Annotation whose margin-widened frames are exactly [b, e): floor((on - 25 ms) * fps) = b.
inline fsl::EventSpan exact_annotation(fsl::FrameSpan f) {
  return {(f.begin + 0.5) / kFps + 0.025, (f.end + 0.5) / kFps - 0.025};
}

inline fsl::DetectFile write_file(const fsl::test::TempDir& dir, const std::string& name,
                           const std::vector<float>& x, std::vector<fsl::EventSpan> pos) {
  fsl::DetectFile f;
  f.name = name;
  f.feature_path = (dir / (name + "_logmel.npy")).string();
  fsl::npy_write(f.feature_path, x.data(), {x.size() / kMels, size_t(kMels)});
  f.pos = std::move(pos);
  return f;
}

// Embedding = mean over time of each window: prototypes are computable by hand.
struct MeanOverTime : fsl::Embedder {
  int dim() const override { return kMels; }
  void embed(const float* w, int B, int T, int M, float* out) override {
    for (int b = 0; b < B; ++b)
      for (int m = 0; m < M; ++m) {
        double s = 0;
        for (int t = 0; t < T; ++t) s += w[(size_t(b) * T + t) * M + m];
        out[size_t(b) * M + m] = float(s / T);
      }
  }
  // Shared maps: row r = the mean of frames [8 r, 8 r + 8); a window = the mean of its rows, so
  // a window that starts on a row and spans whole rows embeds exactly as embed() does.
  int map_stride() const override { return 8; }
  size_t map_floats(int T) const override { return size_t(T / 8) * kMels; }
  void run_maps(const float* runs, int B, int T, int M, float* maps) override {
    for (int b = 0; b < B; ++b)
      for (int r = 0; r < T / 8; ++r)
        for (int m = 0; m < M; ++m) {
          double s = 0;
          for (int t = 8 * r; t < 8 * r + 8; ++t) s += runs[(size_t(b) * T + t) * M + m];
          maps[size_t(b) * map_floats(T) + size_t(r) * M + m] = float(s / 8);
        }
  }
  void pool_rows(const float* maps, int T, int r0, int rows, float* out) const override {
    if (r0 < 0 || r0 + rows > T / 8) throw std::out_of_range("pool_rows outside the maps");
    for (int m = 0; m < kMels; ++m) {
      double s = 0;
      for (int r = r0; r < r0 + rows; ++r) s += maps[size_t(r) * kMels + m];
      out[m] = float(s / rows);
    }
  }
};


// Bumps of 20 frames; the first 5 are the shots, the 4 later ones must be found.
inline const std::vector<fsl::FrameSpan> kShots = {
    {100, 120}, {300, 320}, {500, 520}, {700, 720}, {900, 920}};
inline const std::vector<fsl::FrameSpan> kLater = {{1200, 1220}, {1500, 1520}, {1800, 1820}, {2100, 2120}};

inline std::vector<fsl::FrameSpan> all_bumps() {
  auto b = kShots;
  b.insert(b.end(), kLater.begin(), kLater.end());
  return b;
}

// A feature file whose POS annotations are exactly the 5 shot bumps (kShots).
inline fsl::DetectFile write_with_shots(const TempDir& dir, const std::string& name,
                                        const std::vector<float>& x) {
  std::vector<fsl::EventSpan> pos;
  for (auto s : kShots) pos.push_back(exact_annotation(s));
  return write_file(dir, name, x, pos);
}

// A validation-layout reference: <dir>/S/f.csv with 5 shots (1..5 s) and later POS at 10, 20, 30 s.
inline void write_reference(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir / "S");
  std::ofstream csv(dir / "S" / "f.csv");
  csv << "Audiofilename,Starttime,Endtime,Q\n";
  for (int i = 1; i <= 5; ++i) csv << "f.wav," << i << "," << i << ".2,POS\n";
  for (int s : {10, 20, 30}) csv << "f.wav," << s << "," << s << ".5,POS\n";
}

}  // namespace fsl::test
