#include "fsl/model_infer.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <thread>

#include "fsl/error.hpp"
#include "fsl/op_math.hpp"

namespace fsl {
namespace detail {

// A convolution with its BatchNorm folded in. w: (k*k, Cout, Cin), one (Cout, Cin) matrix per
// kernel offset (ki, kj); b: (Cout).
struct InferConv {
  int cin = 0, cout = 0, k = 0;
  std::vector<float> w, b;
};

struct InferBlock {
  InferConv conv[3], shortcut;
  std::vector<float> sum_bias;  // conv3's folded bias + the shortcut's
};

// x: the block input, p: act1 then the block's sum, q: act2; padded planes at the largest size
// any block needs. last: the final block's pooled maps (64, H', W'), unpadded.
struct InferWorkspace {
  std::vector<float> x, p, q, last;
};

}  // namespace detail

namespace {

using detail::InferConv;

// An (H + 2) x (W + 2) plane with a zero border; interior (h, w) at (h + 1) * (W + 2) + w + 1.
struct Plane {
  int H, W;
  int stride() const { return W + 2; }
  int64_t size() const { return int64_t(H + 2) * (W + 2); }
  int first() const { return stride() + 1; }  // interior (0, 0)
  // Interior (0, 0) .. (H - 1, W - 1) as one flat run: the pad columns between rows included.
  int run() const { return (H - 1) * stride() + W; }
};

// Folds BN slot `s` of block `b` into its convolution (in double, then rounded once).
InferConv fold(const EncoderBlockLayout& b, int s, const float* P, const float* buf, int cin,
               int cout, int k, double eps) {
  InferConv c;
  c.cin = cin, c.cout = cout, c.k = k;
  c.w.resize(size_t(k) * k * cout * cin);
  c.b.resize(cout);
  for (int o = 0; o < cout; ++o) {
    const double scale = double(P[b.bn_w[s] + o]) / std::sqrt(double(buf[b.run_var[s] + o]) + eps);
    const double bias = b.conv_b[s] >= 0 ? double(P[b.conv_b[s] + o]) : 0.0;
    c.b[o] = float(double(P[b.bn_b[s] + o]) + (bias - double(buf[b.run_mean[s] + o])) * scale);
    for (int i = 0; i < cin; ++i)
      for (int t = 0; t < k * k; ++t)  // PyTorch weight (Cout, Cin, k, k) -> (k*k, Cout, Cin)
        c.w[(size_t(t) * cout + o) * cin + i] =
            float(double(P[b.conv_w[s] + (int64_t(o) * cin + i) * k * k + t]) * scale);
  }
  return c;
}

// y (Cout, plane) = conv(x (Cin, plane)) over the interior run, y's pad columns left dirty.
// accumulate: y += instead of y =. Few input channels (the first block): a direct loop; else one
// GEMM per kernel offset, B = x shifted by that offset (the padded planes make every shift a
// plain offset, in range for the interior run).
void conv_run(float* y, const float* x, const InferConv& c, Plane pl, bool accumulate) {
  const int64_t S = pl.size();
  const int n = pl.run(), first = pl.first(), pad = c.k / 2;
  if (c.cin < 8) {
    for (int o = 0; o < c.cout; ++o) {
      float* yo = y + o * S + first;
      if (!accumulate) std::fill(yo, yo + n, 0.f);
      for (int i = 0; i < c.cin; ++i)
        for (int t = 0; t < c.k * c.k; ++t) {
          const float w = c.w[(size_t(t) * c.cout + o) * c.cin + i];
          const float* xs = x + i * S + first + (t / c.k - pad) * pl.stride() + (t % c.k - pad);
          for (int j = 0; j < n; ++j) yo[j] += w * xs[j];
        }
    }
    return;
  }
  for (int t = 0; t < c.k * c.k; ++t) {
    const int shift = (t / c.k - pad) * pl.stride() + (t % c.k - pad);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, c.cout, n, c.cin, 1.f,
                c.w.data() + size_t(t) * c.cout * c.cin, c.cin, x + first + shift, int(S),
                (accumulate || t > 0) ? 1.f : 0.f, y + first, int(S));
  }
}

// y = act(y + bias) on the interior; the border (rows 0, H + 1, columns 0, W + 1) set to zero.
void bias_act_border(float* y, const float* bias, int C, Plane pl, Activation act) {
  const int64_t S = pl.size();
  const int st = pl.stride();
  for (int c = 0; c < C; ++c) {
    float* yc = y + c * S;
    const float b = bias[c];
    std::fill(yc, yc + st, 0.f);
    for (int h = 0; h < pl.H; ++h) {
      float* row = yc + int64_t(h + 1) * st;
      row[0] = 0.f;
      if (act == Activation::leaky_relu)
        for (int w = 1; w <= pl.W; ++w) row[w] = om::leaky_relu(row[w] + b);
      else
        for (int w = 1; w <= pl.W; ++w) row[w] = om::relu(row[w] + b);
      row[pl.W + 1] = 0.f;
    }
    std::fill(yc + int64_t(pl.H + 1) * st, yc + S, 0.f);
  }
}

// maxpool 2x2 (floor) of the interior of x (C, plane) -> y: padded (C, plane / 2) with a zero
// border when `padded`, else unpadded (C, H / 2, W / 2).
void maxpool_plane(float* y, const float* x, int C, Plane pl, bool padded) {
  const Plane out{pl.H / 2, pl.W / 2};
  const int st = pl.stride();
  for (int c = 0; c < C; ++c) {
    const float* xc = x + c * pl.size();
    float* yc = padded ? y + c * out.size() : y + int64_t(c) * out.H * out.W;
    if (padded) std::fill(yc, yc + out.size(), 0.f);
    for (int i = 0; i < out.H; ++i) {
      const float* r0 = xc + int64_t(2 * i + 1) * st + 1;
      const float* r1 = r0 + st;
      float* yr = padded ? yc + int64_t(i + 1) * out.stride() + 1 : yc + int64_t(i) * out.W;
      for (int j = 0; j < out.W; ++j) {
        float m = r0[2 * j];
        if (r0[2 * j + 1] > m) m = r0[2 * j + 1];
        if (r1[2 * j] > m) m = r1[2 * j];
        if (r1[2 * j + 1] > m) m = r1[2 * j + 1];
        yr[j] = m;
      }
    }
  }
}

}  // namespace

EncoderInference::EncoderInference(EncoderT<float>& enc, int threads)
    : enc_(enc),
      fallback_(enc.config().arch != "v1"),
      threads_(std::max(1, threads)),
      n_mels_(enc.config().n_mels),
      max_frames_(enc.max_frames()),
      dim_(enc.dim()),
      pool_h_(enc.layout().pool_h),
      pool_w_(enc.layout().pool_w),
      min_frames_(enc.min_frames()),
      num_blocks_(enc.layout().num_blocks),
      act_(enc.layout().act) {
  if (fallback_) return;
  const double eps = BatchNormParams{}.eps;
  const float* P = enc.params().data();
  const float* buf = enc.running_stats().data();
  int64_t largest = 0;
  int H = max_frames_, W = n_mels_;
  for (int bi = 0; bi < num_blocks_; ++bi) {
    const EncoderBlockLayout& b = enc.layout().blocks[bi];
    detail::InferBlock ib;
    for (int k = 0; k < 3; ++k) ib.conv[k] = fold(b, k, P, buf, k == 0 ? b.cin : b.c, b.c, 3, eps);
    ib.shortcut = fold(b, 3, P, buf, b.cin, b.c, 1, eps);
    ib.sum_bias.resize(b.c);
    for (int o = 0; o < b.c; ++o) ib.sum_bias[o] = ib.conv[2].b[o] + ib.shortcut.b[o];
    largest = std::max(largest, int64_t(std::max(b.cin, b.c)) * Plane{H, W}.size());
    blocks_.push_back(std::move(ib));
    H /= 2;
    W /= 2;
  }
  for (int t = 0; t < threads_; ++t) {
    auto ws = std::make_unique<detail::InferWorkspace>();
    ws->x.assign(largest, 0.f);
    ws->p.assign(largest, 0.f);
    ws->q.assign(largest, 0.f);
    ws->last.assign(size_t(blocks_.back().conv[0].cout) * H * W, 0.f);
    workspaces_.push_back(std::move(ws));
  }
}

EncoderInference::~EncoderInference() = default;

// The blocks over one run of frames: the final maps (C, H', W') land in ws.last (unpadded).
// Returns (H', W').
std::pair<int, int> EncoderInference::run_blocks(const float* x, int frames,
                                                 detail::InferWorkspace& ws) const {
  Plane pl{frames, n_mels_};
  // the window (frames, n_mels) into the first padded plane
  std::fill(ws.x.begin(), ws.x.begin() + pl.size(), 0.f);
  for (int h = 0; h < frames; ++h)
    std::copy(x + int64_t(h) * n_mels_, x + int64_t(h + 1) * n_mels_,
              ws.x.data() + int64_t(h + 1) * pl.stride() + 1);
  for (size_t bi = 0; bi < blocks_.size(); ++bi) {
    const auto& b = blocks_[bi];
    const int C = b.conv[0].cout;
    conv_run(ws.p.data(), ws.x.data(), b.conv[0], pl, false);
    bias_act_border(ws.p.data(), b.conv[0].b.data(), C, pl, act_);
    conv_run(ws.q.data(), ws.p.data(), b.conv[1], pl, false);
    bias_act_border(ws.q.data(), b.conv[1].b.data(), C, pl, act_);
    conv_run(ws.p.data(), ws.x.data(), b.shortcut, pl, false);  // act1 is no longer needed
    conv_run(ws.p.data(), ws.q.data(), b.conv[2], pl, true);
    bias_act_border(ws.p.data(), b.sum_bias.data(), C, pl, act_);
    const bool last = bi + 1 == blocks_.size();
    maxpool_plane(last ? ws.last.data() : ws.x.data(), ws.p.data(), C, pl, !last);
    pl = Plane{pl.H / 2, pl.W / 2};
  }
  return {pl.H, pl.W};
}

size_t EncoderInference::map_floats(int frames) const {
  return fallback_ ? 0 : size_t(map_channels()) * (frames / map_stride()) * map_width();
}

void EncoderInference::pool_rows(const float* maps, int frames, int r0, int rows,
                                 float* emb) const {
  const int C = map_channels(), W = map_width(), H = frames >> num_blocks_;
  if (r0 < 0 || rows < 1 || r0 + rows > H)
    fail("encoder inference: rows ", r0, "..", r0 + rows, " outside the ", H, " map rows");
  for (int c = 0; c < C; ++c) {
    const float* mc = maps + (int64_t(c) * H + r0) * W;
    for (int i = 0; i < pool_h_; ++i) {
      const int h0 = om::adaptive_bin_start(i, rows, pool_h_),
                h1 = om::adaptive_bin_end(i, rows, pool_h_);
      for (int j = 0; j < pool_w_; ++j) {
        const int w0 = om::adaptive_bin_start(j, W, pool_w_),
                  w1 = om::adaptive_bin_end(j, W, pool_w_);
        float s = 0;
        for (int h = h0; h < h1; ++h)
          for (int w = w0; w < w1; ++w) s += mc[h * W + w];
        emb[(c * pool_h_ + i) * pool_w_ + j] = s / float((h1 - h0) * (w1 - w0));
      }
    }
  }
}

void EncoderInference::forward(const float* x, int B, int frames, float* emb) {
  run(x, B, frames, emb, nullptr);
}

void EncoderInference::maps(const float* x, int B, int frames, float* out) {
  if (fallback_) fail("encoder inference: shared maps need a v1 encoder (this one is v2)");
  run(x, B, frames, nullptr, out);
}

void EncoderInference::run(const float* x, int B, int frames, float* emb, float* maps_out) {
  if (B < 1) fail("encoder inference: batch of ", B, " windows");
  if (frames < min_frames_ || frames > max_frames_)
    fail("encoder inference: ", frames, " frames outside ", min_frames_, "..", max_frames_);
  if (fallback_) {
    for (int b0 = 0; b0 < B; b0 += enc_.max_batch()) {
      const int nb = std::min(enc_.max_batch(), B - b0);
      enc_.forward(x + size_t(b0) * frames * n_mels_, nb, frames, false, emb + size_t(b0) * dim_);
    }
    return;
  }
  const int blas_threads = openblas_get_num_threads();
  openblas_set_num_threads(1);
  const int T = std::min(threads_, B);
  auto work = [&](int t) {
    auto& ws = *workspaces_[t];
    for (int i = B * t / T; i < B * (t + 1) / T; ++i) {
      const auto [H, W] = run_blocks(x + size_t(i) * frames * n_mels_, frames, ws);
      if (maps_out)
        std::copy(ws.last.begin(), ws.last.begin() + int64_t(map_channels()) * H * W,
                  maps_out + size_t(i) * map_channels() * H * W);
      else
        adaptive_avgpool2d_forward(emb + size_t(i) * dim_, ws.last.data(), map_channels(), H, W,
                                   pool_h_, pool_w_);
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < T; ++t) pool.emplace_back(work, t);
  work(0);
  for (auto& th : pool) th.join();
  openblas_set_num_threads(blas_threads);
}

}  // namespace fsl
