// The CPU front end's hot loops (src/frontend_kernels.cpp), private to src/frontend*.cpp.
// Every function is a plain loop over __restrict pointers, compiled at -O3 and cloned for
// AVX2 + FMA (see FSL_HOT_LOOP below); none of them uses -ffast-math. The FMA clone's values
// differ from the plain clone's in the last bits only (fused a*b+c).
#pragma once
#include <cstddef>
#include <optional>
#include <vector>

#include "fsl/frontend_math.hpp"

namespace fsl::fe_kernels {

// The library is built at -O2, whose "very cheap" vectoriser leaves loops that need a scalar
// remainder unvectorised, and the binary must run on any x86-64 (no global -march). So the hot
// functions are compiled at -O3 (the full vectoriser; no -ffast-math) and cloned: with GCC for
// x86-64-v3 (AVX2 + FMA; a*b+c contracts to one fused multiply-add, so its values differ from
// the plain clone's in the last bits), chosen at load time where the CPU has it, plain x86-64
// (SSE2, no FMA) elsewhere. Clang 14 drops an "arch=x86-64-v3" clone silently, so it gets the
// AVX2 clone without FMA. Either way a given machine always computes the same values.
#if defined(__clang__)  // (Clang has no optimize attribute)
#define FSL_HOT_LOOP __attribute__((target_clones("avx2", "default")))
#else
#define FSL_HOT_LOOP __attribute__((target_clones("arch=x86-64-v3", "default"), optimize("O3")))
#endif

// ---- 8-float vectors (GCC/Clang vector extensions), shared by frontend_kernels.cpp and
// frontend_lane_fft.cpp ------------------------------------------------------------------------
using Float8 = float __attribute__((vector_size(32)));
using Index8 = int __attribute__((vector_size(32)));

// Lanes of two vectors picked by constant indices: 0-7 from a, 8-15 from b. GCC and Clang name
// this builtin differently (Clang's takes the indices as arguments).
#if defined(__clang__)
#define FSL_SHUFFLE8(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#else
#define FSL_SHUFFLE8(a, b, ...) __builtin_shuffle(a, b, (Index8{__VA_ARGS__}))
#endif

// The usual 8 x 8 transpose in registers (3 rounds of shuffles: unpack, 64-bit pairs, 128-bit
// halves): col[k][j] = row[j][k]. Pure data movement: values are copied bit for bit.
[[gnu::always_inline]] inline void transpose8x8(const Float8* row, Float8* col) {
  Float8 t[8], u[8];
  for (int j = 0; j < 8; j += 2) {  // t: pairs of rows interleaved
    t[j] = FSL_SHUFFLE8(row[j], row[j + 1], 0, 8, 1, 9, 4, 12, 5, 13);
    t[j + 1] = FSL_SHUFFLE8(row[j], row[j + 1], 2, 10, 3, 11, 6, 14, 7, 15);
  }
  for (int j = 0; j < 8; j += 4)
    for (int i = 0; i < 2; ++i) {  // u: 4 rows interleaved, within each 128-bit half
      u[j + i] = FSL_SHUFFLE8(t[j + i], t[j + 2 + i], 0, 1, 8, 9, 4, 5, 12, 13);
      u[j + 2 + i] = FSL_SHUFFLE8(t[j + i], t[j + 2 + i], 2, 3, 10, 11, 6, 7, 14, 15);
    }
  // u[0], u[2], u[1], u[3] hold columns 0..3 of rows 0-3 (low half) and columns 4..7 (high
  // half); u[4..7] the same for rows 4-7.
  const int order[4] = {0, 2, 1, 3};
  for (int i = 0; i < 4; ++i) {
    col[i] = FSL_SHUFFLE8(u[order[i]], u[4 + order[i]], 0, 1, 2, 3, 8, 9, 10, 11);
    col[4 + i] = FSL_SHUFFLE8(u[order[i]], u[4 + order[i]], 4, 5, 6, 7, 12, 13, 14, 15);
  }
}

// f[i] = x[i] * window[i], i < n: one frame, in double (the float STFT's fallback).
void window_frame(const float* x, const double* window, int n, double* f);

// Power spectrum |X[k]|^2, k = 0..h, of one real frame x of length n = 2h, from the length-h
// complex FFT Z of z[j] = x[2j] + i x[2j+1]: the real-FFT split (see frontend_kernels.cpp), in
// double. z: (h, 2) interleaved; twiddle_re, twiddle_im: (h) cos and -sin of
// 2 pi k / n; scratch: (2, h); power: (h + 1).
void power_from_half_length_fft(const double* z, int h, const double* twiddle_re,
                                const double* twiddle_im, double* scratch, float* power);

// mel_t (n_mels, stride) = filterbank (n_mels, nb) x power (nb, frames) for the first `block`
// columns (frames), each band over its non-zero bins [lo[m], hi[m]) only. power_g holds the
// power spectra by groups of 8 frames: (stride / 8, nb, 8), frame b's bin k at
// [b / 8][k][b % 8] (a group's 8 spectra are one contiguous 16 KiB for n_fft 1024).
void mel_project(const float* power_g, int block, int stride, const float* filterbank, int nb,
                 const int* lo, const int* hi, int n_mels, float* mel_t);

// The Slaney filterbank by bins: each bin k lies in at most two neighbouring bands, m(k) and
// m(k) + 1, with m(k) non-decreasing in k, so one pass over the bins with two accumulators
// projects every band (each bin's power read once, not once per band). A run is a range of
// bins with the same m. Every Slaney filterbank has this shape (a bin is a point, inside at most
// two neighbouring triangles); make() returns nothing for one that does not, and mel_project,
// band by band, is then used.
struct MelRuns {
  int n_mels = 0;
  std::vector<int> band, begin, end;      // per run: m, bins [begin, end)
  std::vector<float> weight_a, weight_b;  // (nb): bin k's weight in bands m(k), m(k) + 1
  static std::optional<MelRuns> make(const float* filterbank, int n_mels, int nb);
};

// mel_project by runs, block a multiple of 8: the same sums in the same order (each band's bins
// in order; a bin's weight is zero only in a band it is outside of, and adds +0 exactly), so the
// same values bit for bit.
void mel_project_runs(const float* power_g, int block, int stride, const MelRuns& runs, int nb,
                      float* mel_t);

// needs_double[b] = 1 where some band m of frame b has mel_t[m][b] < floor_per_weight *
// band_weight[m] * energy[b] (its power is within reach of the float STFT's rounding noise),
// else unchanged. b < block; mel_t: (n_mels, stride).
void flag_imprecise_frames(const float* mel_t, int block, int stride, int n_mels,
                           const float* band_weight, const float* energy, float floor_per_weight,
                           int* needs_double);

// mel = log(mel + eps) over n values, in place.
void log_mel_in_place(float* mel, size_t n, float eps);

// PCEN for `block` frames of mel (block, n_mels) with power 0.5 and bias > 0, carrying the
// smoother state (n_mels, double) across calls. smooth_f, agc: (n_mels) scratch.
void pcen_sqrt_rows(const float* mel, int block, int n_mels, float scale, double coef,
                    const fm::PcenParams& pp, double* smooth, float* smooth_f, float* agc,
                    float* out);

// The float STFT's FFT (src/frontend_lane_fft.cpp): 8 frames at once, frame j in lane j of
// every 8-float vector. Layout of a group, "lanes": (h, 2, 8) floats, point p's 8 real parts
// then its 8 imaginary parts.
struct LaneFftPlan {
  explicit LaneFftPlan(int h);
  static bool supports(int h);  // h a power of two >= 8
  bool fuses_window() const { return !radices.empty() && radices[0] == 8; }
  int h;
  std::vector<int> radices;              // per pass: 2 or 4 (first pass only), else 8
  std::vector<int> position;             // (h) where point n of the input goes (digits reversed)
  std::vector<int> input;                // (h) the input point at position p (position's inverse)
  std::vector<int> pass_twiddle_offset;  // per pass, into twiddle_re / twiddle_im
  std::vector<float> twiddle_re, twiddle_im;  // per radix-8 pass with m > 1: (m, 7)
};

// The float STFT's input, by lanes: lane j of row r is sample r + j * lane_offset of the padded
// signal (x padded by `pad` samples at each end, with zeros or numpy's reflection), so that rows
// [c hop, c hop + n_fft) hold frames c + j frames_per_lane (lane_offset = frames_per_lane hop)
// of the 8 lanes: 8 frames as 8 columns with no transpose per frame. Rows are kept in a ring of
// `ring_rows` rows (a power of two, > n_fft + 7), row r at (r & (ring_rows - 1)) * 8.
// fill_ring_rows writes rows [r0, r1), r0 and r1 multiples of 8, 8 at a time: one 8 x 8
// transpose where all 8 lanes lie inside x, else element by element through
// fm::pad_source_index.
void fill_ring_rows(const float* x, long long len, long long pad, bool reflect,
                    long long lane_offset, long long r0, long long r1, float* ring, int ring_rows);

// The 8 lanes' frames, ring rows [start, start + n) (n = 2h samples each), times window, read as
// h complex points (even sample, odd sample) into lanes at plan.position: lane_fft's input.
void window_ring_8(const float* ring, int ring_rows, long long start, const float* window, int n,
                   const int* position, float* lanes);

// Columns col0 .. col0 + 7 of mel_t (n_mels, stride) as 8 rows: rows[j][m] = mel_t[m][col0 + j],
// m < n_mels, for each j with rows[j] != nullptr.
void scatter_8_columns(const float* mel_t, int stride, int n_mels, int col0, float* const* rows);

// In place: lanes (input at plan.position) -> the 8 frames' length-h forward DFTs, in order.
void lane_fft(const LaneFftPlan& plan, float* lanes);

// window_ring_8 then lane_fft in one, the lanes written once by the first two passes (one
// 64-point sub-block at a time, which stays in L1 between them) instead of by a window step.
// The same arithmetic, except that a window product may be contracted into the first pass's
// addition (FMA clone): equal to rounding, not bit for bit. Only for plans whose first pass is
// radix 8 (fuses_window: h a power of 8, e.g. n_fft 1024).
void lane_fft_from_ring(const LaneFftPlan& plan, const float* ring, int ring_rows,
                        long long start, const float* window, float* lanes);

// power_from_half_length_fft on the 8 frames of lanes (their DFTs, in order): |X[k]|^2 of
// frame j into power[k * stride + j], k = 0..h. twiddle_re, twiddle_im as there. energy: (8)
// each frame's mean |X[k]|^2 over all n = 2h bins (bins h + 1 .. n - 1 mirror 1 .. h - 1), by
// Parseval its sum of squared windowed samples, summed in a fixed order (so the same frame
// always gives the same value).
void power_from_lane_fft(const float* lanes, int h, const float* twiddle_re,
                         const float* twiddle_im, float* power, int stride, float* energy);

}  // namespace fsl::fe_kernels
