// The trainer's backend seam on the CPU: the CPU backend is exactly the hand-written step
// (encoder, loss, backward, Adam), its checkpoints resume exactly, and runtime.device picks the
// backend (cuda without a device: one clear line; auto without a device: the CPU, and it trains).
#include <gtest/gtest.h>

#include <random>
#include <sstream>

#include "fsl/cuda_frontend.hpp"
#include "fsl/error.hpp"
#include "fsl/fileio.hpp"
#include "fsl/loss.hpp"
#include "fsl/model.hpp"
#include "fsl/optim.hpp"
#include "fsl/safetensors.hpp"
#include "fsl/train_backend.hpp"
#include "testutil.hpp"

namespace {

using fsl::test::bin_path;
using fsl::test::run_command;

std::string tiny_yaml() { return fsl::test::data_path("../../conf/tiny.yaml").string(); }

// The tiny preset's episode: k_way 3, n_shot 2, paired negatives -> 6 labels x 4 segments = 24.
fsl::Config tiny_config() { return fsl::Config::load(tiny_yaml(), {"runtime.device=cpu"}); }
constexpr int kFrames = 17;

struct Episode {
  std::vector<float> x;  // (B, kFrames, n_mels)
  std::vector<int> labels;
};
Episode random_episode(const fsl::Config& c, unsigned seed) {
  const int labels = 2 * c.train_param.k_way, per_label = 2 * c.train_param.n_shot;
  Episode e;
  for (int i = 0; i < labels * per_label; ++i) e.labels.push_back(i % labels);
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  e.x.resize(e.labels.size() * kFrames * c.features.n_mels);
  for (auto& v : e.x) v = d(rng);
  return e;
}

TEST(TrainBackend, CpuStepIsEncoderLossBackwardAdam) {
  const fsl::Config c = tiny_config();
  const Episode e = random_episode(c, 1);
  const int B = static_cast<int>(e.labels.size());
  auto backend = fsl::make_train_backend("cpu", c, B, kFrames);
  EXPECT_STREQ(backend->device(), "cpu");
  backend->set_dropout_seed(5);
  // The reference, written out: the steps src/train.cpp ran before the seam.
  fsl::Encoder enc(c.features, B, kFrames, static_cast<uint64_t>(c.train_param.seed));
  fsl::Adam adam(enc.params().size(), fsl::AdamParams{static_cast<float>(c.train_param.lr_rate)});
  enc.set_dropout_seed(5);
  std::vector<float> emb(size_t(B) * enc.dim()), demb(emb.size());
  for (int step = 0; step < 3; ++step) {
    const fsl::LossResult got = backend->train_step(e.x.data(), e.labels, kFrames);
    enc.zero_grad();
    enc.forward(e.x.data(), B, kFrames, true, emb.data());
    const fsl::LossResult want = fsl::prototypical_loss_filter_negative(
        emb.data(), e.labels.data(), B, enc.dim(), c.train_param.n_shot, demb.data());
    enc.backward(demb.data());
    adam.step(enc.params(), enc.grads());
    EXPECT_EQ(got.loss, want.loss) << "step " << step;
    EXPECT_EQ(got.accuracy, want.accuracy) << "step " << step;
  }
  EXPECT_EQ(backend->params(), std::vector<float>(enc.params().begin(), enc.params().end()));
  // Evaluation: running statistics, no dropout, no update.
  const auto before = backend->params();
  enc.forward(e.x.data(), B, kFrames, false, emb.data());
  EXPECT_EQ(backend->embed(e.x.data(), B, kFrames), emb);
  const auto ev = backend->eval_step(e.x.data(), e.labels, kFrames);
  EXPECT_EQ(ev.loss, fsl::prototypical_loss_filter_negative(emb.data(), e.labels.data(), B,
                                                            enc.dim(), c.train_param.n_shot,
                                                            static_cast<float*>(nullptr))
                         .loss);
  EXPECT_EQ(backend->params(), before);
}

TEST(TrainBackend, CheckpointWithOptimizerResumesExactly) {
  const fsl::Config c = tiny_config();
  const Episode e1 = random_episode(c, 2), e2 = random_episode(c, 3);
  const int B = static_cast<int>(e1.labels.size());
  fsl::test::TempDir dir;
  auto a = fsl::make_train_backend("cpu", c, B, kFrames);
  a->train_step(e1.x.data(), e1.labels, kFrames);
  a->save(dir / "ck.safetensors", true, {{"epoch", "0"}});
  // A backend with other initial weights picks up weights, BN statistics and Adam state.
  fsl::Config other = c;
  other.train_param.seed += 1;
  auto b = fsl::make_train_backend("cpu", other, B, kFrames);
  ASSERT_NE(a->params(), b->params());
  auto file = b->load(dir / "ck.safetensors", true);
  EXPECT_EQ(file.metadata.at("epoch"), "0");
  EXPECT_EQ(file.metadata.at("fsl.arch"), "v1");
  EXPECT_EQ(a->params(), b->params());
  a->set_dropout_seed(9);
  b->set_dropout_seed(9);
  EXPECT_EQ(a->train_step(e2.x.data(), e2.labels, kFrames).loss,
            b->train_step(e2.x.data(), e2.labels, kFrames).loss);
  EXPECT_EQ(a->params(), b->params());  // the Adam moments and step came along
  // Without the optimizer the file has no Adam state, and asking for it names the file.
  a->save(dir / "weights.safetensors", false, {});
  EXPECT_EQ(fsl::read_safetensors(dir / "weights.safetensors").tensors.count("optimizer.step"), 0u);
  try {
    b->load(dir / "weights.safetensors", true);
    ADD_FAILURE() << "loaded an optimizer state that is not there";
  } catch (const fsl::Error& err) {
    EXPECT_NE(std::string(err.what()).find("weights.safetensors"), std::string::npos) << err.what();
  }
}

TEST(TrainBackend, DeviceFollowsRuntimeDeviceAndStage) {
  using fsl::Stage;
  fsl::RuntimeConfig r;
  const bool gpu = fsl::cuda_device_available();
  for (Stage s : {Stage::features, Stage::training, Stage::detection}) {
    r.device = "cpu";
    EXPECT_EQ(fsl::resolve_device(r, s), "cpu");
    // auto: the GPU only for the front end; training and detection use it only when asked.
    r.device = "auto";
    EXPECT_EQ(fsl::resolve_device(r, s), gpu && s == Stage::features ? "cuda" : "cpu");
    r.device = "cuda";
    if (gpu) {
      EXPECT_EQ(fsl::resolve_device(r, s), "cuda");
      continue;
    }
    try {
      fsl::resolve_device(r, s);
      ADD_FAILURE() << "runtime.device=cuda accepted without a device";
    } catch (const fsl::Error& err) {
      const std::string what = err.what();
      EXPECT_EQ(what.rfind("runtime.device=cuda: ", 0), 0u) << what;
      EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    }
  }
  EXPECT_THROW(fsl::make_train_backend("tpu", tiny_config(), 24, kFrames), fsl::Error);
}

// fsl_train itself: the device in the start line, the error for cuda without a device.
class TrainDevice : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fsl::test::TempDir;
    std::string out;
    ASSERT_EQ(run_command(bin_path("fsl_synth").string() + " --out " +
                              (dir_->path / "synth").string() + " --scale tiny --seed 3",
                          &out),
              0)
        << out;
    ASSERT_EQ(run_command(bin_path("fsl_features").string() + " export " + tiny_yaml() + " " +
                              paths() + " runtime.device=cpu",
                          &out),
              0)
        << out;
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string paths() {
    const auto d = dir_->path / "synth";
    return "path.train_dir=" + (d / "Training_Set").string() +
           " path.eval_dir=" + (d / "Validation_Set").string() +
           " path.work_dir=" + (dir_->path / "runs").string();
  }
  static int train(const std::string& extra, std::string* out) {
    return run_command(bin_path("fsl_train").string() + " " + tiny_yaml() + " " + paths() +
                           " train_param.num_episodes=2 train_param.val_episodes=1"
                           " train_param.max_epochs=1 " +
                           extra,
                       out);
  }
  static fsl::test::TempDir* dir_;
};
fsl::test::TempDir* TrainDevice::dir_ = nullptr;

TEST_F(TrainDevice, CudaWithoutDeviceIsOneClearLine) {
  if (fsl::cuda_device_available()) GTEST_SKIP() << "a CUDA device is present";
  std::string out;
  EXPECT_EQ(train("exp_name=nocuda runtime.device=cuda", &out), 1) << out;
  EXPECT_EQ(out.rfind("fsl_train: error: runtime.device=cuda: ", 0), 0u) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  EXPECT_FALSE(fsl::fs::exists(dir_->path / "runs" / "nocuda")) << "nothing written";
}

TEST_F(TrainDevice, AutoTrainsOnTheCpuAndSaysSo) {
  std::string out;
  ASSERT_EQ(train("exp_name=auto runtime.device=auto", &out), 0) << out;
  EXPECT_NE(out.find(" parameters on cpu "), std::string::npos) << out;
  EXPECT_TRUE(fsl::fs::exists(dir_->path / "runs" / "auto" / "last.safetensors"));
  ASSERT_EQ(train("exp_name=cpu runtime.device=cpu", &out), 0) << out;
  EXPECT_NE(out.find(" parameters on cpu "), std::string::npos) << out;
}

}  // namespace
