#include "fsl/model.hpp"

namespace fsl {

template <typename T>
EncoderT<T>::EncoderT(const FeaturesConfig& cfg, int max_batch, int max_frames, uint64_t seed)
    : core_(cfg, max_batch, max_frames, seed) {
  const EncoderLayout& L = core_.layout();
  params_.resize(L.n_params);
  grads_.assign(L.n_params, T(0));
  running_.resize(L.n_running);
  counters_.assign(L.n_counters, 0);
  L.initialise(params_.data(), running_.data(), seed);
  core_.allocate(ops_, arena_);
}

template class EncoderT<float>;
template class EncoderT<double>;

}  // namespace fsl
