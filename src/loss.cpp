#include "fsl/loss.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "fsl/error.hpp"
#include "fsl/op_math.hpp"

namespace fsl {

ProtoPlan plan_prototypes(const int* labels, int B, int n_shot, bool positives_only) {
  ProtoPlan p;
  p.classes.assign(labels, labels + B);
  std::sort(p.classes.begin(), p.classes.end());
  p.classes.erase(std::unique(p.classes.begin(), p.classes.end()), p.classes.end());
  const int L = int(p.classes.size());
  p.members.resize(L);
  for (int i = 0; i < B; ++i)
    p.members[std::lower_bound(p.classes.begin(), p.classes.end(), labels[i]) - p.classes.begin()]
        .push_back(i);
  for (int j = 0; j < L; ++j) {
    if (int(p.members[j].size()) <= n_shot)
      fail("prototypical loss: label ", p.classes[j], " has ", p.members[j].size(),
           " samples, needs more than n_shot = ", n_shot);
    if (positives_only && p.classes[j] % 2 != 0) continue;
    for (size_t s = n_shot; s < p.members[j].size(); ++s) {
      p.queries.push_back(p.members[j][s]);
      p.target.push_back(j);
    }
  }
  if (p.queries.empty()) fail("prototypical loss: no query to score (no positive, even, label?)");
  return p;
}

namespace {

// l_q = d(q, p_y) + log sum_j exp(-d(q, p_j)); dl/dd_j = 1[j = y] - softmax_j(-d).
// d(q, p) = |q - p|^2: dd/dq = 2 (q - p), dd/dp = -2 (q - p); p = mean of n_shot supports.
template <typename T>
LossResult proto_loss(const T* emb, const int* labels, int B, int D, int n_shot, T* demb,
                      bool positives_only) {
  const ProtoPlan plan = plan_prototypes(labels, B, n_shot, positives_only);
  const auto& members = plan.members;
  const int L = int(plan.classes.size()), Q = int(plan.queries.size());

  std::vector<double> proto(size_t(L) * D, 0.0), dproto(size_t(L) * D, 0.0);
  for (int j = 0; j < L; ++j)
    for (int s = 0; s < n_shot; ++s) {
      const T* e = emb + size_t(members[j][s]) * D;
      for (int k = 0; k < D; ++k) proto[size_t(j) * D + k] += double(e[k]) / n_shot;
    }
  if (demb) std::fill(demb, demb + size_t(B) * D, T(0));

  double loss = 0;
  int correct = 0;
  std::vector<double> dist(L), g(L);
  for (int qi = 0; qi < Q; ++qi) {
    const T* q = emb + size_t(plan.queries[qi]) * D;
    for (int j = 0; j < L; ++j) {
      double s = 0;
      for (int k = 0; k < D; ++k) {
        const double diff = double(q[k]) - proto[size_t(j) * D + k];
        s += diff * diff;
      }
      dist[j] = s;
    }
    bool hit = false;
    loss += om::proto_query(dist.data(), L, plan.target[qi], Q, demb ? g.data() : nullptr, &hit);
    correct += hit;
    if (!demb) continue;
    T* dq = demb + size_t(plan.queries[qi]) * D;
    for (int j = 0; j < L; ++j)
      for (int k = 0; k < D; ++k) {
        const double t = 2.0 * g[j] * (double(q[k]) - proto[size_t(j) * D + k]);
        dq[k] += T(t);
        dproto[size_t(j) * D + k] -= t;
      }
  }
  if (demb)
    for (int j = 0; j < L; ++j)
      for (int s = 0; s < n_shot; ++s) {
        T* ds = demb + size_t(members[j][s]) * D;
        for (int k = 0; k < D; ++k) ds[k] += T(dproto[size_t(j) * D + k] / n_shot);
      }
  return {loss / Q, double(correct) / Q};
}

}  // namespace

template <typename T>
LossResult prototypical_loss(const T* emb, const int* labels, int B, int D, int n_shot, T* demb) {
  return proto_loss(emb, labels, B, D, n_shot, demb, false);
}

template <typename T>
LossResult prototypical_loss_filter_negative(const T* emb, const int* labels, int B, int D,
                                             int n_shot, T* demb) {
  return proto_loss(emb, labels, B, D, n_shot, demb, true);
}

template LossResult prototypical_loss<float>(const float*, const int*, int, int, int, float*);
template LossResult prototypical_loss<double>(const double*, const int*, int, int, int, double*);
template LossResult prototypical_loss_filter_negative<float>(const float*, const int*, int, int,
                                                             int, float*);
template LossResult prototypical_loss_filter_negative<double>(const double*, const int*, int, int,
                                                              int, double*);

}  // namespace fsl
