// The order-sensitive parts of the official metric: numpy's quicksort argsort and mir_eval's
// Hopcroft-Karp, emulated step by step so that the same maximum matching is found.
#include <algorithm>

#include "fsl/metric.hpp"

namespace fsl::detail {

namespace {

// numpy's aheapsort over tosort[0..n), 1-based heap indexing as in numpy.
void numpy_aheapsort(int* tosort, int n, const std::function<bool(int, int)>& less) {
  int* a = tosort - 1;
  for (int l = n >> 1; l > 0; --l) {
    int tmp = a[l], i = l, j = l << 1;
    while (j <= n) {
      if (j < n && less(a[j], a[j + 1])) j += 1;
      if (!less(tmp, a[j])) break;
      a[i] = a[j];
      i = j;
      j += j;
    }
    a[i] = tmp;
  }
  for (; n > 1;) {
    int tmp = a[n];
    a[n] = a[1];
    n -= 1;
    int i = 1, j = 2;
    while (j <= n) {
      if (j < n && less(a[j], a[j + 1])) j++;
      if (!less(tmp, a[j])) break;
      a[i] = a[j];
      i = j;
      j += j;
    }
    a[i] = tmp;
  }
}

int msb(unsigned long long n) {
  int depth = 0;
  while (n >>= 1) depth++;
  return depth;
}

}  // namespace

std::vector<int> numpy_quicksort_argsort(int n, const std::function<bool(int, int)>& less) {
  std::vector<int> idx(n);
  for (int i = 0; i < n; ++i) idx[i] = i;
  if (n < 2) return idx;
  constexpr int kSmall = 15;  // numpy's SMALL_QUICKSORT (partitions > 16 elements)
  int* pl = idx.data();
  int* pr = idx.data() + n - 1;
  std::vector<int*> stack;  // pairs (pl, pr) of partitions still to sort
  std::vector<int> depths;
  int cdepth = msb(static_cast<unsigned long long>(n)) * 2;
  for (;;) {
    if (cdepth < 0) {
      numpy_aheapsort(pl, static_cast<int>(pr - pl + 1), less);
    } else {
      while (pr - pl > kSmall) {
        int* pm = pl + ((pr - pl) >> 1);
        if (less(*pm, *pl)) std::swap(*pm, *pl);
        if (less(*pr, *pm)) std::swap(*pr, *pm);
        if (less(*pm, *pl)) std::swap(*pm, *pl);
        const int pivot = *pm;  // numpy keeps a pointer to the pivot's value, not its slot
        int* pi = pl;
        int* pj = pr - 1;
        std::swap(*pm, *pj);
        for (;;) {
          do ++pi;
          while (less(*pi, pivot));
          do --pj;
          while (less(pivot, *pj));
          if (pi >= pj) break;
          std::swap(*pi, *pj);
        }
        std::swap(*pi, *(pr - 1));
        if (pi - pl < pr - pi) {  // push the larger partition
          stack.push_back(pi + 1);
          stack.push_back(pr);
          pr = pi - 1;
        } else {
          stack.push_back(pl);
          stack.push_back(pi - 1);
          pl = pi + 1;
        }
        depths.push_back(--cdepth);
      }
      for (int* pi = pl + 1; pi <= pr; ++pi) {  // insertion sort
        int vi = *pi;
        int* pj = pi;
        int* pk = pi - 1;
        while (pj > pl && less(vi, *pk)) *pj-- = *pk--;
        *pj = vi;
      }
    }
    if (stack.empty()) break;
    pr = stack.back();
    stack.pop_back();
    pl = stack.back();
    stack.pop_back();
    cdepth = depths.back();
    depths.pop_back();
  }
  return idx;
}

namespace {

// mir_eval.util._bipartite_match on graph u -> [v...] whose keys, in dict order, are `u_order`.
// Python dict order matters only for new_layer and the first layer; the rest is membership.
// Returns match_of_v (v -> u, -1 when unmatched).
std::vector<int> bipartite_match(const std::vector<int>& u_order,
                                 const std::vector<std::vector<int>>& adj, int n_u, int n_v) {
  std::vector<int> match_of_v(n_v, -1);
  for (int u : u_order)  // greedy start
    for (int v : adj[u])
      if (match_of_v[v] < 0) {
        match_of_v[v] = u;
        break;
      }
  constexpr int kFirstLayer = -1;  // the script's `unmatched` list used as a flag in pred[u]
  for (;;) {
    std::vector<char> in_pred(n_u, 0), in_preds(n_v, 0);
    std::vector<int> pred(n_u, kFirstLayer);
    std::vector<std::vector<int>> preds(n_v);
    std::vector<int> unmatched;
    for (int u : u_order) in_pred[u] = 1;
    for (int v = 0; v < n_v; ++v)
      if (match_of_v[v] >= 0) in_pred[match_of_v[v]] = 0;
    std::vector<int> layer;
    for (int u : u_order)
      if (in_pred[u]) layer.push_back(u);

    while (!layer.empty() && unmatched.empty()) {
      std::vector<int> new_order;  // new_layer's keys in insertion order
      std::vector<std::vector<int>> new_layer(n_v);
      std::vector<char> in_new(n_v, 0);
      for (int u : layer)
        for (int v : adj[u])
          if (!in_preds[v]) {
            if (!in_new[v]) {
              in_new[v] = 1;
              new_order.push_back(v);
            }
            new_layer[v].push_back(u);
          }
      layer.clear();
      for (int v : new_order) {
        preds[v] = new_layer[v];
        in_preds[v] = 1;
        if (match_of_v[v] >= 0) {
          layer.push_back(match_of_v[v]);
          pred[match_of_v[v]] = v;
          in_pred[match_of_v[v]] = 1;
        } else {
          unmatched.push_back(v);
        }
      }
    }
    if (unmatched.empty()) return match_of_v;

    std::function<bool(int)> recurse = [&](int v) -> bool {
      if (!in_preds[v]) return false;
      std::vector<int> L = std::move(preds[v]);
      in_preds[v] = 0;
      for (int u : L) {
        if (!in_pred[u]) continue;
        int pu = pred[u];
        in_pred[u] = 0;
        if (pu == kFirstLayer || recurse(pu)) {
          match_of_v[v] = u;
          return true;
        }
      }
      return false;
    };
    for (int v : unmatched) recurse(v);
  }
}

}  // namespace

std::vector<std::pair<int, int>> match_events(const std::vector<Span>& ref,
                                              const std::vector<Span>& est, double min_iou) {
  const int n_ref = static_cast<int>(ref.size()), n_est = static_cast<int>(est.size());
  // Graph est -> refs. The script's hits come out of a canonical sparse matrix: row (ref) major,
  // est ascending; a dict keyed by est keeps first-appearance order.
  std::vector<std::vector<int>> adj(n_est);
  std::vector<int> u_order;
  for (int r = 0; r < n_ref; ++r) {
    for (int e = 0; e < n_est; ++e) {
      if (!(ref[r].on <= est[e].off && ref[r].off >= est[e].on)) continue;
      double inter = std::min(ref[r].off, est[e].off) - std::max(ref[r].on, est[e].on);
      double uni = std::max(ref[r].off, est[e].off) - std::min(ref[r].on, est[e].on);
      double iou = inter / uni;  // 0/0 -> NaN -> no edge, as in numpy
      if (!(iou > min_iou)) continue;
      if (adj[e].empty()) u_order.push_back(e);
      adj[e].push_back(r);
    }
  }
  std::vector<int> match_of_ref = bipartite_match(u_order, adj, n_est, n_ref);
  std::vector<std::pair<int, int>> out;
  for (int r = 0; r < n_ref; ++r)
    if (match_of_ref[r] >= 0) out.emplace_back(r, match_of_ref[r]);
  return out;
}

}  // namespace fsl::detail
