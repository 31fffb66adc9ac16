// Launchers of the front end's kernels (cuda/frontend_kernels.cu), used by cuda/frontend.cu.
// Pointers are device pointers; every launcher enqueues on `stream` and checks the launch.
// Shapes: F = frames in the chunk's FFT batch, count = frames this chunk computes (<= F),
// nb = n_fft/2+1 bins, M = n_mels. All matrices row-major.
#pragma once
#include <cuda_runtime.h>
#include <cufft.h>

#include "fsl/frontend_math.hpp"
#include "fsl/frontend_scan.hpp"

namespace fsl::cuda_fe {

struct FramingArgs {
  const float* chunk;     // (sample_end - sample_begin) samples of the signal
  long long sample_begin;  // signal index of chunk[0]
  long long n;             // whole signal length
  long long frame_begin;   // global index of the chunk's first frame
  int count, F, n_fft, hop;
  bool reflect;
};

// frames (F, n_fft) = windowed, centre-padded frames; rows >= count are zero.
void launch_frame_window(const FramingArgs& a, const double* window, double* frames,
                         cudaStream_t stream);

// power (count, nb) = |spec|^2 as float.
void launch_power(const cufftDoubleComplex* spec, long long count, int nb, float* power,
                  cudaStream_t stream);

// mel (count, M) = |spec|^2 (count, nb) x fb^T, summing only bins [ranges[2m], ranges[2m+1]).
void launch_fused_power_mel(const cufftDoubleComplex* spec, int count, int nb, const float* fb,
                            const int* ranges, int M, float* mel, cudaStream_t stream);

// out[i] = log(mel[i] + eps) for i < size.
void launch_logmel(const float* mel, long long size, float eps, float* out, cudaStream_t stream);

// out[i] = mel[i] * scale for i < size (PCEN reads the mel of x * 2^32).
void launch_scale(const float* mel, long long size, float scale, float* out, cudaStream_t stream);

// PCEN of e (T, M) into out (T, M) with the smoother y[t] = s*e[t] + (1-s)*y[t-1] as a
// reduce-then-scan: tile maps (num_tiles(T), M), carry (state (M) in/out, tile_start
// (num_tiles(T), M)), then each row re-walked from its start state.
void launch_pcen(const float* e, long long T, int M, double s, const fm::PcenParams& pp,
                 fscan::Affine* tile_maps, double* tile_start, double* state, float* out,
                 cudaStream_t stream);

}  // namespace fsl::cuda_fe
