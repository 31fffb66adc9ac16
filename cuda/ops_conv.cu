// conv2d through cuDNN: the plan (descriptors, algorithms, workspace) comes from the context.
#include "fsl/cuda_check.hpp"
#include "fsl/cuda_ops.hpp"

namespace fsl::cuda {

void conv2d_forward(CudaContext& ctx, float* y, const float* x, const float* w, const float* bias,
                    int N, int Cin, int H, int W, int Cout, int k) {
  const ConvPlan& p = ctx.conv_plan(N, Cin, H, W, Cout, k);
  const float one = 1.0f, zero = 0.0f;
  FSL_CUDA_CHECK(cudnnConvolutionForward(ctx.cudnn(), &one, p.x, x, p.w, w, p.conv, p.fwd,
                                         ctx.workspace(), ctx.workspace_bytes(), &zero, p.y, y));
  if (bias) FSL_CUDA_CHECK(cudnnAddTensor(ctx.cudnn(), &one, p.bias, bias, &one, p.y, y));
}

void conv2d_backward(CudaContext& ctx, float* dx, float* dw, float* dbias, const float* dy,
                     const float* x, const float* w, int N, int Cin, int H, int W, int Cout, int k,
                     bool accumulate_dx) {
  const ConvPlan& p = ctx.conv_plan(N, Cin, H, W, Cout, k);
  const float one = 1.0f, zero = 0.0f;
  // beta = 1: parameter gradients accumulate, as the CPU op.
  if (dbias)
    FSL_CUDA_CHECK(cudnnConvolutionBackwardBias(ctx.cudnn(), &one, p.y, dy, &one, p.bias, dbias));
  FSL_CUDA_CHECK(cudnnConvolutionBackwardFilter(ctx.cudnn(), &one, p.x, x, p.y, dy, p.conv,
                                                p.bwd_filter, ctx.workspace(),
                                                ctx.workspace_bytes(), &one, p.w, dw));
  if (dx)
    FSL_CUDA_CHECK(cudnnConvolutionBackwardData(ctx.cudnn(), &one, p.w, w, p.y, dy, p.conv,
                                                p.bwd_data, ctx.workspace(), ctx.workspace_bytes(),
                                                accumulate_dx ? &one : &zero, p.x, dx));
}

}  // namespace fsl::cuda
