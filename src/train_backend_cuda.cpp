// The CUDA training backend: CudaEncoder + CudaProtoLoss + CudaAdam (bench/bench_gpu_train.cpp's
// step). Per episode: x is copied to the device (one cudaMemcpyAsync on the encoder's stream),
// forward, loss (labels go with CudaProtoLoss's host bookkeeping; it returns loss and accuracy,
// the step's one wait), backward and Adam are enqueued and overlap the host's next episode.
// Checkpoints: TrainBackend::save / load over the encoder's and Adam's host views
// (CudaEncoder::state, CudaAdam::state), uploaded again after a load.
#include "fsl/error.hpp"
#include "fsl/train_backend.hpp"

#ifdef FSL_HAVE_CUDA
#include <cmath>

#include "fsl/cuda_check.hpp"
#include "fsl/cuda_context.hpp"
#include "fsl/cuda_encoder.hpp"
#include "fsl/cuda_ops.hpp"

namespace fsl {

namespace {

class CudaTrainBackend final : public TrainBackend {
 public:
  CudaTrainBackend(const Config& c, int max_batch, int max_frames)
      : tp_(c.train_param),
        n_mels_(c.features.n_mels),
        enc_(c.features, max_batch, max_frames, static_cast<uint64_t>(c.train_param.seed),
             c.runtime.tf32),
        loss_(max_batch, enc_.dim()),
        adam_(enc_.num_params(), AdamParams{static_cast<float>(c.train_param.lr_rate)}),
        x_(size_t(max_batch) * max_frames * c.features.n_mels),
        emb_(size_t(max_batch) * enc_.dim()),
        demb_(size_t(max_batch) * enc_.dim()) {}

  const char* device() const override { return "cuda"; }
  size_t num_params() const override { return enc_.num_params(); }
  int min_frames() const override { return enc_.min_frames(); }
  int dim() const override { return enc_.dim(); }

  LossResult train_step(const float* x, const std::vector<int>& labels, int frames) override {
    const int B = upload(x, labels, frames);
    enc_.zero_grad();
    enc_.forward(x_.get(), B, frames, true, emb_.get());
    const LossResult res = loss(labels, demb_.get());
    if (!std::isfinite(res.loss)) return res;  // the caller stops; no update from a NaN
    enc_.backward(demb_.get());
    adam_.step(ctx(), enc_.params(), enc_.grads());
    return res;
  }

  LossResult eval_step(const float* x, const std::vector<int>& labels, int frames) override {
    const int B = upload(x, labels, frames);
    enc_.forward(x_.get(), B, frames, false, emb_.get());
    return loss(labels, nullptr);
  }

  std::vector<float> embed(const float* x, int B, int frames) override {
    check_shape(B, frames);
    copy_in(x, B, frames);
    enc_.forward(x_.get(), B, frames, false, emb_.get());
    std::vector<float> out(size_t(B) * enc_.dim());
    FSL_CUDA_CHECK(cudaMemcpyAsync(out.data(), emb_.get(), out.size() * sizeof(float),
                                   cudaMemcpyDeviceToHost, ctx().stream()));
    ctx().synchronize();
    return out;
  }

  void set_lr(float lr) override { adam_.set_lr(lr); }
  void set_dropout_seed(uint64_t seed) override { enc_.set_dropout_seed(seed); }

  std::vector<NamedTensor> encoder_state() override { return enc_.state(); }
  std::vector<NamedTensor> optimizer_state() override { return adam_.state(); }
  const FeaturesConfig& features() const override { return enc_.config(); }
  void loaded(bool with_optimizer) override {
    enc_.load_state();
    if (with_optimizer) adam_.load_state();
  }

  std::vector<float> params() override {
    std::vector<float> out(enc_.num_params());
    ctx().synchronize();
    FSL_CUDA_CHECK(
        cudaMemcpy(out.data(), enc_.params(), out.size() * sizeof(float), cudaMemcpyDeviceToHost));
    return out;
  }

 private:
  CudaContext& ctx() { return enc_.context(); }
  void check_shape(int B, int frames) const {
    if (B < 1 || B > enc_.max_batch() || frames < enc_.min_frames() || frames > enc_.max_frames())
      fail("CUDA training backend: episode of ", B, " x ", frames, " outside the planned ",
           enc_.max_batch(), " x ", enc_.max_frames());
  }
  // Ordered on the stream after the previous step's backward, which still reads x_.
  void copy_in(const float* x, int B, int frames) {
    FSL_CUDA_CHECK(cudaMemcpyAsync(x_.get(), x, size_t(B) * frames * n_mels_ * sizeof(float),
                                   cudaMemcpyHostToDevice, ctx().stream()));
  }
  int upload(const float* x, const std::vector<int>& labels, int frames) {
    const int B = static_cast<int>(labels.size());
    check_shape(B, frames);
    copy_in(x, B, frames);
    return B;
  }
  // Waits for the stream: the host's x may be refilled once this returns.
  LossResult loss(const std::vector<int>& labels, float* demb) {
    return loss_.compute(ctx(), emb_.get(), labels.data(), static_cast<int>(labels.size()),
                         tp_.n_shot, tp_.negative_train_contrast, demb);
  }

  TrainConfig tp_;
  int n_mels_;
  CudaEncoder enc_;
  cuda::CudaProtoLoss loss_;
  cuda::CudaAdam adam_;
  DeviceBuffer<float> x_, emb_, demb_;  // (max_batch, max_frames, n_mels), (max_batch, dim) x 2
};

}  // namespace

std::unique_ptr<TrainBackend> make_cuda_train_backend(const Config& c, int max_batch,
                                                      int max_frames) {
  return std::make_unique<CudaTrainBackend>(c, max_batch, max_frames);
}

}  // namespace fsl

#else  // !FSL_HAVE_CUDA

namespace fsl {
std::unique_ptr<TrainBackend> make_cuda_train_backend(const Config&, int, int) {
  fail("CUDA training backend: built without CUDA");
}
}  // namespace fsl

#endif
