// Few-shot detection on hand-made feature matrices: a constant (lightly noisy) background with
// bumps of a distinct spectral shape at known frames; the first 5 bumps are the shots.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>

#include "fsl/detect.hpp"
#include "fsl/error.hpp"
#include "fsl/fileio.hpp"
#include "fsl/model.hpp"
#include "fsl/npy.hpp"
#include "fsl/safetensors.hpp"
#include "detect_fixtures.hpp"
#include "testutil.hpp"

using namespace fsl::test;  // kFps, kMels, bump_matrix, write_file, MeanOverTime, ...

TEST(Detect, AdaptiveSegmentAtEveryBoundary) {
  struct Case {
    long max_len;
    int seg, hop;
  } cases[] = {{1, 8, 2},   {7, 8, 2},   {8, 8, 2},      {29, 29, 9},   {30, 15, 5},    {59, 29, 9},
               {60, 15, 5}, {61, 15, 5}, {499, 124, 41}, {500, 62, 20}, {1000, 125, 41}};
  for (const auto& c : cases) {
    auto plan = fsl::adaptive_segment(c.max_len, 30, 3);
    EXPECT_EQ(plan.seg, c.seg) << "max_len " << c.max_len;
    EXPECT_EQ(plan.hop, c.hop) << "max_len " << c.max_len;
  }
  EXPECT_EQ(fsl::adaptive_segment(20, 30, 100).hop, 1);  // never a zero hop
}

TEST(Detect, ShotFramesWidenByMarginsAndClamp) {
  auto f = fsl::shot_frames({{1.0, 2.0}, {0.01, 0.02}, {99, 100}}, kFps, 500);
  EXPECT_EQ(f[0].begin, long(std::floor(0.975 * kFps)));
  EXPECT_EQ(f[0].end, long(std::floor(2.025 * kFps)));
  EXPECT_EQ(f[1].begin, 0);
  EXPECT_EQ(f[2].begin, 500);  // past the end: empty, reported by the detectors
  EXPECT_EQ(f[2].length(), 0);
}

TEST(Detect, ShotWindowsEndAlignedAndTiled) {
  EXPECT_EQ(fsl::shot_window_starts({10, 30}, 8, 2),
            (std::vector<long>{10, 12, 14, 16, 18, 20, 22}));
  EXPECT_EQ(fsl::shot_window_starts({10, 31}, 8, 3), (std::vector<long>{10, 13, 16, 19, 22, 23}));
  EXPECT_EQ(fsl::shot_window_starts({10, 15}, 8, 2), (std::vector<long>{10}));
}

// Scores of "a.wav" whose p[i] covers [start + i * step, start + i * step + extent].
static fsl::FileScores timed_scores(double start, double step, double extent, double duration) {
  fsl::FileScores s;
  s.name = "a.wav";
  s.start_s = start;
  s.step_s = step;
  s.extent_s = extent;
  s.duration_s = duration;
  return s;
}

TEST(Detect, OnsetsFromRunsOfWindows) {
  auto s = timed_scores(10, 0.1, 0.3, 11.0);
  s.p = {0.1f, 0.9f, 0.7f, 0.2f, 0.5f, 0.6f, 0.9f, 0.99f};
  fsl::PostProcess none{0, 0, 0};
  auto ev = fsl::decide_events(s, 0.5, none);  // strictly above: 0.5 itself is not positive
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_NEAR(ev[0].start, 10.1, 1e-12);      // window 1
  EXPECT_NEAR(ev[0].end, 10.2 + 0.3, 1e-12);  // window 2 + its length
  EXPECT_NEAR(ev[1].start, 10.5, 1e-12);
  EXPECT_NEAR(ev[1].end, 11.0, 1e-12);  // 10.7 + 0.3 = 11.0 = duration
  s.duration_s = 10.9;
  EXPECT_NEAR(fsl::decide_events(s, 0.5, none)[1].end, 10.9, 1e-12);  // clipped
}

TEST(Detect, PostProcessingMinLengthAndMerge) {
  fsl::FileScores s;
  s.name = "a.wav";
  s.step_s = 0.01;
  s.extent_s = 0.01;
  s.duration_s = 100;
  s.shortest_shot_s = 0.5;
  // runs (in steps): [0,10) 0.10 s, [15,45) 0.30 s, [50,60) 0.10 s, [200,220) 0.20 s
  s.p.assign(300, 0.f);
  for (auto [a, b] : {std::pair{0, 10}, {15, 45}, {50, 60}, {200, 220}})
    for (int i = a; i < b; ++i) s.p[i] = 1.f;
  auto ev = fsl::decide_events(s, 0.5, {0.3, 0.05, 0});  // min 0.15 s
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_NEAR(ev[0].start, 0.15, 1e-9);
  EXPECT_NEAR(ev[1].start, 2.00, 1e-9);
  ev = fsl::decide_events(s, 0.5, {0.1, 0.25, 0});  // absolute minimum dominates: 0.25 s
  ASSERT_EQ(ev.size(), 1u);
  ev = fsl::decide_events(s, 0.5, {0.0, 0.0, 0.06});  // gaps 0.05 merge, 1.4 s does not
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_NEAR(ev[0].start, 0.0, 1e-9);
  EXPECT_NEAR(ev[0].end, 0.60, 1e-9);
  s.min_run_s = 0.25;  // the method's own minimum (the floor's half shortest shot)
  EXPECT_EQ(fsl::decide_events(s, 0.5, {0.0, 0.0, 0}).size(), 1u);
}

// eval.boundaries = shots: a 0.03 s call seen through 0.09 s windows at a 0.03 s hop. Every window
// containing the call [1.00, 1.03] is positive: starts 0.94, 0.97, 1.00, so the run is
// [0.94, 1.09] (two windows minus the call); trimming 0.06 s at each end gives the call back.
TEST(Detect, BoundariesFitToShotLength) {
  auto s = timed_scores(0.91, 0.03, 0.09, 2.0);
  s.mean_shot_s = 0.03;
  s.p = {0.f, 1.f, 1.f, 1.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f,
         1.f, 1.f, 1.f, 1.f, 1.f, 1.f, 1.f, 1.f, 1.f, 1.f, 0.f};  // a call, then a long run
  fsl::PostProcess pp{0, 0, 0};
  auto plain = fsl::decide_events(s, 0.5, pp);
  ASSERT_EQ(plain.size(), 2u);
  EXPECT_NEAR(plain[0].start, 0.94, 1e-9);
  EXPECT_NEAR(plain[0].end, 1.09, 1e-9);
  pp.fit_to_shots = true;
  auto fit = fsl::decide_events(s, 0.5, pp);
  ASSERT_EQ(fit.size(), 2u);
  EXPECT_NEAR(fit[0].start, 1.00, 1e-9);
  EXPECT_NEAR(fit[0].end, 1.03, 1e-9);
  // The long run [1.30, 1.66] (windows 13..22) loses 0.06 s at each end: [1.36, 1.60].
  EXPECT_NEAR(fit[1].start, 1.36, 1e-9);
  EXPECT_NEAR(fit[1].end, 1.60, 1e-9);
  // A single positive window is never narrowed below one mean shot length, around its centre.
  s.p = {0.f, 0.f, 1.f, 0.f};
  fit = fsl::decide_events(s, 0.5, pp);
  ASSERT_EQ(fit.size(), 1u);
  EXPECT_NEAR(fit[0].start, 0.97 + 0.03, 1e-9);
  EXPECT_NEAR(fit[0].end, 0.97 + 0.06, 1e-9);
  // Windows no longer than the shots are left alone, and so are steps that do not overlap (the
  // floor's frames), even around shots shorter than a step.
  s.mean_shot_s = 0.09;
  EXPECT_NEAR(fsl::decide_events(s, 0.5, pp)[0].start, 0.97, 1e-9);
  s.mean_shot_s = 0.01;
  s.extent_s = s.step_s;
  EXPECT_NEAR(fsl::decide_events(s, 0.5, pp)[0].start, 0.97, 1e-9);
  EXPECT_NEAR(fsl::decide_events(s, 0.5, pp)[0].end, 1.00, 1e-9);
}

// eval.merge_overlaps: runs of 0.3 s windows at a 0.1 s hop with one negative window between
// them give events [1.0, 1.5] and [1.4, 1.8], which overlap: one event. Runs farther apart than
// a window stay two.
TEST(Detect, OverlappingEventsMerge) {
  auto s = timed_scores(1.0, 0.1, 0.3, 10);
  s.p = {1, 1, 1, 0, 1, 1, 0, 0, 0, 0, 1, 0};  // windows 0-2, 4-5, 10
  fsl::PostProcess pp{0, 0, 0};
  ASSERT_EQ(fsl::decide_events(s, 0.5, pp).size(), 3u);
  pp.merge_overlaps = true;
  auto ev = fsl::decide_events(s, 0.5, pp);
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_NEAR(ev[0].start, 1.0, 1e-9);
  EXPECT_NEAR(ev[0].end, 1.8, 1e-9);  // window 5 ends at 1.5 + 0.3
  EXPECT_NEAR(ev[1].start, 2.0, 1e-9);
  EXPECT_NEAR(ev[1].end, 2.3, 1e-9);
}

TEST(Detect, PredictionsSortedAndCsvHeader) {

  fsl::FileScores a, b;
  a.name = "b.wav";
  b.name = "a.wav";
  for (auto* s : {&a, &b}) {
    s->step_s = s->extent_s = 1;
    s->duration_s = 10;
    s->p = {1, 0, 1, 0};
  }
  auto preds = fsl::predictions_at({a, b}, 0.5, {0, 0, 0});
  ASSERT_EQ(preds.size(), 4u);
  EXPECT_EQ(preds[0].file, "a.wav");
  EXPECT_EQ(preds[1].start, 2.0);
  EXPECT_EQ(fsl::predictions_csv(preds).substr(0, 55),
            "Audiofilename,Starttime,Endtime\na.wav,0.000,1.000\na.wav");
  EXPECT_EQ(fsl::threshold_name(0.05 * 3), "0.15");
  auto t = fsl::sweep_thresholds();
  ASSERT_EQ(t.size(), 20u);
  EXPECT_NEAR(t.back(), 0.95, 1e-12);
}

TEST(Detect, MovingAverageCentred) {
  std::vector<float> x = {0, 0, 3, 0, 0};
  auto y = fsl::moving_average(x, 3);
  EXPECT_FLOAT_EQ(y[0], 0.f);
  EXPECT_FLOAT_EQ(y[1], 1.f);
  EXPECT_FLOAT_EQ(y[2], 1.f);
  EXPECT_FLOAT_EQ(y[3], 1.f);
  EXPECT_FLOAT_EQ(y[4], 0.f);
  EXPECT_FLOAT_EQ(fsl::moving_average({2, 4}, 3)[0], 3.f);  // clipped window at the ends
}

TEST(Detect, FloorFindsTheLaterBumps) {
  fsl::test::TempDir dir;
  auto x = bump_matrix(2500, all_bumps(), 5.f, 0.2f);
  std::vector<fsl::EventSpan> pos;
  for (auto s : kShots) pos.push_back({s.begin / kFps, s.end / kFps});  // margins widen these
  auto f = write_file(dir, "floor", x, pos);
  auto cfg = test_config();
  auto r = fsl::detect_frame_prototype(f, cfg);
  ASSERT_TRUE(r.warning.empty()) << r.warning;
  // Frame times are frame centres: the first query frame starts half a frame earlier.
  EXPECT_NEAR(r.scores.start_s, (std::floor((920 / kFps + 0.025) * kFps) - 0.5) / kFps, 1e-9);
  double mean_shot = 0;  // the annotated lengths, without the margins
  for (auto s : kShots) mean_shot += (s.end - s.begin) / kFps / kShots.size();
  EXPECT_NEAR(r.scores.mean_shot_s, mean_shot, 1e-9);
  auto start_cfg = cfg;  // the baseline's convention: frame t at t hops
  start_cfg.eval.frame_times = "start";
  EXPECT_NEAR(fsl::detect_frame_prototype(f, start_cfg).scores.start_s,
              std::floor((920 / kFps + 0.025) * kFps) / kFps, 1e-9);
  EXPECT_EQ(fsl::frame_start_time(0, cfg), 0.0);  // never before the file's start
  auto ev = fsl::decide_events(r.scores, 0.5, fsl::PostProcess::from(cfg.eval));
  ASSERT_EQ(ev.size(), kLater.size());
  for (size_t i = 0; i < ev.size(); ++i) {
    EXPECT_NEAR(ev[i].start * kFps, kLater[i].begin, 2.0) << "event " << i;
    EXPECT_NEAR(ev[i].end * kFps, kLater[i].end, 2.0) << "event " << i;
  }
}

TEST(Detect, EmbedderPathMatchesHandComputedProbabilities) {
  // Shots whose widened frames are exactly the bumps: the positive prototype is the bump
  // (1,1,1,1,0,0,0,0), the negative the background 0. A query window with a fraction f of bump
  // frames embeds to f * bump, so d_pos = 4 (1-f)^2, d_neg = 4 f^2, p = 1 / (1 + exp(4 (1 - 2f))).
  fsl::test::TempDir dir;
  auto x = bump_matrix(2500, all_bumps(), 1.f, 0.f);
  auto f = write_with_shots(dir, "emb", x);
  auto cfg = test_config();
  MeanOverTime embedder;
  auto r = fsl::detect_with_embedder(f, cfg, embedder, 0);
  ASSERT_TRUE(r.warning.empty()) << r.warning;
  const int seg = 20, hop = 6;  // max_len 20 < 30 -> seg 20, hop 20 / 3
  const long q0 = 920, n = 2500;
  EXPECT_NEAR(r.scores.start_s, (q0 - 0.5) / kFps, 1e-9);  // eval.frame_times = centre
  EXPECT_NEAR(r.scores.step_s, hop * 256.0 / 22050.0, 1e-12);
  EXPECT_NEAR(r.scores.extent_s, seg * 256.0 / 22050.0, 1e-12);
  const long n_query = (n - q0 - seg + hop - 1) / hop + 1;
  ASSERT_EQ(long(r.scores.p.size()), n_query);
  for (long w = 0; w < n_query; ++w) {
    long bump_frames = 0;
    for (long t = q0 + w * hop; t < q0 + w * hop + seg; ++t) {
      long row = std::min(t, n - 1);
      for (auto b : kLater) bump_frames += (row >= b.begin && row < b.end);
    }
    double frac = double(bump_frames) / seg;
    double expect = 1.0 / (1.0 + std::exp(4.0 * (1.0 - 2.0 * frac)));
    ASSERT_NEAR(r.scores.p[w], expect, 1e-5) << "window " << w;
  }
  // Windows with more than half their frames in a bump are the events.
  auto ev = fsl::decide_events(r.scores, 0.5, {0, 0, 0});
  ASSERT_EQ(ev.size(), kLater.size());
}

TEST(Detect, SharedMapsEqualPerWindowWhereWindowsAlignWithTheMapRows) {
  // Bumps of 24 frames: seg 24, hop 8 = the map stride, so every query window starts on a map row
  // and spans 3 whole rows, and the mean-over-time embedder's pooled rows equal its per-window
  // embedding. 6000 frames: the queries span several runs of maps; the last windows run past the
  // end (edge frames repeated on both paths).
  fsl::test::TempDir dir;
  std::vector<fsl::FrameSpan> shots, bumps;
  for (int i = 0; i < 5; ++i) shots.push_back({100 + 200 * i, 124 + 200 * i});
  bumps = shots;
  for (long b = 1300; b + 24 < 6000; b += 437) bumps.push_back({b, b + 24});
  auto x = bump_matrix(6003, bumps, 1.f, 0.3f);
  std::vector<fsl::EventSpan> pos;
  for (auto s : shots) pos.push_back(exact_annotation(s));
  auto f = write_file(dir, "shared", x, pos);
  auto cfg = test_config();
  cfg.eval.negatives = "nearest";
  MeanOverTime embedder;
  auto per_window = fsl::detect_with_embedder(f, cfg, embedder, 0);
  cfg.eval.shared_maps = true;
  auto shared = fsl::detect_with_embedder(f, cfg, embedder, 0);
  ASSERT_EQ(shared.scores.extent_s, per_window.scores.extent_s);
  ASSERT_NEAR(per_window.scores.step_s * kFps, 8.0, 1e-9);
  ASSERT_EQ(shared.scores.p.size(), per_window.scores.p.size());
  ASSERT_GT(shared.scores.p.size(), 600u);
  for (size_t w = 0; w < shared.scores.p.size(); ++w)
    ASSERT_NEAR(shared.scores.p[w], per_window.scores.p[w], 1e-5) << "window " << w;
}

TEST(Detect, SharedMapsNeedAnEmbedderThatOffersThem) {
  fsl::test::TempDir dir;
  auto f = write_with_shots(dir, "nomaps", bump_matrix(2500, all_bumps(), 1.f, 0.f));
  auto cfg = test_config();
  cfg.eval.shared_maps = true;
  struct NoMaps : MeanOverTime {
    int map_stride() const override { return 0; }
  } embedder;
  try {
    fsl::detect_with_embedder(f, cfg, embedder, 0);
    FAIL() << "expected an error";
  } catch (const fsl::Error& e) {
    EXPECT_NE(std::string(e.what()).find("eval.shared_maps"), std::string::npos) << e.what();
  }
}

TEST(Detect, NegativePrototypeUsesOnlyBackgroundBeforeTheLastShot) {
  // Background before the last shot is 0, after it 0.5 on bins 4..7: a negative prototype that
  // looked past the last shot (or at the shots) would move the hand-computed p.
  fsl::test::TempDir dir;
  auto x = bump_matrix(1500, kShots, 1.f, 0.f);
  for (long t = 920; t < 1500; ++t)
    for (int m = 4; m < 8; ++m) x[size_t(t) * kMels + m] = 0.5f;
  auto f = write_with_shots(dir, "neg", x);
  MeanOverTime embedder;
  auto r = fsl::detect_with_embedder(f, test_config(), embedder, 3);
  ASSERT_FALSE(r.scores.p.empty());
  // query = (0,0,0,0,.5,.5,.5,.5): d_pos = 4 + 1, d_neg = 1
  EXPECT_NEAR(r.scores.p[0], 1.0 / (1.0 + std::exp(4.0)), 1e-6);
}

TEST(Detect, NearestNegativesRejectAConfuserThePrototypeAccepts) {
  // Target bumps 1.0 on bins 0..3; a weaker "confuser" 0.7 on the same bins in the background
  // before the last shot ([200, 260)) and once after it ([1300, 1360)). A window inside the
  // later confuser embeds to 0.7 (bins 0..3): d_pos = 4 * 0.3^2 = 0.36. The mean negative
  // prototype is ~0.05 (few background windows hold the confuser): d_neg ~ 4 * 0.65^2, p ~ 0.79,
  // a false event at threshold 0.6. With the nearest drawn window (k = 1) d_neg = 0 (an
  // identical window is among the draws), p = 0; a window 90% inside a target bump has
  // d_pos = 0.04, nearest d_neg = 4 * 0.2^2, p = 0.8: the four target bumps stay events.
  fsl::test::TempDir dir;
  auto x = bump_matrix(2500, all_bumps(), 1.f, 0.f);
  for (auto [b, e] : {std::pair{200, 260}, std::pair{1300, 1360}})
    for (long t = b; t < e; ++t)
      for (int m = 0; m < 4; ++m) x[size_t(t) * kMels + m] = 0.7f;
  auto f = write_with_shots(dir, "confuser", x);
  MeanOverTime embedder;
  auto cfg = test_config();
  auto proto = fsl::detect_with_embedder(f, cfg, embedder, 0);
  cfg.eval.negatives = "nearest";
  cfg.eval.neg_nearest_k = 1;
  auto nearest = fsl::detect_with_embedder(f, cfg, embedder, 0);
  ASSERT_EQ(proto.scores.p.size(), nearest.scores.p.size());
  const long q0 = 920, seg = 20, hop = 6;
  int inside = 0;
  for (size_t w = 0; w < nearest.scores.p.size(); ++w) {
    const long t0 = q0 + long(w) * hop;
    if (t0 >= 1300 && t0 + seg <= 1360) {  // wholly inside the later confuser
      ++inside;
      EXPECT_GT(proto.scores.p[w], 0.6) << "window " << w;
      EXPECT_EQ(nearest.scores.p[w], 0.0f) << "window " << w;
    }
  }
  EXPECT_GT(inside, 3);
  auto ev_proto = fsl::decide_events(proto.scores, 0.6, {0, 0, 0});
  auto ev_near = fsl::decide_events(nearest.scores, 0.6, {0, 0, 0});
  EXPECT_EQ(ev_proto.size(), kLater.size() + 1);  // the confuser too
  ASSERT_EQ(ev_near.size(), kLater.size());
  for (size_t i = 0; i < kLater.size(); ++i)
    EXPECT_NEAR(ev_near[i].start * kFps, kLater[i].begin, hop) << "event " << i;
}

TEST(Detect, FilesWithoutBackgroundOrTailOrShotsGetNoPredictions) {
  fsl::test::TempDir dir;
  auto cfg = test_config();
  MeanOverTime embedder;
  // Shots covering every frame before the 5th shot's end.
  auto x = bump_matrix(1000, {{0, 500}}, 1.f, 0.f);
  std::vector<fsl::EventSpan> cover;
  for (int i = 0; i < 5; ++i) cover.push_back({i * 1.0, (i + 1) * 1.0});
  auto f = write_file(dir, "cover", x, cover);
  for (auto r :
       {fsl::detect_frame_prototype(f, cfg), fsl::detect_with_embedder(f, cfg, embedder, 0)}) {
    EXPECT_NE(r.warning.find("cover"), std::string::npos);
    EXPECT_NE(r.warning.find("no background"), std::string::npos);
    EXPECT_TRUE(r.scores.p.empty());
    EXPECT_FALSE(r.skipped);
  }
  // The 5th shot ends at the end of the audio.
  std::vector<fsl::EventSpan> late = {{1, 1.1}, {2, 2.1}, {3, 3.1}, {4, 4.1}, {11.5, 12.0}};
  auto g = write_file(dir, "late", x, late);  // 1000 frames = 11.6 s
  for (auto r :
       {fsl::detect_frame_prototype(g, cfg), fsl::detect_with_embedder(g, cfg, embedder, 0)}) {
    EXPECT_NE(r.warning.find("late"), std::string::npos);
    EXPECT_NE(r.warning.find("no audio after"), std::string::npos);
    EXPECT_TRUE(r.scores.p.empty());
  }
  // Four POS only: skipped.
  auto h = write_file(dir, "four", x, {{1, 1.1}, {2, 2.1}, {3, 3.1}, {4, 4.1}});
  auto r = fsl::detect_frame_prototype(h, cfg);
  EXPECT_TRUE(r.skipped);
  EXPECT_NE(r.warning.find("four"), std::string::npos);
  // A missing feature file is an Error naming it.
  h.feature_path = (dir / "missing_logmel.npy").string();
  try {
    fsl::detect_frame_prototype(h, cfg);
    FAIL() << "no error";
  } catch (const fsl::Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing_logmel.npy"), std::string::npos);
  }
}

// fsl_eval --from-scores: the saved p and timing come back exactly (floats print with 9
// significant digits, doubles with 17), and post-processing on them gives the same events.
TEST(Detect, FileScoresRoundTripAndErrors) {
  fsl::FileScores a, b;
  a.name = "a.wav";
  a.start_s = 1.0 / 3.0;
  a.step_s = 256.0 / 22050.0;
  a.extent_s = 8 * a.step_s;
  a.duration_s = 12.345678901234;
  a.shortest_shot_s = 0.0731;
  a.min_run_s = 0.01;
  a.mean_shot_s = 0.0312;
  a.p = {0.f, 0.1234567f, 1.f, 0.999999f, 1e-8f, 1e-42f};  // and a denormal
  b.name = "silent.wav";  // a file without predictions keeps an empty p
  const auto back = fsl::parse_file_scores(fsl::file_scores_text({a, b}), "scores.txt");
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].name, "a.wav");
  EXPECT_EQ(back[0].p, a.p);
  for (auto [x, y] : {std::pair{back[0].start_s, a.start_s}, {back[0].step_s, a.step_s},
                      {back[0].extent_s, a.extent_s}, {back[0].duration_s, a.duration_s},
                      {back[0].shortest_shot_s, a.shortest_shot_s},
                      {back[0].min_run_s, a.min_run_s}, {back[0].mean_shot_s, a.mean_shot_s}})
    EXPECT_EQ(x, y);
  EXPECT_EQ(back[1].name, "silent.wav");
  EXPECT_TRUE(back[1].p.empty());
  fsl::PostProcess pp{0.3, 0.05, 0, true};
  EXPECT_EQ(fsl::predictions_csv(fsl::predictions_at(back, 0.5, pp)),
            fsl::predictions_csv(fsl::predictions_at({a, b}, 0.5, pp)));

  auto error_of = [](const std::string& text) -> std::string {
    try {
      fsl::parse_file_scores(text, "s.txt");
    } catch (const fsl::Error& e) {
      return e.what();
    }
    return "no error";
  };
  const std::string head = "fsl-file-scores v1\n";
  EXPECT_NE(error_of("name 1 2\n").find("s.txt:1: not an fsl scores file"), std::string::npos);
  EXPECT_NE(error_of(head + "a.wav 0 0.1 0.1 5 0.1 0 0.1\n0.5\n").find("s.txt:2:"),
            std::string::npos);  // the count is missing
  EXPECT_NE(error_of(head + "a.wav 0 0.1 0.1 5 0.1 0 0.1 3\n").find("s.txt:3: the p values"),
            std::string::npos);
  EXPECT_NE(error_of(head + "a.wav 0 0.1 0.1 5 0.1 0 0.1 3\n0.5 0.2\n").find("s.txt:3: a.wav"),
            std::string::npos);
  EXPECT_NE(error_of(head + "a.wav 0 0.1 0.1 5 0.1 0 0.1 2\n0.5 nan\n").find("finite"),
            std::string::npos);
  EXPECT_NE(error_of(head + "a.wav 0 0.1 0.1 5 0.1 0 0.1 1\n0.5 0.2\n").find("more than 1"),
            std::string::npos);
  b.name = "two words.wav";
  EXPECT_THROW(fsl::file_scores_text({b}), fsl::Error);
}

TEST(Detect, FloorProbabilitiesAreFiniteOnConstantFeatures) {
  // Every bin constant: z-scores are 0 everywhere (std 0 handled), p = 0.5, never NaN.
  fsl::test::TempDir dir;
  std::vector<float> x(size_t(1200) * kMels, -3.f);
  std::vector<fsl::EventSpan> pos;
  for (auto s : kShots) pos.push_back({s.begin / kFps, s.end / kFps});
  auto r = fsl::detect_frame_prototype(write_file(dir, "flat", x, pos), test_config());
  ASSERT_FALSE(r.scores.p.empty());
  for (float p : r.scores.p) ASSERT_FLOAT_EQ(p, 0.5f);
}

namespace {
long status_kb(const char* key) {  // a "VmXXX:  N kB" line of /proc/self/status
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key, 0) == 0) return std::stol(line.substr(std::string(key).size() + 1));
  return -1;
}

// Writes a 10-hour (frames, kMels) matrix chunk by chunk (never whole in memory): bumps every
// 10000 frames after the shots.
void write_long_matrix(const std::string& path, long frames) {
  std::string h = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(frames) +
                  ", " + std::to_string(kMels) + "), }";
  h.append((64 - (10 + h.size() + 1) % 64) % 64, ' ');
  h += '\n';
  std::ofstream out(path, std::ios::binary);
  out.write("\x93NUMPY\x01\x00", 8);
  char len[2] = {char(h.size() & 0xff), char(h.size() >> 8)};
  out.write(len, 2);
  out << h;
  const long chunk = 1 << 16;
  std::vector<float> buf;
  for (long c0 = 0; c0 < frames; c0 += chunk) {
    long c1 = std::min(frames, c0 + chunk);
    buf.assign(size_t(c1 - c0) * kMels, 0.f);
    for (long t = c0; t < c1; ++t) {
      bool bump = (t >= 2000 && t % 10000 < 24);  // 24 frames: seg 24, hop 8 = the map stride
      for (auto s : kShots) bump |= (t >= s.begin && t < s.begin + 24);
      for (int m = 0; m < 4 && bump; ++m) buf[size_t(t - c0) * kMels + m] = 1.f;
    }
    out.write(reinterpret_cast<const char*>(buf.data()), buf.size() * sizeof(float));
  }
  ASSERT_TRUE(out.good());
}
}  // namespace

TEST(Detect, TenHourFileStreamsInBoundedMemory) {
  fsl::test::TempDir dir;
  const long frames = 3100000;  // 10 h at 86.13 frames/s; 99 MB of features
  fsl::DetectFile f;
  f.name = "long.wav";
  f.feature_path = (dir / "long_logmel.npy").string();
  write_long_matrix(f.feature_path, frames);
  for (auto s : kShots) f.pos.push_back(exact_annotation({s.begin, s.begin + 24}));
  auto cfg = test_config();
  cfg.eval.batch_size = 256;
  MeanOverTime embedder;
  bool can_reset_peak = static_cast<bool>(std::ofstream("/proc/self/clear_refs") << "5");
  if (!can_reset_peak) GTEST_SKIP() << "cannot reset the peak RSS (/proc/self/clear_refs)";
  for (int method = 2; method >= 0; --method) {  // 2: the embedder with eval.shared_maps
    cfg.eval.shared_maps = method == 2;
    std::ofstream("/proc/self/clear_refs") << "5";  // peak RSS := current RSS
    long before = status_kb("VmRSS:");
    auto r = method == 0 ? fsl::detect_frame_prototype(f, cfg)
                         : fsl::detect_with_embedder(f, cfg, embedder, 0);
    long peak = status_kb("VmHWM:");
    ASSERT_TRUE(r.warning.empty()) << r.warning;
    // The floor keeps p and its smoothed copy (2 x 12.4 MB); the encoder path one p per hop.
    // Mapping the features without releasing them would add their 99 MB.
    const long budget_kb = method == 0 ? 32 * 1024 : 8 * 1024;
    EXPECT_LT(peak - before, budget_kb)
        << (method == 0 ? "floor" : "embedder") << " grew " << (peak - before) / 1024 << " MB";
    auto ev = fsl::decide_events(r.scores, 0.5, {0, 0, 0});
    // Later bumps at every multiple of 10000 frames from 10000 to 3090000.
    EXPECT_EQ(long(ev.size()), (frames - 1) / 10000) << (method == 0 ? "floor" : "embedder");
  }
}

TEST(Detect, SweepPicksTheThresholdThatSeparatesTrueFromFalseBumps) {
  // p 0.77 on the true events, 0.52 on two false bumps (15 s, 25 s), 0.1 elsewhere: thresholds
  // 0.55..0.75 score F = 1, lower ones add 2 FP, higher ones find nothing.
  fsl::test::TempDir dir;
  write_reference(dir.path);
  fsl::FileScores s;
  s.name = "f.wav";
  s.start_s = 5.5;
  s.step_s = s.extent_s = 0.01;
  s.duration_s = 40;
  s.p.assign(3450, 0.1f);
  auto fill = [&](double on, float v) {
    for (int i = 0; i < 50; ++i) s.p[size_t(std::lround((on - 5.5) / 0.01)) + i] = v;
  };
  for (double on : {10.0, 20.0, 30.0}) fill(on, 0.77f);
  for (double on : {15.0, 25.0}) fill(on, 0.52f);
  auto results = fsl::score_thresholds({s}, fsl::sweep_thresholds(), {0, 0, 0}, dir.path.string());
  ASSERT_EQ(results.size(), 20u);
  const auto& best = results[fsl::best_threshold(results)];
  EXPECT_EQ(fsl::threshold_name(best.threshold), "0.55");
  EXPECT_NEAR(best.scores.fmeasure, 1.0, 1e-9);
  EXPECT_EQ(results[10].scores.subsets.at(0).fp, 2);  // 0.50: the false bumps count
  EXPECT_EQ(results[15].predictions.size(), 3u);      // 0.75
  EXPECT_EQ(results[16].predictions.size(), 0u);      // 0.80
}

TEST(Detect, EvalAppWritesCsvAndScoresAndNamesMissingFeatures) {
  fsl::test::TempDir dir;
  auto ref = dir / "val";
  write_reference(ref);
  std::string app = fsl::test::bin_path("fsl_eval").string();
  std::string cmd = app + " " + fsl::test::data_path("../../conf/config.yaml").string() +
                    " path.eval_dir=" + ref.string() + " path.test_dir=" + ref.string() +
                    " path.work_dir=" + (dir / "runs").string() + " eval.method=frame_prototype";
  std::string out;
  EXPECT_EQ(fsl::test::run_command(cmd, &out), 1);
  EXPECT_NE(out.find("f_logmel.npy"), std::string::npos) << out;
  EXPECT_NE(out.find("fsl_features export"), std::string::npos) << out;
  // Features: bumps (bins 0..3) at the shots and at 10, 20, 30 s; 40 s in all.
  std::vector<fsl::FrameSpan> bumps;
  for (double on : {1.0, 2.0, 3.0, 4.0, 5.0})
    bumps.push_back({long(on * kFps), long((on + 0.2) * kFps)});
  for (double on : {10.0, 20.0, 30.0}) bumps.push_back({long(on * kFps), long((on + 0.5) * kFps)});
  auto x = bump_matrix(long(40 * kFps), bumps, 3.f, 0.3f);
  fsl::npy_write((ref / "S" / "f_logmel.npy").string(), x.data(),
                 {x.size() / kMels, size_t(kMels)});
  out.clear();
  ASSERT_EQ(fsl::test::run_command(cmd + " --threshold 0.5", &out), 0) << out;
  EXPECT_NE(out.find("overall"), std::string::npos) << out;
  auto csv = fsl::read_predictions((dir / "runs/default/eval/0.50/Eval_out.csv").string());
  ASSERT_EQ(csv.size(), 3u);
  EXPECT_NEAR(csv[1].start, 20.0, 0.03);
  auto json = fsl::read_text(dir / "runs/default/eval/0.50/scores.json");
  EXPECT_NE(json.find("\"tp\": 3, \"fp\": 0, \"fn\": 0"), std::string::npos) << json;
  // --from-scores: the saved p rescored without detection gives the same CSV; a stricter
  // minimum length (longer than every 0.5 s event) drops them all.
  const auto saved = dir / "runs/default/eval/file_scores.txt";
  ASSERT_TRUE(std::filesystem::exists(saved));
  const std::string first_csv = fsl::read_text(dir / "runs/default/eval/0.50/Eval_out.csv");
  out.clear();
  ASSERT_EQ(fsl::test::run_command(cmd + " exp_name=again --threshold 0.5 --from-scores " +
                                       saved.string(), &out), 0) << out;
  EXPECT_EQ(fsl::read_text(dir / "runs/again/eval/0.50/Eval_out.csv"), first_csv);
  out.clear();
  ASSERT_EQ(fsl::test::run_command(cmd + " exp_name=again --threshold 0.5 eval.min_len_s=0.8 " +
                                       "--from-scores " + saved.string(), &out), 0) << out;
  EXPECT_EQ(fsl::read_predictions((dir / "runs/again/eval/0.50/Eval_out.csv").string()).size(),
            0u);
  out.clear();
  EXPECT_EQ(fsl::test::run_command(cmd + " --from-scores " + (dir / "nope.txt").string(), &out), 1);
  EXPECT_NE(out.find("nope.txt"), std::string::npos) << out;
  // The test split: CSV only.
  out.clear();
  ASSERT_EQ(fsl::test::run_command(cmd + " --split test eval.threshold=0.35", &out), 0) << out;
  EXPECT_TRUE(std::filesystem::exists(dir / "runs/default/eval/0.35/Eval_out.csv"));
  EXPECT_FALSE(std::filesystem::exists(dir / "runs/default/eval/0.35/scores.json"));
  // The encoder method without a checkpoint: an error naming it.
  out.clear();
  EXPECT_EQ(
      fsl::test::run_command(
          cmd + " eval.method=encoder --checkpoint " + (dir / "none.safetensors").string(), &out),
      1);
  EXPECT_NE(out.find("none.safetensors"), std::string::npos) << out;
}

TEST(Detect, EncoderEmbedderNormalisesAndMatchesTheEncoder) {
  // The Embedder = the checkpoint's encoder in eval mode on (x - mean) / std, also for windows
  // longer than its first plan (a rebuild).
  fsl::test::TempDir dir;
  fsl::Config c;
  c.features.n_mels = 16;
  c.features.embedding_dim = 512;  // 4 x 2 x 64
  c.eval.batch_size = 3;
  fsl::Encoder reference(c.features, 4, 80, 7);
  auto ckpt = (dir / "w.safetensors").string();
  fsl::save_checkpoint(ckpt, reference);
  fsl::EncoderEmbedder embedder(c, ckpt, 2.0, 3.0);
  ASSERT_EQ(embedder.dim(), reference.dim());
  for (int T : {17, 70}) {
    const int B = 4, M = 16;
    std::vector<float> x(size_t(B) * T * M), z(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      x[i] = float((i * 7919) % 101) / 10.f - 3.f;
      z[i] = (x[i] - 2.f) / 3.f;
    }
    std::vector<float> got(size_t(B) * embedder.dim()), want(got.size());
    embedder.embed(x.data(), B, T, M, got.data());
    reference.forward(z.data(), B, T, false, want.data());
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_NEAR(got[i], want[i], 1e-4) << "T " << T << " i " << i;
  }
}
