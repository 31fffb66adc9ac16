#include "fsl/loss.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "fsl/error.hpp"

namespace fsl {

namespace {

// l_q = d(q, p_y) + log sum_j exp(-d(q, p_j)); dl/dd_j = 1[j = y] - softmax_j(-d).
// d(q, p) = |q - p|^2: dd/dq = 2 (q - p), dd/dp = -2 (q - p); p = mean of n_shot supports.
template <typename T>
LossResult proto_loss(const T* emb, const int* labels, int B, int D, int n_shot, T* demb,
                      bool positives_only) {
  std::vector<int> classes(labels, labels + B);
  std::sort(classes.begin(), classes.end());
  classes.erase(std::unique(classes.begin(), classes.end()), classes.end());
  const int L = int(classes.size());
  std::vector<std::vector<int>> members(L);
  for (int i = 0; i < B; ++i) {
    const int j = int(std::lower_bound(classes.begin(), classes.end(), labels[i]) - classes.begin());
    members[j].push_back(i);
  }
  for (int j = 0; j < L; ++j)
    if (int(members[j].size()) <= n_shot)
      fail("prototypical loss: label ", classes[j], " has ", members[j].size(),
           " samples, needs more than n_shot = ", n_shot);

  std::vector<double> proto(size_t(L) * D, 0.0), dproto(size_t(L) * D, 0.0);
  for (int j = 0; j < L; ++j)
    for (int s = 0; s < n_shot; ++s) {
      const T* e = emb + size_t(members[j][s]) * D;
      for (int k = 0; k < D; ++k) proto[size_t(j) * D + k] += double(e[k]) / n_shot;
    }

  std::vector<int> queries, target;  // batch index, prototype index
  for (int j = 0; j < L; ++j) {
    if (positives_only && (classes[j] % 2 != 0)) continue;
    for (size_t s = n_shot; s < members[j].size(); ++s) {
      queries.push_back(members[j][s]);
      target.push_back(j);
    }
  }
  const int Q = int(queries.size());
  if (Q == 0) fail("prototypical loss: no query to score (no positive, even, label?)");
  if (demb) std::fill(demb, demb + size_t(B) * D, T(0));

  double loss = 0;
  int correct = 0;
  std::vector<double> dist(L), g(L);
  for (int qi = 0; qi < Q; ++qi) {
    const T* q = emb + size_t(queries[qi]) * D;
    for (int j = 0; j < L; ++j) {
      double s = 0;
      for (int k = 0; k < D; ++k) {
        const double diff = double(q[k]) - proto[size_t(j) * D + k];
        s += diff * diff;
      }
      dist[j] = s;
    }
    const int y = target[qi];
    const double dmin = *std::min_element(dist.begin(), dist.end());
    double z = 0;
    for (int j = 0; j < L; ++j) z += std::exp(dmin - dist[j]);
    loss += dist[y] - dmin + std::log(z);
    if (int(std::min_element(dist.begin(), dist.end()) - dist.begin()) == y) ++correct;
    if (!demb) continue;
    for (int j = 0; j < L; ++j) g[j] = ((j == y ? 1.0 : 0.0) - std::exp(dmin - dist[j]) / z) / Q;
    T* dq = demb + size_t(queries[qi]) * D;
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
