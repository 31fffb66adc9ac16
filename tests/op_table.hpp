// The machinery of the op table (tests/op_cases.hpp), after ggml's test-backend-ops: one list of
// cases that every backend runs. A case names its tensors and how to fill them, and gives the op's
// calls once per backend: a CPU body generic over the scalar (float and double) and a CUDA body
// over device pointers. test_grad_ops runs the CPU in double against central differences and
// float against double; gpu_ops runs CUDA against the CPU in float. Because both read the same
// list, a case cannot exist on one backend only: a case without a CUDA body must say why
// (no_cuda), and OpTable.EveryCaseRunsOnEveryBackend checks that.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <ostream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#ifdef FSL_HAVE_CUDA
#include "fsl/cuda_context.hpp"
#endif
#include "gradcheck.hpp"

namespace fsl::test {

constexpr double kGpuTol = 1e-4;  // CUDA vs CPU, relative Frobenius, fp32 with TF32 off
constexpr double kExact = 0;      // a tolerance of 0: compared with ==

enum class Role {
  input,   // filled before forward, only read
  state,   // filled before forward and updated by it (running statistics, Adam moments)
  output,  // written by forward; its gradient d<name> is filled before backward
  saved,   // written by forward for backward (batch statistics, masks, argmax)
  grad,    // d<input>: filled before backward (garbage, or a sum to accumulate onto)
  seed,    // d<output>: the upstream gradient, read by backward
};
enum class DType { f, i32 };          // f: the backend's scalar
enum class Dy { random, one, none };  // what an output's upstream gradient is (none: not scored)

using Fill = std::function<std::vector<double>(size_t n)>;

inline Fill normal(uint64_t seed, double sd = 1.0, double offset = 0.0) {
  return [=](size_t n) {
    std::vector<double> v = randn(n, seed, sd);
    for (auto& x : v) x += offset;
    return v;
  };
}
inline Fill uniform(uint64_t seed, double lo, double hi) {
  return [=](size_t n) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> d(lo, hi);
    std::vector<double> v(n);
    for (auto& x : v) x = d(rng);
    return v;
  };
}
inline Fill constant(double c) {
  return [=](size_t n) { return std::vector<double>(n, c); };
}

struct TensorSpec {
  std::string name{};
  size_t n = 0;
  Role role = Role::input;
  DType dtype = DType::f;
  Fill fill = constant(0);  // everything starts filled, so every backend starts identical
  double tol = kGpuTol;     // CUDA vs CPU after the pass that writes it; kExact: ==
  // inputs: whether backward writes d<name>, and whether it adds to it (parameter gradients)
  bool has_grad = false, accumulates = false;
  double grad_tol = kGpuTol;
  Dy dy = Dy::random;  // outputs

  TensorSpec grad(bool accumulate, double tolerance = kGpuTol) const {
    TensorSpec s = *this;
    s.has_grad = true, s.accumulates = accumulate, s.grad_tol = tolerance;
    return s;
  }
};

inline TensorSpec in(std::string name, size_t n, Fill fill) {
  return {.name = std::move(name), .n = n, .role = Role::input, .fill = std::move(fill)};
}
inline TensorSpec state(std::string name, size_t n, Fill fill, double tol) {
  return {
      .name = std::move(name), .n = n, .role = Role::state, .fill = std::move(fill), .tol = tol};
}
inline TensorSpec out(std::string name, size_t n, double tol = kGpuTol, Dy dy = Dy::random) {
  return {.name = std::move(name), .n = n, .role = Role::output, .tol = tol, .dy = dy};
}
inline TensorSpec saved(std::string name, size_t n, double tol, DType dtype = DType::f) {
  return {.name = std::move(name), .n = n, .role = Role::saved, .dtype = dtype, .tol = tol};
}

// A backend's tensors by name, on the host. The CPU bodies index it: t["x"] is a T*.
template <typename T>
struct HostTensors {
  using Scalar = T;
  std::map<std::string, std::vector<T>> f;
  std::map<std::string, std::vector<int32_t>> i32s;

  T* operator[](const std::string& name) { return at(f, name).data(); }
  int32_t* i32(const std::string& name) { return at(i32s, name).data(); }

  template <typename M>
  static auto& at(M& m, const std::string& name) {
    auto it = m.find(name);
    if (it == m.end()) throw std::out_of_range("op table: the case has no tensor '" + name + "'");
    return it->second;
  }
};
template <typename S>
using scalar_of = typename std::remove_reference_t<S>::Scalar;

#ifdef FSL_HAVE_CUDA
// The same tensors on the device; the CUDA bodies index it: t["x"] is a device float*.
struct DeviceTensors {
  CudaContext& ctx;
  std::map<std::string, DeviceBuffer<float>> f;
  std::map<std::string, DeviceBuffer<int32_t>> i32s;

  DeviceTensors(CudaContext& c, const HostTensors<float>& h) : ctx(c) {
    for (const auto& [name, v] : h.f) f.emplace(name, DeviceBuffer<float>(v));
    for (const auto& [name, v] : h.i32s) i32s.emplace(name, DeviceBuffer<int32_t>(v));
  }
  float* operator[](const std::string& name) { return HostTensors<float>::at(f, name).get(); }
  int32_t* i32(const std::string& name) { return HostTensors<float>::at(i32s, name).get(); }
  // A result the op returns on the host (a loss value) stored as a tensor, to compare as one.
  void put(const std::string& name, const std::vector<float>& v) {
    HostTensors<float>::at(f, name).upload(v);
  }
  HostTensors<float> download() {
    ctx.synchronize();
    HostTensors<float> h;
    for (const auto& [name, d] : f) h.f[name] = d.download();
    for (const auto& [name, d] : i32s) h.i32s[name] = d.download();
    return h;
  }
};
#else
struct DeviceTensors;  // no CUDA: the CUDA bodies stay empty
#endif

template <typename S>
using Body = std::function<void(S&)>;

// A CPU body for both scalars. A body written for HostTensors<float> only (an op that has no
// double version) leaves `d` empty; the case must then say why in no_double.
struct CpuBody {
  Body<HostTensors<float>> f;
  Body<HostTensors<double>> d;
  explicit operator bool() const { return bool(f); }
};
template <typename F>
CpuBody cpu(F body) {
  CpuBody b;
  b.f = body;
  if constexpr (std::is_invocable_v<F&, HostTensors<double>&>) b.d = body;
  return b;
}

struct OpCase {
  std::string op{};    // the op it exercises, as OpTable.CoversEveryOp lists them
  std::string name{};  // unique; letters, digits and '_' (a GoogleTest parameter name)
  std::vector<TensorSpec> tensors{};
  CpuBody forward{}, backward{};  // backward empty: the op has none (add, adam_step)
  Body<DeviceTensors> cuda_forward{}, cuda_backward{};
  std::string no_double{};  // why the CPU op has no double version (empty: it has one)
  std::string no_cuda{};    // why the CUDA backend does not run it (empty: it does)
};

// GoogleTest prints a failing case by its name.
inline void PrintTo(const OpCase& c, std::ostream* os) { *os << c.name; }

template <typename... A>
std::string cat(const A&... a) {
  std::ostringstream s;
  (s << ... << a);
  return s.str();
}

// The case's tensors plus the ones backward uses: d<input> for each input with a gradient and
// d<output> for each scored output. Seeds of those come from their position, so they are fixed.
inline std::vector<TensorSpec> all_tensors(const OpCase& c) {
  std::vector<TensorSpec> all = c.tensors;
  uint64_t seed = 1000;
  for (const TensorSpec& s : c.tensors) {
    ++seed;
    if (s.role == Role::input && s.has_grad)
      all.push_back({.name = "d" + s.name,
                     .n = s.n,
                     .role = Role::grad,
                     .fill = normal(seed),
                     .tol = s.grad_tol,
                     .accumulates = s.accumulates});
    if (s.role == Role::output && s.dy != Dy::none)
      all.push_back({.name = "d" + s.name,
                     .n = s.n,
                     .role = Role::seed,
                     .fill = s.dy == Dy::one ? constant(1) : normal(seed)});
  }
  return all;
}

// Every tensor of the case filled. Values pass through float first, so the float and double
// backends start from the same numbers.
template <typename T>
HostTensors<T> make_tensors(const OpCase& c) {
  HostTensors<T> t;
  for (const TensorSpec& s : all_tensors(c)) {
    const std::vector<double> v = s.fill(s.n);
    if (s.dtype == DType::i32) {
      t.i32s[s.name] = std::vector<int32_t>(v.begin(), v.end());
      continue;
    }
    std::vector<T>& dst = t.f[s.name];
    dst.resize(v.size());
    for (size_t i = 0; i < v.size(); ++i) dst[i] = T(float(v[i]));
  }
  return t;
}

// sqrt(sum (got - want)^2 / sum want^2), or the absolute norm when want is all zero.
template <typename A, typename B>
double rel_error(const std::vector<A>& got, const std::vector<B>& want) {
  if (got.size() != want.size()) return INFINITY;
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double d = double(got[i]) - double(want[i]);
    num += d * d;
    den += double(want[i]) * double(want[i]);
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

// What a pass writes, and so what is compared after it.
inline bool written_by_forward(Role r) {
  return r == Role::output || r == Role::saved || r == Role::state;
}
inline bool written_by_backward(Role r) { return r == Role::grad; }

// The tensors a pass writes (`written`) that differ between two backends, one line each: int
// tensors must be equal, float ones within `tol` (relative error; kExact: equal), by default the
// case's own tolerance for each tensor.
template <typename A, typename B>
std::vector<std::string> mismatches(const OpCase& c, const HostTensors<A>& got,
                                    const HostTensors<B>& want, bool (*written)(Role),
                                    double tol = -1) {
  std::vector<std::string> bad;
  for (const TensorSpec& s : all_tensors(c)) {
    if (!written(s.role)) continue;
    if (s.dtype == DType::i32) {
      if (got.i32s.at(s.name) != want.i32s.at(s.name)) bad.push_back(s.name + ": not equal");
      continue;
    }
    const double t = tol >= 0 ? tol : s.tol;
    const auto &g = got.f.at(s.name), &w = want.f.at(s.name);
    const double e = rel_error(g, w);
    if (t == kExact ? !std::equal(g.begin(), g.end(), w.begin(), w.end()) : !(e <= t))
      bad.push_back(cat(s.name, ": relative error ", e, " > ", t));
  }
  return bad;
}

}  // namespace fsl::test
