// Kernels of the CUDA front end. Each is a thin loop over the per-element functions of
// include/fsl/frontend_math.hpp and include/fsl/frontend_scan.hpp, which CPU tests check.
#include "frontend_kernels.hpp"
#include "fsl/cuda_check.hpp"

namespace fsl::cuda_fe {
namespace {

constexpr int kThreads = 256;

unsigned blocks_for(long long size) {
  const long long b = (size + kThreads - 1) / kThreads;
  return unsigned(b < 65536 * 16 ? (b > 0 ? b : 1) : 65536 * 16);  // grid-stride beyond this
}

// frames (F, n_fft): element (f, i) = padded sample i of global frame frame_begin + f, windowed.
__global__ void frame_window_kernel(FramingArgs a, const double* window, double* frames) {
  const long long size = (long long)a.F * a.n_fft;
  for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < size;
       idx += (long long)gridDim.x * blockDim.x) {
    const int f = int(idx / a.n_fft), i = int(idx % a.n_fft);
    frames[idx] = f < a.count ? fscan::framed_sample(a.chunk, a.sample_begin, a.n,
                                                     a.frame_begin + f, i, a.hop, a.n_fft,
                                                     a.reflect) * window[i]
                              : 0.0;
  }
}

__device__ inline float power_of(cufftDoubleComplex c) { return float(c.x * c.x + c.y * c.y); }

__global__ void power_kernel(const cufftDoubleComplex* spec, long long size, float* power) {
  for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < size;
       idx += (long long)gridDim.x * blockDim.x)
    power[idx] = power_of(spec[idx]);
}

// One block per frame: the frame's power spectrum into shared memory (nb floats), then one
// thread per mel band sums the bins its triangle covers, in ascending bin order.
__global__ void fused_power_mel_kernel(const cufftDoubleComplex* spec, int nb, const float* fb,
                                       const int* ranges, int M, float* mel) {
  extern __shared__ float power[];  // (nb)
  const long long f = blockIdx.x;
  for (int k = threadIdx.x; k < nb; k += blockDim.x) power[k] = power_of(spec[f * nb + k]);
  __syncthreads();
  for (int m = threadIdx.x; m < M; m += blockDim.x) {
    const float* w = fb + (long long)m * nb;
    float acc = 0.0f;
    for (int k = ranges[2 * m]; k < ranges[2 * m + 1]; ++k) acc += power[k] * w[k];
    mel[f * M + m] = acc;
  }
}

__global__ void logmel_kernel(const float* mel, long long size, float eps, float* out) {
  for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < size;
       idx += (long long)gridDim.x * blockDim.x)
    out[idx] = fm::log_mel(mel[idx], eps);
}

__global__ void scale_kernel(const float* mel, long long size, float scale, float* out) {
  for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < size;
       idx += (long long)gridDim.x * blockDim.x)
    out[idx] = mel[idx] * scale;
}

// Block (kBandsPerBlock, kTileRows) per (tile = blockIdx.x, band group = blockIdx.y): each
// thread composes its row's maps; thread row 0 composes the rows into the tile's map.
__global__ void pcen_tile_reduce_kernel(const float* e, long long T, int M, double s,
                                        fscan::Affine* tile_maps) {
  __shared__ fscan::Affine rows[fscan::kTileRows][fscan::kBandsPerBlock];
  const int x = threadIdx.x, r = threadIdx.y, m = blockIdx.y * fscan::kBandsPerBlock + x;
  const long long tile = blockIdx.x;
  rows[r][x] = m < M ? fscan::tile_row_map(e, T, M, m, tile, r, s) : fscan::affine_identity();
  __syncthreads();
  if (r == 0 && m < M) {
    fscan::Affine col[fscan::kTileRows], prefix[fscan::kTileRows];
    for (int i = 0; i < fscan::kTileRows; ++i) col[i] = rows[i][x];
    tile_maps[tile * M + m] = fscan::exclusive_row_prefix(col, prefix);
  }
}

// One thread per band: the state before each tile, and the state after the chunk.
__global__ void pcen_carry_kernel(const fscan::Affine* tile_maps, long long n_tiles, int M,
                                  double* state, double* tile_start) {
  const int m = blockIdx.x * blockDim.x + threadIdx.x;
  if (m < M) state[m] = fscan::carry_through_tiles(tile_maps, n_tiles, M, m, state[m], tile_start);
}

// Same blocks as the reduce: rows' maps again, exclusive prefix over rows, then each thread
// walks its row from (prefix of its row) applied to (state before the tile).
__global__ void pcen_tile_apply_kernel(const float* e, long long T, int M, double s,
                                       fm::PcenParams pp, const double* tile_start, float* out) {
  __shared__ fscan::Affine rows[fscan::kTileRows][fscan::kBandsPerBlock];
  __shared__ fscan::Affine prefix[fscan::kBandsPerBlock][fscan::kTileRows];
  const int x = threadIdx.x, r = threadIdx.y, m = blockIdx.y * fscan::kBandsPerBlock + x;
  const long long tile = blockIdx.x;
  rows[r][x] = m < M ? fscan::tile_row_map(e, T, M, m, tile, r, s) : fscan::affine_identity();
  __syncthreads();
  if (r == 0) {
    fscan::Affine col[fscan::kTileRows];
    for (int i = 0; i < fscan::kTileRows; ++i) col[i] = rows[i][x];
    fscan::exclusive_row_prefix(col, prefix[x]);
  }
  __syncthreads();
  if (m >= M) return;
  const double y0 = fscan::affine_apply(prefix[x][r], tile_start[tile * M + m]);
  fscan::pcen_walk_row(e, out, M, m, fscan::row_begin(tile, r, T), fscan::row_end(tile, r, T), s,
                       y0, pp);
}

}  // namespace

void launch_frame_window(const FramingArgs& a, const double* window, double* frames,
                         cudaStream_t stream) {
  frame_window_kernel<<<blocks_for((long long)a.F * a.n_fft), kThreads, 0, stream>>>(a, window,
                                                                                      frames);
  FSL_CUDA_CHECK(cudaGetLastError());
}

void launch_power(const cufftDoubleComplex* spec, long long count, int nb, float* power,
                  cudaStream_t stream) {
  power_kernel<<<blocks_for(count * nb), kThreads, 0, stream>>>(spec, count * nb, power);
  FSL_CUDA_CHECK(cudaGetLastError());
}

void launch_fused_power_mel(const cufftDoubleComplex* spec, int count, int nb, const float* fb,
                            const int* ranges, int M, float* mel, cudaStream_t stream) {
  if (count == 0) return;
  fused_power_mel_kernel<<<count, 128, size_t(nb) * sizeof(float), stream>>>(spec, nb, fb, ranges,
                                                                            M, mel);
  FSL_CUDA_CHECK(cudaGetLastError());
}

void launch_logmel(const float* mel, long long size, float eps, float* out, cudaStream_t stream) {
  logmel_kernel<<<blocks_for(size), kThreads, 0, stream>>>(mel, size, eps, out);
  FSL_CUDA_CHECK(cudaGetLastError());
}

void launch_scale(const float* mel, long long size, float scale, float* out, cudaStream_t stream) {
  scale_kernel<<<blocks_for(size), kThreads, 0, stream>>>(mel, size, scale, out);
  FSL_CUDA_CHECK(cudaGetLastError());
}

void launch_pcen(const float* e, long long T, int M, double s, const fm::PcenParams& pp,
                 fscan::Affine* tile_maps, double* tile_start, double* state, float* out,
                 cudaStream_t stream) {
  const long long n_tiles = fscan::num_tiles(T);
  if (n_tiles == 0) return;
  const dim3 grid(unsigned(n_tiles), unsigned((M + fscan::kBandsPerBlock - 1) / fscan::kBandsPerBlock));
  const dim3 block(fscan::kBandsPerBlock, fscan::kTileRows);
  pcen_tile_reduce_kernel<<<grid, block, 0, stream>>>(e, T, M, s, tile_maps);
  FSL_CUDA_CHECK(cudaGetLastError());
  pcen_carry_kernel<<<(M + 127) / 128, 128, 0, stream>>>(tile_maps, n_tiles, M, state, tile_start);
  FSL_CUDA_CHECK(cudaGetLastError());
  pcen_tile_apply_kernel<<<grid, block, 0, stream>>>(e, T, M, s, pp, tile_start, out);
  FSL_CUDA_CHECK(cudaGetLastError());
}

}  // namespace fsl::cuda_fe
