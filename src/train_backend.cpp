// The CPU training backend (the reference: Encoder, Adam and the losses of fsl/loss.hpp)
// and the choice of backend from runtime.device.
#include "fsl/train_backend.hpp"

#include <cmath>

#include "fsl/error.hpp"
#include "fsl/model.hpp"
#include "fsl/optim.hpp"

namespace fsl {

namespace {

class CpuTrainBackend final : public TrainBackend {
 public:
  CpuTrainBackend(const Config& c, int max_batch, int max_frames)
      : tp_(c.train_param),
        enc_(c.features, max_batch, max_frames, static_cast<uint64_t>(c.train_param.seed)),
        n_params_(enc_.params().size()),
        adam_(n_params_, AdamParams{static_cast<float>(c.train_param.lr_rate)}),
        emb_(size_t(max_batch) * enc_.dim()),
        demb_(emb_.size()) {}

  const char* device() const override { return "cpu"; }
  size_t num_params() const override { return n_params_; }
  int min_frames() const override { return enc_.min_frames(); }
  int dim() const override { return enc_.dim(); }

  LossResult train_step(const float* x, const std::vector<int>& labels, int frames) override {
    enc_.zero_grad();
    enc_.forward(x, batch(labels), frames, true, emb_.data());
    LossResult res = loss(labels, demb_.data());
    if (!std::isfinite(res.loss)) return res;  // the caller stops; no update from a NaN
    enc_.backward(demb_.data());
    adam_.step(enc_.params(), enc_.grads());
    return res;
  }

  LossResult eval_step(const float* x, const std::vector<int>& labels, int frames) override {
    enc_.forward(x, batch(labels), frames, false, emb_.data());
    return loss(labels, nullptr);
  }

  std::vector<float> embed(const float* x, int B, int frames) override {
    std::vector<float> out(size_t(B) * enc_.dim());
    enc_.forward(x, B, frames, false, out.data());
    return out;
  }

  void set_lr(float lr) override { adam_.set_lr(lr); }
  void set_dropout_seed(uint64_t seed) override { enc_.set_dropout_seed(seed); }

  std::vector<NamedTensor> encoder_state() override { return enc_.state(); }
  std::vector<NamedTensor> optimizer_state() override { return adam_.state(); }
  const FeaturesConfig& features() const override { return enc_.config(); }

  std::vector<float> params() override {
    return std::vector<float>(enc_.params().begin(), enc_.params().end());
  }

 private:
  int batch(const std::vector<int>& labels) const { return static_cast<int>(labels.size()); }
  LossResult loss(const std::vector<int>& labels, float* demb) {
    const int B = batch(labels);
    return tp_.negative_train_contrast
               ? prototypical_loss_filter_negative(emb_.data(), labels.data(), B, enc_.dim(),
                                                   tp_.n_shot, demb)
               : prototypical_loss(emb_.data(), labels.data(), B, enc_.dim(), tp_.n_shot, demb);
  }

  TrainConfig tp_;
  Encoder enc_;
  size_t n_params_;
  Adam adam_;
  std::vector<float> emb_, demb_;  // (max_batch, dim)
};

}  // namespace

void TrainBackend::save(const std::filesystem::path& path, bool with_optimizer,
                        const std::map<std::string, std::string>& metadata) {
  save_checkpoint(path, encoder_state(), features(),
                  with_optimizer ? optimizer_state() : std::vector<NamedTensor>{}, metadata);
}

Safetensors TrainBackend::load(const std::filesystem::path& path, bool with_optimizer) {
  Safetensors file =
      load_checkpoint(path, encoder_state(), features(),
                      with_optimizer ? optimizer_state() : std::vector<NamedTensor>{});
  loaded(with_optimizer);
  return file;
}

std::unique_ptr<TrainBackend> make_train_backend(const std::string& device, const Config& c,
                                                 int max_batch, int max_frames) {
  if (device == "cuda") return make_cuda_train_backend(c, max_batch, max_frames);
  if (device != "cpu") fail("training backend '", device, "': expected cpu or cuda");
  return std::make_unique<CpuTrainBackend>(c, max_batch, max_frames);
}

}  // namespace fsl
