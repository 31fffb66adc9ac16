// The op table: every op of include/fsl/ops.hpp, the prototypical losses (fsl/loss.hpp) and the
// Adam step (fsl/optim.hpp), each as a case builder with its CPU and CUDA calls written once;
// op_cases() lists the shapes. A new shape is one line of op_cases(), a new op one builder and
// its lines. The segment gather reads files through a FeatureStore rather than tensors: it keeps
// its own test (GpuOps.SegmentGatherEqualsCpu). Shapes are odd on purpose; the small ones come
// from the finite-difference checks, the larger ones exercise the CUDA kernels' tiling.
#pragma once
#include <vector>

#include "fsl/loss.hpp"
#include "fsl/ops.hpp"
#include "fsl/optim.hpp"
#include "op_table.hpp"

#ifdef FSL_HAVE_CUDA
#include "fsl/cuda_ops.hpp"
#endif

namespace fsl::test::cases {

inline OpCase conv2d(int N, int Cin, int H, int W, int Cout, int k, bool bias, bool accumulate_dx) {
  const size_t nx = size_t(N) * Cin * H * W, ny = size_t(N) * Cout * H * W;
  OpCase c{
      .op = "conv2d",
      .name = cat("conv2d_k", k, bias ? "_bias" : "", accumulate_dx ? "_accdx_" : "_", N, "x", Cin,
                  "x", H, "x", W, "_to_", Cout),
      .tensors = {in("x", nx, normal(1)).grad(accumulate_dx),
                  in("w", size_t(Cout) * Cin * k * k, normal(2, 0.3)).grad(true), out("y", ny)}};
  if (bias) c.tensors.push_back(in("b", Cout, normal(3)).grad(true));
  c.forward = cpu([=](auto& t) {
    std::vector<scalar_of<decltype(t)>> col(conv2d_col_size(Cin, H, W, k));
    conv2d_forward(t["y"], t["x"], t["w"], bias ? t["b"] : nullptr, N, Cin, H, W, Cout, k,
                   col.data());
  });
  c.backward = cpu([=](auto& t) {
    std::vector<scalar_of<decltype(t)>> col(conv2d_col_size(Cin, H, W, k));
    conv2d_backward(t["dx"], t["dw"], bias ? t["db"] : nullptr, t["dy"], t["x"], t["w"], N, Cin, H,
                    W, Cout, k, col.data(), accumulate_dx);
  });
#ifdef FSL_HAVE_CUDA
  c.cuda_forward = [=](DeviceTensors& t) {
    cuda::conv2d_forward(t.ctx, t["y"], t["x"], t["w"], bias ? t["b"] : nullptr, N, Cin, H, W, Cout,
                         k);
  };
  c.cuda_backward = [=](DeviceTensors& t) {
    cuda::conv2d_backward(t.ctx, t["dx"], t["dw"], bias ? t["db"] : nullptr, t["dy"], t["x"],
                          t["w"], N, Cin, H, W, Cout, k, accumulate_dx);
  };
#endif
  return c;
}

// x has a mean far from 0, as after a conv; running statistics start away from (0, 1).
inline OpCase batchnorm2d(int N, int C, int HW, bool training) {
  const size_t n = size_t(N) * C * HW;
  OpCase c{.op = "batchnorm2d",
           .name = cat("batchnorm2d_", training ? "training_" : "eval_", N, "x", C, "x", HW),
           .tensors = {in("x", n, normal(11, 2.0, 3.0)).grad(false),
                       in("gamma", C, normal(12)).grad(true), in("beta", C, normal(13)).grad(true),
                       state("running_mean", C, normal(15), 1e-6),
                       state("running_var", C, uniform(16, 0.5, 3.0), 1e-6), out("y", n),
                       saved("mean", C, 1e-6), saved("invstd", C, 1e-6)}};
  c.forward = cpu([=](auto& t) {
    batchnorm2d_forward(t["y"], t["mean"], t["invstd"], t["x"], t["gamma"], t["beta"],
                        t["running_mean"], t["running_var"], N, C, HW, training);
  });
  c.backward = cpu([=](auto& t) {
    batchnorm2d_backward(t["dx"], t["dgamma"], t["dbeta"], t["dy"], t["x"], t["gamma"], t["mean"],
                         t["invstd"], N, C, HW, training);
  });
#ifdef FSL_HAVE_CUDA
  c.cuda_forward = [=](DeviceTensors& t) {
    cuda::batchnorm2d_forward(t.ctx, t["y"], t["mean"], t["invstd"], t["x"], t["gamma"], t["beta"],
                              t["running_mean"], t["running_var"], N, C, HW, training);
  };
  c.cuda_backward = [=](DeviceTensors& t) {
    cuda::batchnorm2d_backward(t.ctx, t["dx"], t["dgamma"], t["dbeta"], t["dy"], t["x"], t["gamma"],
                               t["mean"], t["invstd"], N, C, HW, training);
  };
#endif
  return c;
}

inline OpCase activation(int64_t n, Activation act) {
  OpCase c{.op = "activation",
           .name = cat(act == Activation::relu ? "relu_" : "leaky_relu_", n),
           .tensors = {in("x", n, normal(21)).grad(false, kExact), out("y", n, kExact)}};
  c.forward = cpu([=](auto& t) { activation_forward(t["y"], t["x"], n, act); });
  c.backward = cpu([=](auto& t) { activation_backward(t["dx"], t["dy"], t["y"], n, act); });
#ifdef FSL_HAVE_CUDA
  c.cuda_forward = [=](DeviceTensors& t) {
    cuda::activation_forward(t.ctx, t["y"], t["x"], n, act);
  };
  c.cuda_backward = [=](DeviceTensors& t) {
    cuda::activation_backward(t.ctx, t["dx"], t["dy"], t["y"], n, act);
  };
#endif
  return c;
}

inline OpCase maxpool2d(int NC, int H, int W) {
  OpCase c{.op = "maxpool2d",
           .name = cat("maxpool2d_", NC, "x", H, "x", W),
           .tensors = {in("x", size_t(NC) * H * W, normal(31)).grad(false, kExact),
                       out("y", size_t(NC) * (H / 2) * (W / 2), kExact)}};
  c.forward = cpu([=](auto& t) { maxpool2d_forward(t["y"], t["x"], NC, H, W); });
  c.backward = cpu([=](auto& t) { maxpool2d_backward(t["dx"], t["dy"], t["x"], NC, H, W); });
#ifdef FSL_HAVE_CUDA
  c.cuda_forward = [=](DeviceTensors& t) {
    cuda::maxpool2d_forward(t.ctx, t["y"], t["x"], NC, H, W);
  };
  c.cuda_backward = [=](DeviceTensors& t) {
    cuda::maxpool2d_backward(t.ctx, t["dx"], t["dy"], t["x"], NC, H, W);
  };
#endif
  return c;
}

inline OpCase dropout(int64_t n, float p, uint64_t seed, bool training) {
  OpCase c{.op = "dropout",
           .name = cat("dropout_", training ? "training_" : "eval_", n, "_seed", seed),
           .tensors = {in("x", n, normal(41)).grad(false, kExact), out("y", n, kExact),
                       saved("mask", n, kExact)}};
  c.forward =
      cpu([=](auto& t) { dropout_forward(t["y"], t["mask"], t["x"], n, p, seed, training); });
  c.backward = cpu([=](auto& t) { dropout_backward(t["dx"], t["dy"], t["mask"], n); });
#ifdef FSL_HAVE_CUDA
  c.cuda_forward = [=](DeviceTensors& t) {
    cuda::dropout_forward(t.ctx, t["y"], t["mask"], t["x"], n, p, seed, training);
  };
  c.cuda_backward = [=](DeviceTensors& t) {
    cuda::dropout_backward(t.ctx, t["dx"], t["dy"], t["mask"], n);
  };
#endif
  return c;
}

// No add_backward: both inputs receive dy unchanged.
inline OpCase add(int64_t n) {
  OpCase c{.op = "add",
           .name = cat("add_", n),
           .tensors = {in("a", n, normal(51)), in("b", n, normal(52)), out("y", n, kExact)}};
  c.forward = cpu([=](auto& t) { add_forward(t["y"], t["a"], t["b"], n); });
#ifdef FSL_HAVE_CUDA
  c.cuda_forward = [=](DeviceTensors& t) { cuda::add_forward(t.ctx, t["y"], t["a"], t["b"], n); };
#endif
  return c;
}

inline OpCase adaptive_avgpool2d(int NC, int H, int W, int Ho, int Wo) {
  OpCase c{.op = "adaptive_avgpool2d",
           .name = cat("adaptive_avgpool2d_", NC, "x", H, "x", W, "_to_", Ho, "x", Wo),
           .tensors = {in("x", size_t(NC) * H * W, normal(33)).grad(false, 1e-6),
                       out("y", size_t(NC) * Ho * Wo, 1e-6)}};
  c.forward = cpu([=](auto& t) { adaptive_avgpool2d_forward(t["y"], t["x"], NC, H, W, Ho, Wo); });
  c.backward =
      cpu([=](auto& t) { adaptive_avgpool2d_backward(t["dx"], t["dy"], NC, H, W, Ho, Wo); });
#ifdef FSL_HAVE_CUDA
  c.cuda_forward = [=](DeviceTensors& t) {
    cuda::adaptive_avgpool2d_forward(t.ctx, t["y"], t["x"], NC, H, W, Ho, Wo);
  };
  c.cuda_backward = [=](DeviceTensors& t) {
    cuda::adaptive_avgpool2d_backward(t.ctx, t["dx"], t["dy"], NC, H, W, Ho, Wo);
  };
#endif
  return c;
}

inline OpCase channel_attention(int N, int C, int Cr, int HW) {
  const size_t n = size_t(N) * C * HW, nc = size_t(N) * C, nr = size_t(N) * Cr;
  OpCase c{
      .op = "channel_attention",
      .name = cat("channel_attention_", N, "x", C, "x", HW, "_r", Cr),
      .tensors = {in("x", n, normal(81)).grad(false), in("w1", Cr * C, normal(82, 0.3)).grad(true),
                  in("w2", C * Cr, normal(83, 0.3)).grad(true), out("y", n),
                  saved("avg", nc, kGpuTol), saved("mx", nc, kExact),
                  saved("argmax", nc, kExact, DType::i32), saved("h_avg", nr, kGpuTol),
                  saved("h_max", nr, kGpuTol), saved("att", nc, kGpuTol)}};
  auto saved_of = [](auto& t) {
    return ChannelAttentionSaved<std::remove_pointer_t<decltype(t["x"])>>{
        t["avg"], t["mx"], t.i32("argmax"), t["h_avg"], t["h_max"], t["att"]};
  };
  c.forward = cpu([=](auto& t) {
    channel_attention_forward(t["y"], saved_of(t), t["x"], t["w1"], t["w2"], N, C, Cr, HW);
  });
  c.backward = cpu([=](auto& t) {
    channel_attention_backward(t["dx"], t["dw1"], t["dw2"], t["dy"], saved_of(t), t["x"], t["w1"],
                               t["w2"], N, C, Cr, HW);
  });
#ifdef FSL_HAVE_CUDA
  c.cuda_forward = [=](DeviceTensors& t) {
    cuda::channel_attention_forward(t.ctx, t["y"], saved_of(t), t["x"], t["w1"], t["w2"], N, C, Cr,
                                    HW);
  };
  c.cuda_backward = [=](DeviceTensors& t) {
    DeviceBuffer<float> scratch(cuda::channel_attention_scratch_size(N, C, Cr));
    cuda::channel_attention_backward(t.ctx, t["dx"], t["dw1"], t["dw2"], t["dy"], saved_of(t),
                                     t["x"], t["w1"], t["w2"], N, C, Cr, HW, scratch.get());
    t.ctx.synchronize();  // scratch is freed on return
  };
#endif
  return c;
}

// The loss and its accuracy are outputs of one element; the loss's upstream gradient is 1 (the
// ops return d loss / d emb), the accuracy is not differentiated.
inline OpCase prototypical_loss(const std::vector<int>& labels, int D, int n_shot,
                                bool filter_negative, const char* episode) {
  const int B = int(labels.size());
  OpCase c{
      .op = filter_negative ? "prototypical_loss_filter_negative" : "prototypical_loss",
      .name = cat(filter_negative ? "prototypical_loss_filter_negative_" : "prototypical_loss_",
                  episode, "_", B, "x", D),
      .tensors = {in("emb", size_t(B) * D, normal(61, 0.5)).grad(false),
                  out("loss", 1, 1e-6, Dy::one), out("accuracy", 1, kExact, Dy::none)}};
  auto run = [=](auto& t, auto* demb) {
    using T = scalar_of<decltype(t)>;
    const LossResult r =
        filter_negative
            ? prototypical_loss_filter_negative(t["emb"], labels.data(), B, D, n_shot, demb)
            : fsl::prototypical_loss(t["emb"], labels.data(), B, D, n_shot, demb);
    t["loss"][0] = T(r.loss), t["accuracy"][0] = T(r.accuracy);
  };
  c.forward = cpu([=](auto& t) { run(t, (scalar_of<decltype(t)>*)nullptr); });
  c.backward = cpu([=](auto& t) { run(t, t["demb"]); });
#ifdef FSL_HAVE_CUDA
  auto run_cuda = [=](DeviceTensors& t, float* demb) {
    cuda::CudaProtoLoss loss(B, D);
    const LossResult r =
        loss.compute(t.ctx, t["emb"], labels.data(), B, n_shot, filter_negative, demb);
    t.put("loss", {float(r.loss)});
    t.put("accuracy", {float(r.accuracy)});
  };
  c.cuda_forward = [=](DeviceTensors& t) { run_cuda(t, nullptr); };
  c.cuda_backward = [=](DeviceTensors& t) { run_cuda(t, t["demb"]); };
#endif
  return c;
}

// As the sampler makes an episode: k classes x 2 n_shot positives (even labels), then their
// negatives (odd labels).
inline std::vector<int> sampler_episode(int k, int n_shot) {
  const int B = 2 * k * 2 * n_shot;
  std::vector<int> labels(B);
  for (int i = 0; i < B; ++i) labels[i] = (i % (B / 2)) / (2 * n_shot) * 2 + (i >= B / 2);
  return labels;
}
// Six labels interleaved, five samples each: supports are not the first rows.
inline std::vector<int> shuffled_episode() {
  std::vector<int> labels;
  for (int rep = 0; rep < 5; ++rep)
    for (int c : {4, 1, 0, 5, 2, 3}) labels.push_back(c);
  return labels;
}

// `steps` Adam steps from zero moments, each with its own gradient (a slice of g).
inline OpCase adam_step(int64_t n, int steps) {
  const AdamParams a{2e-3f, 0.9f, 0.999f, 1e-8f};
  OpCase c{.op = "adam_step",
           .name = cat("adam_step_", n, "_steps", steps),
           .tensors = {in("g", size_t(n) * steps, normal(62)), state("p", n, normal(61), 1e-6),
                       state("m", n, constant(0), 1e-6), state("v", n, constant(0), 1e-6)},
           .no_double =
               "adam_step_cpu is float only; om::adam_update is checked against the "
               "formula in OpMath.AdamElementMatchesFormula"};
  c.forward = cpu([=](HostTensors<float>& t) {
    for (int s = 1; s <= steps; ++s)
      adam_step_cpu(t["p"], t["g"] + (s - 1) * n, t["m"], t["v"], n, s, a);
  });
#ifdef FSL_HAVE_CUDA
  c.cuda_forward = [=](DeviceTensors& t) {
    for (int s = 1; s <= steps; ++s)
      cuda::adam_step(t.ctx, t["p"], t["g"] + (s - 1) * n, t["m"], t["v"], n, s, a);
  };
#endif
  return c;
}

}  // namespace fsl::test::cases

namespace fsl::test {

// The table. A CUDA-less case sets no_cuda with its reason (none does today).
inline std::vector<OpCase> op_cases() {
  using namespace cases;
  const Activation leaky = Activation::leaky_relu, relu = Activation::relu;
  return {
      conv2d(2, 3, 5, 7, 4, 3, true, false),
      conv2d(2, 3, 5, 7, 4, 3, true, true),
      conv2d(3, 5, 3, 4, 2, 1, false, false),
      conv2d(3, 5, 7, 9, 4, 3, true, false),
      conv2d(3, 5, 7, 9, 4, 3, true, true),
      conv2d(2, 1, 17, 16, 6, 3, false, false),
      conv2d(2, 1, 17, 16, 6, 3, false, true),
      conv2d(3, 6, 5, 8, 7, 1, false, false),
      conv2d(3, 6, 5, 8, 7, 1, false, true),
      conv2d(2, 64, 9, 32, 128, 3, false, false),
      conv2d(2, 64, 9, 32, 128, 3, false, true),
      batchnorm2d(3, 2, 15, true),
      batchnorm2d(2, 3, 7, false),
      // one slice per channel (M = N HW = 185), ten (21760) and the training step's most
      // (200 x 17 x 128 = 435200): the slice merge of cuda/ops_norm.cu
      batchnorm2d(5, 6, 37, true),
      batchnorm2d(5, 6, 37, false),
      batchnorm2d(40, 3, 17 * 32, true),
      batchnorm2d(40, 3, 17 * 32, false),
      batchnorm2d(200, 2, 17 * 128, true),
      batchnorm2d(200, 2, 17 * 128, false),
      activation(37, leaky),
      activation(37, relu),
      activation(10007, leaky),
      activation(10007, relu),
      maxpool2d(3, 5, 7),
      maxpool2d(6, 7, 9),
      maxpool2d(4, 17, 16),
      dropout(50, 0.25f, 99, true),
      dropout(10007, 0.1f, 12345, true),
      dropout(10007, 0.1f, 12345, false),
      add(10007),
      // (2, 16) -> (4, 8) upsamples time (the encoder's case); others overlap bins
      adaptive_avgpool2d(2, 2, 3, 4, 8),
      adaptive_avgpool2d(2, 7, 9, 3, 4),
      adaptive_avgpool2d(2, 5, 16, 4, 8),
      adaptive_avgpool2d(5, 2, 16, 4, 8),
      adaptive_avgpool2d(3, 5, 7, 3, 2),
      channel_attention(2, 32, 2, 15),
      channel_attention(3, 32, 2, 300),
      prototypical_loss(sampler_episode(4, 3), 96, 3, false, "sampler"),
      prototypical_loss(sampler_episode(4, 3), 96, 3, true, "sampler"),
      prototypical_loss(shuffled_episode(), 7, 2, false, "shuffled"),
      prototypical_loss(shuffled_episode(), 7, 2, true, "shuffled"),
      adam_step(5003, 3),
  };
}

}  // namespace fsl::test
