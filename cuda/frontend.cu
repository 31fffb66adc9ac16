// CudaFrontend: the host side of the GPU front end. Buffers, plan and handles are made once for
// a chunk of frames_per_chunk frames; compute() walks the signal chunk by chunk (see
// fscan::plan_chunks), carrying the PCEN smoother state across chunks on the device.
#include <cublas_v2.h>
#include <cufft.h>

#include <cmath>
#include <cstring>

#include "frontend_kernels.hpp"
#include "fsl/cuda_check.hpp"
#include "fsl/cuda_frontend.hpp"

namespace fsl {

bool cuda_device_available(std::string* why) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    if (why) *why = std::string("no usable CUDA device: cudaGetDeviceCount: ") + cudaGetErrorString(e);
    cudaGetLastError();  // reset the last-error state so later checks start clean
    return false;
  }
  if (count == 0) {
    if (why) *why = "no CUDA device found";
    return false;
  }
  return true;
}

namespace {

// Device memory of n elements of T, freed on destruction.
template <typename T>
struct DeviceBuffer {
  T* p = nullptr;
  explicit DeviceBuffer(size_t n) { FSL_CUDA_CHECK(cudaMalloc(&p, sizeof(T) * (n ? n : 1))); }
  ~DeviceBuffer() { cudaFree(p); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

// Page-locked host memory: async copies from/to it overlap nothing else, but run at full speed.
template <typename T>
struct PinnedBuffer {
  T* p = nullptr;
  explicit PinnedBuffer(size_t n) { FSL_CUDA_CHECK(cudaMallocHost(&p, sizeof(T) * (n ? n : 1))); }
  ~PinnedBuffer() { cudaFreeHost(p); }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
};

constexpr size_t kMaxSharedBytes = 48 * 1024;  // the fused kernel's power row must fit

}  // namespace

struct CudaFrontend::Impl {
  int F, n_fft, nb, M;
  size_t capacity;  // samples per chunk
  cudaStream_t stream = nullptr;
  cufftHandle plan = 0;
  bool have_plan = false;
  cublasHandle_t blas = nullptr;
  PinnedBuffer<float> h_samples, h_logmel, h_pcen;  // (capacity), (F, M), (F, M)
  DeviceBuffer<float> d_samples;                     // (capacity)
  DeviceBuffer<double> d_window;                     // (n_fft)
  DeviceBuffer<double> d_frames;                     // (F, n_fft)
  DeviceBuffer<cufftDoubleComplex> d_spec;           // (F, nb)
  DeviceBuffer<float> d_power;                       // (F, nb), GEMM path only
  DeviceBuffer<float> d_fb;                          // (M, nb)
  DeviceBuffer<int> d_ranges;                        // (M, 2)
  DeviceBuffer<float> d_mel, d_energy, d_logmel, d_pcen;  // (F, M) each
  DeviceBuffer<fscan::Affine> d_tile_maps;           // (num_tiles(F), M)
  DeviceBuffer<double> d_tile_start;                 // (num_tiles(F), M)
  DeviceBuffer<double> d_state;                      // (M)

  Impl(int F_, int n_fft_, int M_, size_t cap)
      : F(F_), n_fft(n_fft_), nb(n_fft_ / 2 + 1), M(M_), capacity(cap),
        h_samples(cap), h_logmel(size_t(F) * M), h_pcen(size_t(F) * M), d_samples(cap),
        d_window(n_fft), d_frames(size_t(F) * n_fft), d_spec(size_t(F) * nb),
        d_power(size_t(F) * nb), d_fb(size_t(M) * nb), d_ranges(2 * size_t(M)),
        d_mel(size_t(F) * M), d_energy(size_t(F) * M), d_logmel(size_t(F) * M),
        d_pcen(size_t(F) * M), d_tile_maps(size_t(fscan::num_tiles(F)) * M),
        d_tile_start(size_t(fscan::num_tiles(F)) * M), d_state(M) {}
  ~Impl() {
    if (have_plan) cufftDestroy(plan);
    if (blas) cublasDestroy(blas);
    if (stream) cudaStreamDestroy(stream);
  }
};

CudaFrontend::CudaFrontend(const FrontendParams& p, size_t max_chunk_samples) : p_(p) {
  if (p.n_fft < 2 || p.n_fft % 2 || p.hop <= 0 || p.n_mels <= 0 || p.sr <= 0)
    fail("CUDA front end: invalid parameters (n_fft ", p.n_fft, ", hop ", p.hop, ", n_mels ",
         p.n_mels, ")");
  std::string why;
  if (!cuda_device_available(&why)) fail("CUDA front end: ", why);
  // Grid y of the scan kernels and int frame counts bound a chunk; 2^20 frames is ~3.4 h.
  const size_t F = std::min<size_t>(fscan::chunk_frames_for(max_chunk_samples, p.n_fft, p.hop),
                                    size_t(1) << 20);
  const size_t cap = fscan::chunk_sample_capacity(F, p.n_fft, p.hop);
  impl_ = std::make_unique<Impl>(int(F), p.n_fft, p.n_mels, cap);
  Impl& s = *impl_;
  if (size_t(s.nb) * sizeof(float) > kMaxSharedBytes) mel_path_ = CudaMelPath::kGemm;

  FSL_CUDA_CHECK(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking));
  int n = p.n_fft;
  FSL_CUDA_CHECK(cufftPlanMany(&s.plan, 1, &n, nullptr, 1, n, nullptr, 1, s.nb, CUFFT_D2Z, s.F));
  s.have_plan = true;
  FSL_CUDA_CHECK(cufftSetStream(s.plan, s.stream));
  FSL_CUDA_CHECK(cublasCreate(&s.blas));
  FSL_CUDA_CHECK(cublasSetStream(s.blas, s.stream));
  FSL_CUDA_CHECK(cublasSetMathMode(s.blas, CUBLAS_PEDANTIC_MATH));  // plain float, as the CPU

  std::vector<double> window(n);
  for (int i = 0; i < n; ++i) window[i] = fm::hann_periodic(i, n);
  const std::vector<float> fb = mel_filterbank(p);  // (M, nb)
  const std::vector<int> ranges = fscan::mel_band_ranges(fb, p.n_mels, s.nb);
  FSL_CUDA_CHECK(cudaMemcpy(s.d_window.p, window.data(), sizeof(double) * n, cudaMemcpyHostToDevice));
  FSL_CUDA_CHECK(cudaMemcpy(s.d_fb.p, fb.data(), sizeof(float) * fb.size(), cudaMemcpyHostToDevice));
  FSL_CUDA_CHECK(cudaMemcpy(s.d_ranges.p, ranges.data(), sizeof(int) * ranges.size(),
                            cudaMemcpyHostToDevice));
  // A pageable cudaMemcpy may return before its DMA lands, and the non-blocking stream does not
  // wait for the legacy stream: finish the uploads before any kernel reads them.
  FSL_CUDA_CHECK(cudaDeviceSynchronize());
}

CudaFrontend::~CudaFrontend() = default;

size_t CudaFrontend::frames_per_chunk() const { return size_t(impl_->F); }

std::map<std::string, std::vector<float>> CudaFrontend::compute(
    const float* x, size_t n, const std::vector<std::string>& types) {
  if (n == 0) fail("CUDA front end: empty signal");
  const auto req = parse_requested_types(types, "CUDA front end");
  const bool want_log = req.logmel, want_pcen = req.pcen;
  Impl& s = *impl_;
  const int M = s.M;
  const size_t n_frames = 1 + n / size_t(p_.hop);
  std::map<std::string, std::vector<float>> out;
  float* logmel = nullptr;
  float* pcen = nullptr;
  if (want_log) logmel = (out["logmel"] = std::vector<float>(n_frames * M)).data();
  if (want_pcen) pcen = (out["pcen"] = std::vector<float>(n_frames * M)).data();

  const double smoother = fm::pcen_smoother_coef(p_.pcen_time_constant, p_.sr, double(p_.pcen_hop));
  const fm::PcenParams pp{float(p_.pcen_gain), float(p_.pcen_bias), float(p_.pcen_power),
                          float(p_.pcen_eps)};
  const float pcen_scale = std::ldexp(1.0f, 64);  // mel of x * 2^32 = mel * 2^64
  const std::vector<double> init(M, fm::pcen_smoother_init());
  FSL_CUDA_CHECK(cudaMemcpyAsync(s.d_state.p, init.data(), sizeof(double) * M,
                                 cudaMemcpyHostToDevice, s.stream));

  for (const fscan::ChunkPlan& c : fscan::plan_chunks(n, p_.n_fft, p_.hop, p_.reflect_pad, s.F)) {
    const int count = int(c.frame_end - c.frame_begin);
    const size_t ns = c.sample_end - c.sample_begin;  // <= s.capacity (tests/test_cuda_frontend_logic)
    const long long size = (long long)count * M;
    std::memcpy(s.h_samples.p, x + c.sample_begin, sizeof(float) * ns);
    FSL_CUDA_CHECK(cudaMemcpyAsync(s.d_samples.p, s.h_samples.p, sizeof(float) * ns,
                                   cudaMemcpyHostToDevice, s.stream));
    const cuda_fe::FramingArgs fa{s.d_samples.p, (long long)c.sample_begin, (long long)n,
                                  (long long)c.frame_begin, count, s.F, s.n_fft, p_.hop,
                                  p_.reflect_pad};
    cuda_fe::launch_frame_window(fa, s.d_window.p, s.d_frames.p, s.stream);
    FSL_CUDA_CHECK(cufftExecD2Z(s.plan, s.d_frames.p, s.d_spec.p));
    if (mel_path_ == CudaMelPath::kFused) {
      cuda_fe::launch_fused_power_mel(s.d_spec.p, count, s.nb, s.d_fb.p, s.d_ranges.p, M,
                                      s.d_mel.p, s.stream);
    } else {
      cuda_fe::launch_power(s.d_spec.p, count, s.nb, s.d_power.p, s.stream);
      // Column-major view: mel^T (M, count) = fb (stored as (nb, M) col-major)^T x power^T.
      const float one = 1.0f, zero = 0.0f;
      FSL_CUDA_CHECK(cublasSgemm(s.blas, CUBLAS_OP_T, CUBLAS_OP_N, M, count, s.nb, &one, s.d_fb.p,
                                 s.nb, s.d_power.p, s.nb, &zero, s.d_mel.p, M));
    }
    if (want_log) {
      cuda_fe::launch_logmel(s.d_mel.p, size, float(p_.log_eps), s.d_logmel.p, s.stream);
      FSL_CUDA_CHECK(cudaMemcpyAsync(s.h_logmel.p, s.d_logmel.p, sizeof(float) * size,
                                     cudaMemcpyDeviceToHost, s.stream));
    }
    if (want_pcen) {
      cuda_fe::launch_scale(s.d_mel.p, size, pcen_scale, s.d_energy.p, s.stream);
      cuda_fe::launch_pcen(s.d_energy.p, count, M, smoother, pp, s.d_tile_maps.p,
                           s.d_tile_start.p, s.d_state.p, s.d_pcen.p, s.stream);
      FSL_CUDA_CHECK(cudaMemcpyAsync(s.h_pcen.p, s.d_pcen.p, sizeof(float) * size,
                                     cudaMemcpyDeviceToHost, s.stream));
    }
    FSL_CUDA_CHECK(cudaStreamSynchronize(s.stream));
    const size_t row = c.frame_begin * size_t(M);
    if (logmel) std::memcpy(logmel + row, s.h_logmel.p, sizeof(float) * size);
    if (pcen) std::memcpy(pcen + row, s.h_pcen.p, sizeof(float) * size);
  }
  return out;
}

}  // namespace fsl
