#include <gtest/gtest.h>

#include <fstream>
#include <cmath>
#include <map>
#include <set>

#include "fsl/data.hpp"
#include "fsl/error.hpp"
#include "fsl/fileio.hpp"
#include "fsl/npy.hpp"
#include "testutil.hpp"

using namespace fsl;

namespace {
// Writes <dir>/<sub>/<stem>.wav (empty placeholder) + .csv + _logmel.npy where frame t, mel m
// holds t * 1000 + m, so every gathered value says where it came from.
void make_file(const fs::path& dir, const std::string& sub, const std::string& stem,
               const std::string& csv, int frames, int mels) {
  fs::create_directories(dir / sub);
  std::ofstream(dir / sub / (stem + ".wav")) << "x";
  std::ofstream(dir / sub / (stem + ".csv")) << csv;
  std::vector<float> f(size_t(frames) * mels);
  for (int t = 0; t < frames; ++t)
    for (int m = 0; m < mels; ++m) f[size_t(t) * mels + m] = float(t * 1000 + m);
  npy_write((dir / sub / (stem + "_logmel.npy")).string(), f.data(), {size_t(frames), size_t(mels)});
}
}  // namespace

TEST(Data, SecondsToFrameIsFloorClampedAtZero) {
  EXPECT_EQ(seconds_to_frame(1.0, 86.1328125), 86);
  EXPECT_EQ(seconds_to_frame(-0.01, 86.1), 0);
  EXPECT_EQ(seconds_to_frame(0.0116, 86.1328125), 0);
}

TEST(Data, EventClassesWithMarginsAndPerFileGaps) {
  test::TempDir dir;
  // fps 10 makes frames easy: margin 0.05 s -> half a frame.
  make_file(dir.path, "A", "f1",
            "Audiofilename,Starttime,Endtime,dog,cat\nf1.wav,1.0,2.0,POS,NEG\n"
            "f1.wav,5.0,6.0,POS,POS\nf1.wav,5.5,5.8,NEG,POS\n",
            100, 4);
  make_file(dir.path, "B", "f2", "Audiofilename,Starttime,Endtime,CALL\nf2.wav,0.5,0.9,POS\n"
                                 "f2.wav,3.0,3.4,POS\n", 50, 4);
  FeatureStore store(4, 0.f, 1.f);
  auto classes = build_event_classes(dir.path.string(), "logmel", 10.0, store, 0.05, 0.2);
  ASSERT_EQ(classes.size(), 3u);  // dog, cat (file A), B (CALL -> subset name)
  std::map<std::string, const EventClass*> by;
  for (auto& c : classes) by[c.name] = &c;
  ASSERT_TRUE(by.count("dog") && by.count("cat") && by.count("B"));
  const auto& dog = *by["dog"];
  ASSERT_EQ(dog.pos.size(), 2u);
  EXPECT_EQ(dog.pos[0].start, 9);   // floor((1.0-0.05)*10)
  EXPECT_EQ(dog.pos[0].end, 20);    // floor((2.0+0.05)*10)
  ASSERT_EQ(dog.neg.size(), 1u);    // the gap between its two events
  EXPECT_EQ(dog.neg[0].start, 20);
  EXPECT_EQ(dog.neg[0].end, 49);
  EXPECT_EQ(by["cat"]->pos.size(), 2u);
  EXPECT_TRUE(by["cat"]->neg.empty());  // overlapping events leave no gap
  EXPECT_EQ(by["B"]->neg.size(), 1u);
  EXPECT_EQ(store.num_files(), 2);
}

TEST(Data, MissingFeatureFileIsNamed) {
  test::TempDir dir;
  make_file(dir.path, "A", "f1", "Audiofilename,Starttime,Endtime,CALL\nf1.wav,1,2,POS\n", 30, 4);
  fs::remove(dir.path / "A" / "f1_logmel.npy");
  FeatureStore store(4, 0.f, 1.f);
  try {
    build_event_classes(dir.path.string(), "logmel", 10.0, store);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("f1_logmel.npy"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("fsl_features export"), std::string::npos);
  }
}

TEST(Data, SamplerLayoutLabelsAndDeterminism) {
  std::vector<EventClass> classes(5);
  for (int c = 0; c < 5; ++c) {
    classes[c].name = "c" + std::to_string(c);
    for (int i = 0; i < 3; ++i) {
      classes[c].pos.push_back({c, i * 10, i * 10 + 5});
      classes[c].neg.push_back({c, i * 10 + 5, i * 10 + 10});
    }
  }
  EpisodeSampler s1(classes, 3, 2, true, 7), s2(classes, 3, 2, true, 7);
  auto a = s1.next(), b = s2.next();
  ASSERT_EQ(a.size(), size_t(3 * 4 * 2));
  EXPECT_EQ(s1.batch_size(), 24);
  std::set<int> pos_classes;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].label, b[i].label);
    EXPECT_EQ(a[i].range.start, b[i].range.start);
    const bool neg = i >= 12;
    EXPECT_EQ(a[i].label % 2, neg ? 1 : 0);
    const int c = a[i].label / 2;
    EXPECT_EQ(a[i].range.file, c);  // drawn from its own class
    EXPECT_EQ(a[i].range.start % 10, neg ? 5 : 0);
    if (!neg) pos_classes.insert(c);
    else EXPECT_EQ(a[i].label, a[i - 12].label + 1);  // paired with the positive
  }
  EXPECT_EQ(pos_classes.size(), 3u);  // k_way distinct classes
  // RNG state round trip gives the same next episode.
  std::string st = s1.rng_state();
  auto n1 = s1.next();
  s2.set_rng_state(st);
  auto n2 = s2.next();
  for (size_t i = 0; i < n1.size(); ++i) EXPECT_EQ(n1[i].range.start, n2[i].range.start);
  EXPECT_THROW(EpisodeSampler(classes, 6, 2, true, 1), Error);  // k_way > classes
}

TEST(Data, GatherCropTilePadAndNormalise) {
  test::TempDir dir;
  const int M = 3;
  std::vector<float> f(40 * M);
  for (int t = 0; t < 40; ++t)
    for (int m = 0; m < M; ++m) f[t * M + m] = float(t * 1000 + m);
  npy_write((dir / "x.npy").string(), f.data(), {40, size_t(M)});
  FeatureStore store(M, 2.0f, 4.0f);
  store.add((dir / "x.npy").string());
  std::mt19937_64 rng(3);
  const int T = 6;
  std::vector<Draw> draws = {{{0, 10, 30}, 0}, {{0, 5, 9}, 0}, {{0, 20, 26}, 0}};
  std::vector<float> out(draws.size() * T * M);
  auto value = [](int t, int m) { return (float(t * 1000 + m) - 2.0f) / 4.0f; };
  for (const char* mode : {"tile", "pad"}) {
    gather_segments(store, draws, T, mode, rng, out.data());
    // long event: a contiguous crop inside [10, 30)
    int start = int(std::lround(out[0] * 4.0f + 2.0f)) / 1000;
    EXPECT_GE(start, 10);
    EXPECT_LE(start + T, 30);
    for (int t = 0; t < T; ++t)
      for (int m = 0; m < M; ++m) EXPECT_FLOAT_EQ(out[t * M + m], value(start + t, m));
    // short event of 4 frames: tiled 5,6,7,8,5,6 or padded with zeros
    for (int t = 0; t < T; ++t)
      for (int m = 0; m < M; ++m) {
        float want = std::string(mode) == "tile" ? value(5 + t % 4, m) : (t < 4 ? value(5 + t, m) : 0.f);
        EXPECT_FLOAT_EQ(out[(T + t) * M + m], want) << mode << " t=" << t;
      }
    // exact length: the event itself
    for (int t = 0; t < T; ++t) EXPECT_FLOAT_EQ(out[(2 * T + t) * M], value(20 + t, 0));
  }
}
