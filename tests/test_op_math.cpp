// The reduction math the CUDA batch norm runs (include/fsl/op_math.hpp): per-slice two-pass
// moments merged in slice order with merge_moments equal the whole channel's two-pass mean and
// variance (what the CPU op computes), for every split the kernel can choose, on data with a
// large offset (where a one-pass sum of squares would lose the variance).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "fsl/op_math.hpp"

namespace fsl::om {
namespace {

Moments two_pass(const std::vector<float>& x, int64_t b, int64_t e) {
  double s = 0;
  for (int64_t i = b; i < e; ++i) s += x[i];
  const double n = double(e - b), mean = n > 0 ? s / n : 0.0;
  double m2 = 0;
  for (int64_t i = b; i < e; ++i) m2 += (x[i] - mean) * (x[i] - mean);
  return {n, mean, m2};
}

TEST(OpMath, SlicesCoverTheChannelOnce) {
  for (int64_t M : {1, 100, 2047, 2048, 4095, 4096, 65537, 435200, 10000000}) {
    const int S = reduction_slices(M);
    ASSERT_GE(S, 1);
    ASSERT_LE(S, kMaxSlices);
    EXPECT_EQ(slice_begin(M, S, 0), 0);
    EXPECT_EQ(slice_begin(M, S, S), M);
    for (int s = 0; s < S; ++s) EXPECT_LE(slice_begin(M, S, s), slice_begin(M, S, s + 1));
    if (M >= 2048) {
      EXPECT_GE(M / S, 1024) << M;  // slices big enough to keep a block busy
    }
  }
  EXPECT_EQ(reduction_slices(435200), kMaxSlices);  // the training step's 200 x 17 x 128
}

TEST(OpMath, MergedSliceMomentsEqualTwoPassOverTheChannel) {
  std::mt19937 rng(3);
  for (int64_t M : {7, 3000, 50000, 435200}) {
    std::normal_distribution<float> d(1000.0f, 0.01f);
    std::vector<float> x(M);
    for (auto& v : x) v = d(rng);
    const Moments want = two_pass(x, 0, M);
    for (int S : {1, 2, 3, reduction_slices(M), kMaxSlices}) {
      if (S > M) continue;
      Moments got;
      for (int s = 0; s < S; ++s)
        got = merge_moments(got, two_pass(x, slice_begin(M, S, s), slice_begin(M, S, s + 1)));
      EXPECT_EQ(got.n, want.n);
      EXPECT_NEAR(got.mean, want.mean, 1e-12 * std::fabs(want.mean)) << M << " " << S;
      EXPECT_NEAR(got.m2, want.m2, 1e-9 * want.m2) << M << " " << S;
    }
  }
}

TEST(OpMath, MergeWithEmptyIsIdentity) {
  const Moments a{5, 2.5, 10};
  const Moments e;
  EXPECT_EQ(merge_moments(a, e).m2, 10);
  EXPECT_EQ(merge_moments(e, a).mean, 2.5);
  const Moments b{3, -1, 4};
  const Moments ab = merge_moments(a, b);
  // by hand: n 8, mean (12.5 - 3) / 8, m2 = 10 + 4 + 3.5^2 * 15 / 8
  EXPECT_DOUBLE_EQ(ab.n, 8);
  EXPECT_DOUBLE_EQ(ab.mean, 9.5 / 8);
  EXPECT_DOUBLE_EQ(ab.m2, 14 + 12.25 * 15.0 / 8);
}

}  // namespace
}  // namespace fsl::om

TEST(OpMath, SegmentRowsCropTileOrPad) {
  // long event: the crop's own rows
  for (int t = 0; t < 5; ++t) EXPECT_EQ(fsl::om::segment_row(t, 9, 5, false), t);
  for (int t = 0; t < 5; ++t) EXPECT_EQ(fsl::om::segment_row(t, 5, 5, true), t);
  // short event of 3 rows in 7: tiled 0 1 2 0 1 2 0, or padded 0 1 2 -1 -1 -1 -1
  const int tiled[7] = {0, 1, 2, 0, 1, 2, 0}, padded[7] = {0, 1, 2, -1, -1, -1, -1};
  for (int t = 0; t < 7; ++t) {
    EXPECT_EQ(fsl::om::segment_row(t, 3, 7, false), tiled[t]) << t;
    EXPECT_EQ(fsl::om::segment_row(t, 3, 7, true), padded[t]) << t;
  }
}
