// Segment gather from device-resident features: the crop starts are drawn on the host from the
// same generator, in the same order, as fsl::gather_segments (src/data.cpp), so both backends cut
// identical segments; the device copies (crop), repeats (tile) or zero-fills (pad) the rows.
#include "fsl/cuda_ops.hpp"
#include "fsl/error.hpp"
#include "fsl/op_math.hpp"
#include "ops_common.hpp"

namespace fsl::cuda {

namespace {
// out (B, seg, M); rows (B, 2) = first source row in the concatenated features, event length.
__global__ void gather_kernel(float* out, const float* features, const int64_t* rows, int B,
                              int seg, int M, bool pad, float mean, float inv_std) {
  FSL_KERNEL_LOOP(e, int64_t(B) * seg * M) {
    const int b = int(e / (int64_t(seg) * M));
    const int t = int(e / M % seg), m = int(e % M);
    const int64_t row0 = rows[2 * b];
    const int r = om::segment_row(t, int(rows[2 * b + 1]), seg, pad);
    // a zero row is the global mean after normalisation
    out[e] = r < 0 ? 0.0f : (features[(row0 + r) * M + m] - mean) * inv_std;
  }
}

int64_t total_rows(const FeatureStore& store) {
  int64_t n = 0;
  for (int f = 0; f < store.num_files(); ++f) n += store.frames(f);
  return n;
}
}  // namespace

CudaFeatures::CudaFeatures(const FeatureStore& store, int max_draws)
    : n_mels_(store.n_mels()),
      max_draws_(max_draws),
      mean_(store.mean()),
      inv_std_(1.0f / store.std()),
      d_features_(size_t(total_rows(store)) * store.n_mels()),
      d_rows_(2 * size_t(max_draws)) {
  int64_t row = 0;
  for (int f = 0; f < store.num_files(); ++f) {
    file_row_.push_back(row);
    const size_t n = size_t(store.frames(f)) * n_mels_;
    if (n)
      FSL_CUDA_CHECK(cudaMemcpy(d_features_.get() + row * n_mels_, store.raw(f), n * sizeof(float),
                                cudaMemcpyHostToDevice));
    row += store.frames(f);
  }
}

void CudaFeatures::gather(CudaContext& ctx, const std::vector<Draw>& draws, int seg_frames,
                          const std::string& short_segment, std::mt19937_64& rng, float* out) {
  const int B = int(draws.size());
  if (B > max_draws_) fail("CUDA gather: ", B, " draws, planned for ", max_draws_);
  h_rows_.resize(2 * size_t(B));
  for (int b = 0; b < B; ++b) {
    const FrameRange& r = draws[b].range;
    if (r.length() <= 0 || r.file < 0 || r.file >= int(file_row_.size()))
      fail("CUDA gather: draw ", b, " has an empty range or an unknown file ", r.file);
    int start = r.start;
    if (r.length() > seg_frames) {  // the same draw as gather_segments
      std::uniform_int_distribution<int> d(r.start, r.end - seg_frames);
      start = d(rng);
    }
    h_rows_[2 * b] = file_row_[r.file] + start;
    h_rows_[2 * b + 1] = r.length();
  }
  cudaStream_t st = ctx.stream();
  FSL_CUDA_CHECK(cudaMemcpyAsync(d_rows_.get(), h_rows_.data(), h_rows_.size() * sizeof(int64_t),
                                 cudaMemcpyHostToDevice, st));
  const int64_t n = int64_t(B) * seg_frames * n_mels_;
  gather_kernel<<<grid_for(n), kThreads, 0, st>>>(out, d_features_.get(), d_rows_.get(), B,
                                                  seg_frames, n_mels_, short_segment == "pad",
                                                  mean_, inv_std_);
  FSL_CUDA_CHECK_LAUNCH();
}

}  // namespace fsl::cuda
