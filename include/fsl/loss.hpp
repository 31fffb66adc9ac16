// Prototypical losses (docs/REFERENCE.md §5), forward and hand-written backward.
// Squared Euclidean distance; labels are sorted (torch.unique order) and for each label the first
// n_shot samples (in batch order) are its support, the rest its queries; prototype = support
// mean. Every label needs more than n_shot samples. The loss is the mean over scored queries of
// -log softmax_j(-d(q, p_j))[own label]; accuracy is the fraction whose nearest prototype is their
// own. (The baseline assumes equal counts per label; with equal counts this is the same mean.)
#pragma once
#include <vector>

namespace fsl {

// The roles in one episode, shared by the CPU and CUDA losses: labels sorted, for each its
// samples in batch order (the first n_shot are the support), and the scored queries (every
// label's, or only even labels' when positives_only) with their label's index. Throws
// fsl::Error when a label has <= n_shot samples or no query is scored.
struct ProtoPlan {
  std::vector<int> classes;               // (L) sorted distinct labels
  std::vector<std::vector<int>> members;  // (L) batch indices of each label, in batch order
  std::vector<int> queries, target;       // (Q) batch index, index into classes
};
ProtoPlan plan_prototypes(const int* labels, int B, int n_shot, bool positives_only);

struct LossResult {
  double loss = 0;
  double accuracy = 0;
};

// emb (B, D), labels (B) -> loss; demb (B, D) is overwritten with d loss / d emb (may be null).
// Throws fsl::Error when a label has <= n_shot samples.
template <typename T>
LossResult prototypical_loss(const T* emb, const int* labels, int B, int D, int n_shot, T* demb);

// As above but only queries of positive (even) labels are scored; prototypes of all labels,
// odd (negative) ones included, compete in the softmax (`negative_train_contrast`).
template <typename T>
LossResult prototypical_loss_filter_negative(const T* emb, const int* labels, int B, int D,
                                             int n_shot, T* demb);

}  // namespace fsl
