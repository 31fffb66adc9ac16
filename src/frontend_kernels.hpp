// The CPU front end's hot loops (src/frontend_kernels.cpp), private to src/frontend*.cpp.
// Every function is a plain loop over __restrict pointers, compiled at -O3 and cloned for AVX2
// (see FSL_HOT_LOOP there); none of them uses -ffast-math, so the AVX2 and SSE2 clones give
// bit-identical results.
#pragma once
#include <cstddef>

#include "fsl/frontend_math.hpp"

namespace fsl::fe_kernels {

// f[i] = x[i] * window[i], i < n: one frame, in float (the float STFT; returns
// frame_energy(f, n), bit for bit) or in double.
float window_frame(const float* x, const float* window, int n, float* f);
void window_frame(const float* x, const double* window, int n, double* f);

// sum of f[i]^2, i < n, in float with 8 running partial sums (a fixed order, so the same frame
// always gives the same value). By Parseval this is the mean of |X[k]|^2 over all n bins.
float frame_energy(const float* f, int n);

// Power spectrum |X[k]|^2, k = 0..h, of one real frame x of length n = 2h, from the length-h
// complex FFT Z of z[j] = x[2j] + i x[2j+1]: the real-FFT split (see frontend_kernels.cpp), in
// float or in double. z: (h, 2) interleaved; twiddle_re, twiddle_im: (h) cos and -sin of
// 2 pi k / n; scratch: (2, h); power: (h + 1).
void power_from_half_length_fft(const float* z, int h, const float* twiddle_re,
                                const float* twiddle_im, float* scratch, float* power);
void power_from_half_length_fft(const double* z, int h, const double* twiddle_re,
                                const double* twiddle_im, double* scratch, float* power);

// out[k * stride + j] = rows[j * len + k], j < 8, k < len: 8 rows of length len (8 frames'
// spectra, or 8 bands' values over a block) into 8 columns of a row-major (len, stride) array.
void transpose_8_rows(const float* rows, int len, float* out, int stride);

// mel_t (n_mels, stride) = filterbank (n_mels, nb) x power_t (nb, stride) for the first `block`
// columns (frames), each band over its non-zero bins [lo[m], hi[m]) only.
void mel_project(const float* power_t, int block, int stride, const float* filterbank, int nb,
                 const int* lo, const int* hi, int n_mels, float* mel_t);

// needs_double[b] = 1 where some band m of frame b has mel_t[m][b] < floor_per_weight *
// band_weight[m] * energy[b] (its power is within reach of the float STFT's rounding noise),
// else unchanged. b < block; mel_t: (n_mels, stride).
void flag_imprecise_frames(const float* mel_t, int block, int stride, int n_mels,
                           const float* band_weight, const float* energy,
                           float floor_per_weight, int* needs_double);

// logmel = log(mel + eps) over n values.
void log_mel_rows(const float* mel, size_t n, float eps, float* out);

// PCEN for `block` frames of mel (block, n_mels) with power 0.5 and bias > 0, carrying the
// smoother state (n_mels, double) across calls. smooth_f: (n_mels) scratch.
void pcen_sqrt_rows(const float* mel, int block, int n_mels, float scale, double coef,
                    const fm::PcenParams& pp, double* smooth, float* smooth_f, float* out);

}  // namespace fsl::fe_kernels
