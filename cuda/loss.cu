// Prototypical losses on the GPU. The host plans supports and queries with the CPU loss's
// plan_prototypes; the device computes prototypes, distances, the per-query softmax and the
// gradient, all accumulated in double like the CPU op. One thread per query for the softmax
// (L is ~20), one block per (query, prototype) distance.
#include <algorithm>
#include <cmath>

#include "fsl/cuda_ops.hpp"
#include "fsl/error.hpp"
#include "fsl/op_math.hpp"
#include "ops_common.hpp"

namespace fsl::cuda {

namespace {

// proto (L, D) = mean of each label's n_shot supports; support (L, n_shot) batch indices.
__global__ void proto_kernel(double* proto, const float* emb, const int32_t* support, int L, int D,
                             int n_shot) {
  FSL_KERNEL_LOOP(e, int64_t(L) * D) {
    const int j = int(e / D), k = int(e % D);
    double s = 0;
    for (int t = 0; t < n_shot; ++t)
      s += double(emb[int64_t(support[j * n_shot + t]) * D + k]) / n_shot;
    proto[e] = s;
  }
}

// grid (Q*L): dist[q][j] = |emb[query q] - proto j|^2.
__global__ void dist_kernel(double* dist, const float* emb, const double* proto,
                            const int32_t* queries, int L, int D) {
  __shared__ double shared[kThreads];
  const int q = blockIdx.x / L, j = blockIdx.x % L;
  const float* e = emb + int64_t(queries[q]) * D;
  const double* p = proto + int64_t(j) * D;
  double s = 0;
  for (int k = threadIdx.x; k < D; k += kThreads) {
    const double d = double(e[k]) - p[k];
    s += d * d;
  }
  const double total = block_sum(s, shared);
  if (threadIdx.x == 0) dist[blockIdx.x] = total;
}

// One thread per query: om::proto_query (the CPU loss's per-query math) -> sums[q] = (loss_q,
// correct), grad[q][j] = d loss / d dist.
__global__ void softmax_kernel(double* grad, double* sums, const double* dist,
                               const int32_t* target, int Q, int L) {
  FSL_KERNEL_LOOP(q, Q) {
    bool correct = false;
    sums[2 * q] = om::proto_query(dist + q * L, L, target[q], Q, grad + q * L, &correct);
    sums[2 * q + 1] = correct ? 1.0 : 0.0;
  }
}

// demb (B, D): a query gets sum_j 2 g[q][j] (e - p_j); a support of label j gets
// -sum_q 2 g[q][j] (e_q - p_j) / n_shot; every other sample 0. role (B, 2) = (query, label).
__global__ void demb_kernel(float* demb, const float* emb, const double* proto, const double* grad,
                            const int32_t* queries, const int32_t* role, int B, int D, int L, int Q,
                            int n_shot) {
  FSL_KERNEL_LOOP(e, int64_t(B) * D) {
    const int b = int(e / D), k = int(e % D);
    const int q = role[2 * b], js = role[2 * b + 1];
    double v = 0;
    if (q >= 0) {
      for (int j = 0; j < L; ++j)
        v += 2.0 * grad[q * L + j] * (double(emb[e]) - proto[int64_t(j) * D + k]);
    } else if (js >= 0) {
      for (int qq = 0; qq < Q; ++qq)
        v -= 2.0 * grad[qq * L + js] *
             (double(emb[int64_t(queries[qq]) * D + k]) - proto[int64_t(js) * D + k]);
      v /= n_shot;
    }
    demb[e] = float(v);
  }
}

}  // namespace

CudaProtoLoss::CudaProtoLoss(int max_batch, int dim)
    : max_batch_(max_batch),
      dim_(dim),
      d_index_(5 * size_t(max_batch)),
      d_proto_(size_t(max_batch) * dim),
      d_dist_(size_t(max_batch) * max_batch),
      d_grad_(size_t(max_batch) * max_batch),
      d_sums_(2 * size_t(max_batch)) {}

LossResult CudaProtoLoss::compute(CudaContext& ctx, const float* emb, const int* labels, int B,
                                  int n_shot, bool filter_negative, float* demb) {
  if (B < 1 || B > max_batch_)
    fail("CUDA prototypical loss: batch ", B, " outside 1..", max_batch_);
  const int D = dim_;
  const ProtoPlan plan = plan_prototypes(labels, B, n_shot, filter_negative);
  const int L = int(plan.classes.size()), Q = int(plan.queries.size());
  // h_index_: support (L*n_shot) | queries (Q) | targets (Q) | role (B, 2) = (query, label)
  std::vector<int32_t> support, role(2 * size_t(B), -1);
  for (int j = 0; j < L; ++j)
    for (int s = 0; s < n_shot; ++s) {
      support.push_back(plan.members[j][s]);
      role[2 * plan.members[j][s] + 1] = j;
    }
  for (int q = 0; q < Q; ++q) role[2 * plan.queries[q]] = q;
  h_index_ = support;
  h_index_.insert(h_index_.end(), plan.queries.begin(), plan.queries.end());
  h_index_.insert(h_index_.end(), plan.target.begin(), plan.target.end());
  h_index_.insert(h_index_.end(), role.begin(), role.end());
  int32_t* d_support = d_index_.get();
  int32_t* d_queries = d_support + support.size();
  int32_t* d_target = d_queries + Q;
  int32_t* d_role = d_target + Q;
  cudaStream_t st = ctx.stream();
  FSL_CUDA_CHECK(cudaMemcpyAsync(d_support, h_index_.data(), h_index_.size() * sizeof(int32_t),
                                 cudaMemcpyHostToDevice, st));

  proto_kernel<<<grid_for(int64_t(L) * D), kThreads, 0, st>>>(d_proto_.get(), emb, d_support, L, D,
                                                              n_shot);
  FSL_CUDA_CHECK_LAUNCH();
  dist_kernel<<<Q * L, kThreads, 0, st>>>(d_dist_.get(), emb, d_proto_.get(), d_queries, L, D);
  FSL_CUDA_CHECK_LAUNCH();
  softmax_kernel<<<grid_for(Q), kThreads, 0, st>>>(d_grad_.get(), d_sums_.get(), d_dist_.get(),
                                                   d_target, Q, L);
  FSL_CUDA_CHECK_LAUNCH();
  if (demb) {
    demb_kernel<<<grid_for(int64_t(B) * D), kThreads, 0, st>>>(
        demb, emb, d_proto_.get(), d_grad_.get(), d_queries, d_role, B, D, L, Q, n_shot);
    FSL_CUDA_CHECK_LAUNCH();
  }
  h_sums_.resize(2 * size_t(Q));
  FSL_CUDA_CHECK(cudaMemcpyAsync(h_sums_.data(), d_sums_.get(), h_sums_.size() * sizeof(double),
                                 cudaMemcpyDeviceToHost, st));
  FSL_CUDA_CHECK(cudaStreamSynchronize(st));
  double loss = 0, correct = 0;
  for (int q = 0; q < Q; ++q) loss += h_sums_[2 * q], correct += h_sums_[2 * q + 1];
  return {loss / Q, correct / Q};
}

}  // namespace fsl::cuda
