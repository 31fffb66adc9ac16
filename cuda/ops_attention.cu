// Channel attention (v2) on the GPU, in the CPU op's steps: per-(n, c) spatial mean / max /
// argmax (one block each), the tiny MLP per sample (one block each), the broadcast multiply.
// Weight gradients: one thread per weight, summing over the batch in order (no atomics).
#include "fsl/cuda_ops.hpp"
#include "fsl/op_math.hpp"
#include "ops_common.hpp"

namespace fsl::cuda {

namespace {

// grid (N*C): avg, max and first argmax of x[n][c][:].
__global__ void ca_pool_kernel(float* avg, float* mx, int32_t* argmax, const float* x, int HW) {
  __shared__ float s_sum[kThreads], s_max[kThreads];
  __shared__ int s_arg[kThreads];
  const int64_t nc = blockIdx.x;
  const float* xc = x + nc * HW;
  float sum = 0, best = xc[0];
  int arg = 0;
  for (int i = threadIdx.x; i < HW; i += kThreads) {
    sum += xc[i];
    if (xc[i] > best) best = xc[i], arg = i;  // a thread's indices rise: first max kept
  }
  s_max[threadIdx.x] = best;
  s_arg[threadIdx.x] = arg;
  const float total = block_sum(sum, s_sum);
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if (int(threadIdx.x) < s) {
      const float v = s_max[threadIdx.x + s];
      const int a = s_arg[threadIdx.x + s];
      if (v > s_max[threadIdx.x] || (v == s_max[threadIdx.x] && a < s_arg[threadIdx.x]))
        s_max[threadIdx.x] = v, s_arg[threadIdx.x] = a;
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    avg[nc] = total / float(HW);
    mx[nc] = s_max[0];
    argmax[nc] = s_arg[0];
  }
}

// grid (N), shared 2*Cr floats: h = w1 v for both branches, att = sigmoid(w2 relu(h_avg) +
// w2 relu(h_max)).
__global__ void ca_mlp_kernel(float* h_avg, float* h_max, float* att, const float* avg,
                              const float* mx, const float* w1, const float* w2, int C, int Cr) {
  extern __shared__ float h[];  // (2, Cr)
  const int n = blockIdx.x;
  for (int r = threadIdx.x; r < 2 * Cr; r += blockDim.x) {
    const float* v = (r < Cr ? avg : mx) + int64_t(n) * C;
    const int rr = r % Cr;
    float s = 0;
    for (int c = 0; c < C; ++c) s += w1[rr * C + c] * v[c];
    h[r] = s;
    (r < Cr ? h_avg : h_max)[int64_t(n) * Cr + rr] = s;
  }
  __syncthreads();
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    float sa = 0, sm = 0;
    for (int r = 0; r < Cr; ++r) sa += w2[c * Cr + r] * om::relu(h[r]);
    for (int r = 0; r < Cr; ++r) sm += w2[c * Cr + r] * om::relu(h[Cr + r]);
    att[int64_t(n) * C + c] = om::sigmoid(0.0f + sa + sm);
  }
}

__global__ void ca_scale_kernel(float* y, const float* x, const float* att, int64_t n, int HW) {
  FSL_KERNEL_LOOP(e, n) y[e] = x[e] * att[e / HW];
}

// grid (N*C): dlogit = sum_hw(dy x) att (1 - att).
__global__ void ca_dlogit_kernel(float* dlogit, const float* dy, const float* x, const float* att,
                                 int HW) {
  __shared__ float shared[kThreads];
  const int64_t nc = blockIdx.x;
  float s = 0;
  for (int i = threadIdx.x; i < HW; i += kThreads) s += dy[nc * HW + i] * x[nc * HW + i];
  const float d = block_sum(s, shared);
  if (threadIdx.x == 0) dlogit[nc] = d * att[nc] * (1.0f - att[nc]);
}

// grid (N), shared 2*Cr: dh = relu'(h) (w2^T dlogit) per branch, dv = w1^T dh per branch.
__global__ void ca_mlp_backward_kernel(float* dh_avg, float* dh_max, float* dv_avg, float* dv_max,
                                       const float* dlogit, const float* h_avg, const float* h_max,
                                       const float* w1, const float* w2, int C, int Cr) {
  extern __shared__ float dh[];  // (2, Cr)
  const int n = blockIdx.x;
  const float* dl = dlogit + int64_t(n) * C;
  for (int r = threadIdx.x; r < 2 * Cr; r += blockDim.x) {
    const int rr = r % Cr;
    float s = 0;
    for (int c = 0; c < C; ++c) s += w2[c * Cr + rr] * dl[c];
    const float hv = (r < Cr ? h_avg : h_max)[int64_t(n) * Cr + rr];
    s *= om::relu_grad_from_output(hv);
    dh[r] = s;
    (r < Cr ? dh_avg : dh_max)[int64_t(n) * Cr + rr] = s;
  }
  __syncthreads();
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    float sa = 0, sm = 0;
    for (int r = 0; r < Cr; ++r) sa += w1[r * C + c] * dh[r];
    for (int r = 0; r < Cr; ++r) sm += w1[r * C + c] * dh[Cr + r];
    dv_avg[int64_t(n) * C + c] = sa;
    dv_max[int64_t(n) * C + c] = sm;
  }
}

// One thread per weight of w2 (C, Cr) then w1 (Cr, C); sums over n in order.
__global__ void ca_weight_grad_kernel(float* dw1, float* dw2, const float* dlogit,
                                      const float* h_avg, const float* h_max, const float* dh_avg,
                                      const float* dh_max, const float* avg, const float* mx, int N,
                                      int C, int Cr) {
  FSL_KERNEL_LOOP(e, int64_t(2) * C * Cr) {
    float s = 0;
    if (e < int64_t(C) * Cr) {
      const int c = int(e / Cr), r = int(e % Cr);
      for (int n = 0; n < N; ++n) {
        const float d = dlogit[int64_t(n) * C + c];
        s += d * om::relu(h_avg[int64_t(n) * Cr + r]) + d * om::relu(h_max[int64_t(n) * Cr + r]);
      }
      dw2[e] += s;
    } else {
      const int64_t f = e - int64_t(C) * Cr;
      const int r = int(f / C), c = int(f % C);
      for (int n = 0; n < N; ++n)
        s += dh_avg[int64_t(n) * Cr + r] * avg[int64_t(n) * C + c] +
             dh_max[int64_t(n) * Cr + r] * mx[int64_t(n) * C + c];
      dw1[f] += s;
    }
  }
}

// dx = dy att + dv_avg / HW (+ dv_max at the argmax).
__global__ void ca_dx_kernel(float* dx, const float* dy, const float* att, const float* dv_avg,
                             const float* dv_max, const int32_t* argmax, int64_t n, int HW) {
  FSL_KERNEL_LOOP(e, n) {
    const int64_t nc = e / HW;
    float g = dy[e] * att[nc] + dv_avg[nc] / float(HW);
    if (e % HW == argmax[nc]) g += dv_max[nc];
    dx[e] = g;
  }
}

}  // namespace

int64_t channel_attention_scratch_size(int N, int C, int Cr) {
  return 3 * int64_t(N) * C + 2 * int64_t(N) * Cr;
}

void channel_attention_forward(CudaContext& ctx, float* y, const ChannelAttentionSaved<float>& s,
                               const float* x, const float* w1, const float* w2, int N, int C,
                               int Cr, int HW) {
  cudaStream_t st = ctx.stream();
  ca_pool_kernel<<<N * C, kThreads, 0, st>>>(s.avg, s.mx, s.argmax, x, HW);
  FSL_CUDA_CHECK_LAUNCH();
  ca_mlp_kernel<<<N, 128, 2 * Cr * sizeof(float), st>>>(s.h_avg, s.h_max, s.att, s.avg, s.mx, w1,
                                                        w2, C, Cr);
  FSL_CUDA_CHECK_LAUNCH();
  const int64_t n = int64_t(N) * C * HW;
  ca_scale_kernel<<<grid_for(n), kThreads, 0, st>>>(y, x, s.att, n, HW);
  FSL_CUDA_CHECK_LAUNCH();
}

void channel_attention_backward(CudaContext& ctx, float* dx, float* dw1, float* dw2,
                                const float* dy, const ChannelAttentionSaved<float>& s,
                                const float* x, const float* w1, const float* w2, int N, int C,
                                int Cr, int HW, float* scratch) {
  cudaStream_t st = ctx.stream();
  const int64_t NC = int64_t(N) * C, NCr = int64_t(N) * Cr;
  float *dlogit = scratch, *dv_avg = scratch + NC, *dv_max = scratch + 2 * NC;
  float *dh_avg = scratch + 3 * NC, *dh_max = dh_avg + NCr;
  ca_dlogit_kernel<<<N * C, kThreads, 0, st>>>(dlogit, dy, x, s.att, HW);
  FSL_CUDA_CHECK_LAUNCH();
  ca_mlp_backward_kernel<<<N, 128, 2 * Cr * sizeof(float), st>>>(
      dh_avg, dh_max, dv_avg, dv_max, dlogit, s.h_avg, s.h_max, w1, w2, C, Cr);
  FSL_CUDA_CHECK_LAUNCH();
  ca_weight_grad_kernel<<<grid_for(2 * int64_t(C) * Cr), kThreads, 0, st>>>(
      dw1, dw2, dlogit, s.h_avg, s.h_max, dh_avg, dh_max, s.avg, s.mx, N, C, Cr);
  FSL_CUDA_CHECK_LAUNCH();
  const int64_t n = NC * HW;
  ca_dx_kernel<<<grid_for(n), kThreads, 0, st>>>(dx, dy, s.att, dv_avg, dv_max, s.argmax, n, HW);
  FSL_CUDA_CHECK_LAUNCH();
}

}  // namespace fsl::cuda
