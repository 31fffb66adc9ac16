// CudaFrontend: the host side of the GPU front end. Buffers, plans and handles are made once for
// a chunk of frames_per_chunk frames, in kPipelineSlots slots; a pass walks the signal chunk by
// chunk (fscan::plan_chunks) in the order of fscan::pipeline_schedule, chunk c in slot
// c % kPipelineSlots on that slot's stream, carrying the PCEN smoother state across chunks on
// the device (each chunk's PCEN waits on the previous chunk's event).
#include <cublas_v2.h>
#include <cufft.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <thread>

#include "frontend_kernels.hpp"
#include "fsl/cuda_check.hpp"
#include "fsl/cuda_frontend.hpp"

namespace fsl {

bool cuda_device_available(std::string* why) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    if (why)
      *why = std::string("no usable CUDA device: cudaGetDeviceCount: ") + cudaGetErrorString(e);
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

// Page-locked host memory: async copies from/to it run at full speed and overlap kernels.
template <typename T>
struct PinnedBuffer {
  T* p = nullptr;
  explicit PinnedBuffer(size_t n) { FSL_CUDA_CHECK(cudaMallocHost(&p, sizeof(T) * (n ? n : 1))); }
  ~PinnedBuffer() { cudaFreeHost(p); }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
};

constexpr size_t kMaxSharedBytes = 48 * 1024;  // the fused kernel's power row must fit

// Where a caller's buffer lives, which decides how a chunk reaches it.
enum class Mem { kPageable, kPinned, kDevice };

Mem memory_kind(const void* p) {
  cudaPointerAttributes a{};
  if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
    cudaGetLastError();  // unknown to CUDA: plain host memory; clear the error state
    return Mem::kPageable;
  }
  if (a.type == cudaMemoryTypeHost) return Mem::kPinned;
  if (a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged) return Mem::kDevice;
  return Mem::kPageable;
}

// One pass over a signal: the input and the outputs (nullptr: type not requested) and where
// each lives.
struct Io {
  const float* x;
  size_t n;
  Mem x_mem;
  float* logmel;
  Mem logmel_mem;
  float* pcen;
  Mem pcen_mem;
};

// One buffer set of the pipeline (include/fsl/frontend_scan.hpp, kPipelineSlots): its chunk's
// work runs in order on its own stream, so the slot's device buffers are reused in stream order;
// the host waits on `done` before it restages the slot's pinned buffers. A plan and a handle per
// slot: cuFFT and cuBLAS workspaces must not be shared by two streams at once.
struct Slot {
  cudaStream_t stream = nullptr;
  cudaEvent_t done = nullptr;       // the slot's last chunk has finished, results on the host
  cudaEvent_t pcen_done = nullptr;  // the slot's last chunk has carried the PCEN state
  cudaEvent_t entry = nullptr;      // a pass's start on the legacy default stream (slot 0's)
  cufftHandle plan = 0;
  bool have_plan = false;
  cublasHandle_t blas = nullptr;
  PinnedBuffer<float> h_samples, h_logmel, h_pcen;        // (capacity), (F, M), (F, M)
  DeviceBuffer<float> d_samples;                          // (capacity)
  DeviceBuffer<double> d_frames;                          // (F, n_fft)
  DeviceBuffer<cufftDoubleComplex> d_spec;                // (F, nb)
  DeviceBuffer<float> d_power;                            // (F, nb), GEMM path only
  DeviceBuffer<float> d_mel, d_energy, d_logmel, d_pcen;  // (F, M) each
  DeviceBuffer<fscan::Affine> d_tile_maps;                // (num_tiles(F), M)
  DeviceBuffer<double> d_tile_start;                      // (num_tiles(F), M)

  Slot(int F, int n_fft, int M, size_t cap)
      : h_samples(cap),
        h_logmel(size_t(F) * M),
        h_pcen(size_t(F) * M),
        d_samples(cap),
        d_frames(size_t(F) * n_fft),
        d_spec(size_t(F) * (n_fft / 2 + 1)),
        d_power(size_t(F) * (n_fft / 2 + 1)),
        d_mel(size_t(F) * M),
        d_energy(size_t(F) * M),
        d_logmel(size_t(F) * M),
        d_pcen(size_t(F) * M),
        d_tile_maps(size_t(fscan::num_tiles(F)) * M),
        d_tile_start(size_t(fscan::num_tiles(F)) * M) {}
  // Made after construction, so that ~Slot releases whatever was made when a step throws.
  void create_handles(int F, int n_fft) {
    FSL_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    FSL_CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
    FSL_CUDA_CHECK(cudaEventCreateWithFlags(&pcen_done, cudaEventDisableTiming));
    FSL_CUDA_CHECK(cudaEventCreateWithFlags(&entry, cudaEventDisableTiming));
    int n = n_fft;
    const int nb = n_fft / 2 + 1;
    FSL_CUDA_CHECK(cufftPlanMany(&plan, 1, &n, nullptr, 1, n, nullptr, 1, nb, CUFFT_D2Z, F));
    have_plan = true;
    FSL_CUDA_CHECK(cufftSetStream(plan, stream));
    FSL_CUDA_CHECK(cublasCreate(&blas));
    FSL_CUDA_CHECK(cublasSetStream(blas, stream));
    FSL_CUDA_CHECK(cublasSetMathMode(blas, CUBLAS_PEDANTIC_MATH));  // plain float, as the CPU
  }
  ~Slot() {
    if (have_plan) cufftDestroy(plan);
    if (blas) cublasDestroy(blas);
    if (pcen_done) cudaEventDestroy(pcen_done);
    if (entry) cudaEventDestroy(entry);
    if (done) cudaEventDestroy(done);
    if (stream) cudaStreamDestroy(stream);
  }
  Slot(const Slot&) = delete;
  Slot& operator=(const Slot&) = delete;
};

}  // namespace

struct CudaFrontend::Impl {
  int F, n_fft, nb, M;
  size_t capacity;                           // samples per chunk
  unsigned copy_threads;                     // host threads of one staging memcpy
  DeviceBuffer<double> d_window;             // (n_fft)
  DeviceBuffer<float> d_fb;                  // (M, nb)
  DeviceBuffer<int> d_ranges;                // (M, 2)
  DeviceBuffer<double> d_state, d_state0;    // (M): PCEN carry, its start value
  std::vector<std::unique_ptr<Slot>> slots;  // (kPipelineSlots)

  Impl(int F_, int n_fft_, int M_, size_t cap)
      : F(F_),
        n_fft(n_fft_),
        nb(n_fft_ / 2 + 1),
        M(M_),
        capacity(cap),
        copy_threads(std::clamp(std::thread::hardware_concurrency(), 1u, 4u)),
        d_window(n_fft),
        d_fb(size_t(M) * nb),
        d_ranges(2 * size_t(M)),
        d_state(M),
        d_state0(M) {
    for (int i = 0; i < fscan::kPipelineSlots; ++i) {
      slots.push_back(std::make_unique<Slot>(F, n_fft, M, cap));
      slots.back()->create_handles(F, n_fft);
    }
  }

  void run(const FrontendParams& p, CudaMelPath path, const Io& io);
  void enqueue(const FrontendParams& p, CudaMelPath path, const Io& io,
               const std::vector<fscan::ChunkPlan>& plans, size_t c);
  void drain(const Io& io, const fscan::ChunkPlan& c, size_t index);
};

// Queues chunk c in its slot: input to the device (unless it is there), frames, FFT, mel, log /
// PCEN, results to pinned host memory (unless they stay on the device).
void CudaFrontend::Impl::enqueue(const FrontendParams& p, CudaMelPath path, const Io& io,
                                 const std::vector<fscan::ChunkPlan>& plans, size_t index) {
  const fscan::ChunkPlan& c = plans[index];
  Slot& s = *slots[index % slots.size()];
  const int count = int(c.frame_end - c.frame_begin);
  const size_t ns = c.sample_end - c.sample_begin;  // <= capacity (tests/test_cuda_frontend_logic)
  const long long size = (long long)count * M;
  const size_t row = c.frame_begin * size_t(M), out_bytes = sizeof(float) * size_t(size);
  // The slot's previous chunk was drained before this (pipeline_schedule); its upload from the
  // pinned staging buffer must also have finished before the host overwrites it. Without
  // staging, stream order alone protects the slot's buffers and the host queues ahead freely.
  if (io.x_mem == Mem::kPageable) FSL_CUDA_CHECK(cudaEventSynchronize(s.done));

  const float* d_chunk = io.x + c.sample_begin;
  if (io.x_mem != Mem::kDevice) {
    const float* src = io.x + c.sample_begin;
    if (io.x_mem == Mem::kPageable) {
      fscan::parallel_memcpy(s.h_samples.p, src, sizeof(float) * ns, copy_threads);
      src = s.h_samples.p;
    }
    FSL_CUDA_CHECK(
        cudaMemcpyAsync(s.d_samples.p, src, sizeof(float) * ns, cudaMemcpyHostToDevice, s.stream));
    d_chunk = s.d_samples.p;
  }
  const cuda_fe::FramingArgs fa{d_chunk,         (long long)c.sample_begin,
                                (long long)io.n, (long long)c.frame_begin,
                                count,           F,
                                n_fft,           p.hop,
                                p.reflect_pad};
  cuda_fe::launch_frame_window(fa, d_window.p, s.d_frames.p, s.stream);
  FSL_CUDA_CHECK(cufftExecD2Z(s.plan, s.d_frames.p, s.d_spec.p));
  if (path == CudaMelPath::kFused) {
    cuda_fe::launch_fused_power_mel(s.d_spec.p, count, nb, d_fb.p, d_ranges.p, M, s.d_mel.p,
                                    s.stream);
  } else {
    cuda_fe::launch_power(s.d_spec.p, count, nb, s.d_power.p, s.stream);
    // Column-major view: mel^T (M, count) = fb (stored as (nb, M) col-major)^T x power^T.
    const float one = 1.0f, zero = 0.0f;
    FSL_CUDA_CHECK(cublasSgemm(s.blas, CUBLAS_OP_T, CUBLAS_OP_N, M, count, nb, &one, d_fb.p, nb,
                               s.d_power.p, nb, &zero, s.d_mel.p, M));
  }
  if (io.logmel) {
    float* d_out = io.logmel_mem == Mem::kDevice ? io.logmel + row : s.d_logmel.p;
    cuda_fe::launch_logmel(s.d_mel.p, size, float(p.log_eps), d_out, s.stream);
    if (io.logmel_mem != Mem::kDevice)
      FSL_CUDA_CHECK(cudaMemcpyAsync(io.logmel_mem == Mem::kPinned ? io.logmel + row : s.h_logmel.p,
                                     d_out, out_bytes, cudaMemcpyDeviceToHost, s.stream));
  }
  if (io.pcen) {
    const double smoother = fm::pcen_smoother_coef(p.pcen_time_constant, p.sr, double(p.pcen_hop));
    const fm::PcenParams pp{float(p.pcen_gain), float(p.pcen_bias), float(p.pcen_power),
                            float(p.pcen_eps)};
    const float pcen_scale = std::ldexp(1.0f, 64);  // mel of x * 2^32 = mel * 2^64
    float* d_out = io.pcen_mem == Mem::kDevice ? io.pcen + row : s.d_pcen.p;
    cuda_fe::launch_scale(s.d_mel.p, size, pcen_scale, s.d_energy.p, s.stream);
    // The smoother state is carried chunk to chunk in d_state: chunk c's PCEN starts after chunk
    // c-1's (another slot, another stream) has updated it. Chunk 0 follows the state's reset,
    // queued on slot 0's stream by run().
    if (index > 0)
      FSL_CUDA_CHECK(
          cudaStreamWaitEvent(s.stream, slots[(index - 1) % slots.size()]->pcen_done, 0));
    cuda_fe::launch_pcen(s.d_energy.p, count, M, smoother, pp, s.d_tile_maps.p, s.d_tile_start.p,
                         d_state.p, d_out, s.stream);
    FSL_CUDA_CHECK(cudaEventRecord(s.pcen_done, s.stream));
    if (io.pcen_mem != Mem::kDevice)
      FSL_CUDA_CHECK(cudaMemcpyAsync(io.pcen_mem == Mem::kPinned ? io.pcen + row : s.h_pcen.p,
                                     d_out, out_bytes, cudaMemcpyDeviceToHost, s.stream));
  }
  FSL_CUDA_CHECK(cudaEventRecord(s.done, s.stream));
}

// Copies chunk `index`'s results from its slot's pinned buffers to pageable outputs (outputs in
// pinned or device memory were written by the GPU directly).
void CudaFrontend::Impl::drain(const Io& io, const fscan::ChunkPlan& c, size_t index) {
  const bool log_staged = io.logmel && io.logmel_mem == Mem::kPageable;
  const bool pcen_staged = io.pcen && io.pcen_mem == Mem::kPageable;
  if (!log_staged && !pcen_staged) return;
  Slot& s = *slots[index % slots.size()];
  FSL_CUDA_CHECK(cudaEventSynchronize(s.done));
  const size_t row = c.frame_begin * size_t(M);
  const size_t bytes = sizeof(float) * (c.frame_end - c.frame_begin) * size_t(M);
  if (log_staged) fscan::parallel_memcpy(io.logmel + row, s.h_logmel.p, bytes, copy_threads);
  if (pcen_staged) fscan::parallel_memcpy(io.pcen + row, s.h_pcen.p, bytes, copy_threads);
}

void CudaFrontend::Impl::run(const FrontendParams& p, CudaMelPath path, const Io& io) {
  const auto plans = fscan::plan_chunks(io.n, p.n_fft, p.hop, p.reflect_pad, size_t(F));
  try {
    // The slots' streams do not wait for the legacy default stream by themselves: a caller's
    // cudaMemcpy / cudaMemset of the device input just before (compute_device) may still be in
    // flight. Start after it.
    FSL_CUDA_CHECK(cudaEventRecord(slots[0]->entry, cudaStreamLegacy));
    for (auto& s : slots) FSL_CUDA_CHECK(cudaStreamWaitEvent(s->stream, slots[0]->entry, 0));
    if (io.pcen)
      FSL_CUDA_CHECK(cudaMemcpyAsync(d_state.p, d_state0.p, sizeof(double) * M,
                                     cudaMemcpyDeviceToDevice, slots[0]->stream));
    for (const fscan::PipelineOp& op : fscan::pipeline_schedule(plans.size(), int(slots.size()))) {
      if (op.kind == fscan::PipelineOp::kEnqueue)
        enqueue(p, path, io, plans, op.chunk);
      else
        drain(io, plans[op.chunk], op.chunk);
    }
    for (auto& s : slots) FSL_CUDA_CHECK(cudaStreamSynchronize(s->stream));
  } catch (...) {
    // Leave no queued copy writing into the caller's memory after the throw.
    for (auto& s : slots) cudaStreamSynchronize(s->stream);
    throw;
  }
}

CudaFrontend::CudaFrontend(const FrontendParams& p, size_t max_chunk_samples)
    : FeatureExtractor(p) {
  if (p.n_fft < 2 || p.n_fft % 2 || p.hop <= 0 || p.n_mels <= 0 || p.sr <= 0)
    fail("CUDA front end: invalid parameters (n_fft ", p.n_fft, ", hop ", p.hop, ", n_mels ",
         p.n_mels, ")");
  std::string why;
  if (!cuda_device_available(&why)) fail("CUDA front end: ", why);
  // Grid y of the scan kernels and int frame counts bound a chunk; 2^20 frames is ~3.4 h.
  const size_t F =
      std::min<size_t>(fscan::chunk_frames_for(max_chunk_samples, p.n_fft, p.hop), size_t(1) << 20);
  const size_t cap = fscan::chunk_sample_capacity(F, p.n_fft, p.hop);
  impl_ = std::make_unique<Impl>(int(F), p.n_fft, p.n_mels, cap);
  Impl& s = *impl_;
  if (size_t(s.nb) * sizeof(float) > kMaxSharedBytes) mel_path_ = CudaMelPath::kGemm;

  const int n = p.n_fft;
  std::vector<double> window(n);
  for (int i = 0; i < n; ++i) window[i] = fm::hann_periodic(i, n);
  const std::vector<float> fb = mel_filterbank(p);  // (M, nb)
  const std::vector<int> ranges = fscan::mel_band_ranges(fb, p.n_mels, s.nb);
  const std::vector<double> state0(p.n_mels, fm::pcen_smoother_init());
  FSL_CUDA_CHECK(
      cudaMemcpy(s.d_window.p, window.data(), sizeof(double) * n, cudaMemcpyHostToDevice));
  FSL_CUDA_CHECK(
      cudaMemcpy(s.d_fb.p, fb.data(), sizeof(float) * fb.size(), cudaMemcpyHostToDevice));
  FSL_CUDA_CHECK(
      cudaMemcpy(s.d_ranges.p, ranges.data(), sizeof(int) * ranges.size(), cudaMemcpyHostToDevice));
  FSL_CUDA_CHECK(cudaMemcpy(s.d_state0.p, state0.data(), sizeof(double) * state0.size(),
                            cudaMemcpyHostToDevice));
  // A pageable cudaMemcpy may return before its DMA lands, and the non-blocking streams do not
  // wait for the legacy stream: finish the uploads before any kernel reads them.
  FSL_CUDA_CHECK(cudaDeviceSynchronize());
}

CudaFrontend::~CudaFrontend() = default;

size_t CudaFrontend::frames_per_chunk() const { return size_t(impl_->F); }

namespace {

// The checks shared by compute_into and compute_device, before any work is queued.
void check_request(const char* who, const float* x, size_t n, const RequestedTypes& req,
                   const float* logmel, const float* pcen) {
  if (n == 0) fail(who, ": empty signal");
  if (!x) fail(who, ": no input signal");
  if (req.logmel && !logmel) fail(who, ": logmel requested but its output is null");
  if (req.pcen && !pcen) fail(who, ": pcen requested but its output is null");
}

}  // namespace

void CudaFrontend::compute_into(const float* x, size_t n, const std::vector<std::string>& types,
                                float* logmel_out, float* pcen_out) {
  const char* who = "CUDA front end (compute_into)";
  const auto req = parse_requested_types(types, who);
  check_request(who, x, n, req, logmel_out, pcen_out);
  Io io{x,
        n,
        memory_kind(x),
        req.logmel ? logmel_out : nullptr,
        Mem::kPageable,
        req.pcen ? pcen_out : nullptr,
        Mem::kPageable};
  if (io.logmel) io.logmel_mem = memory_kind(io.logmel);
  if (io.pcen) io.pcen_mem = memory_kind(io.pcen);
  if (io.x_mem == Mem::kDevice || io.logmel_mem == Mem::kDevice || io.pcen_mem == Mem::kDevice)
    fail(who, ": a buffer is in device memory (use compute_device)");
  impl_->run(p_, mel_path_, io);
}

void CudaFrontend::compute_device(const float* d_x, size_t n, const std::vector<std::string>& types,
                                  float* d_logmel, float* d_pcen) {
  const char* who = "CUDA front end (compute_device)";
  const auto req = parse_requested_types(types, who);
  check_request(who, d_x, n, req, d_logmel, d_pcen);
  const Io io{d_x,          n,
              Mem::kDevice, req.logmel ? d_logmel : nullptr,
              Mem::kDevice, req.pcen ? d_pcen : nullptr,
              Mem::kDevice};
  if (memory_kind(d_x) != Mem::kDevice || (io.logmel && memory_kind(io.logmel) != Mem::kDevice) ||
      (io.pcen && memory_kind(io.pcen) != Mem::kDevice))
    fail(who, ": a buffer is not in device memory (use compute_into)");
  impl_->run(p_, mel_path_, io);
}

}  // namespace fsl
