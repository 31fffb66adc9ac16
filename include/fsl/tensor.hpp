// Tensors: a float view (pointer + shape + device) into memory owned elsewhere, and the Arena that
// owns that memory. No autograd, no reference counting: an Arena is sized once (plan, then
// allocate), hands out aligned blocks, and is freed as a whole. Layout is NCHW, row-major.
#pragma once
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace fsl {

enum class Device { cpu, cuda };

// A view: `data` points into an Arena (or any buffer that outlives the view).
template <typename T>
struct TensorT {
  T* data = nullptr;
  std::vector<int64_t> shape;
  Device device = Device::cpu;

  int64_t numel() const;
  int64_t dim(int i) const { return shape.at(i); }
  std::string shape_str() const;  // "(200, 64, 17, 128)"
};
using Tensor = TensorT<float>;

// Host memory handed out in 64-byte aligned blocks. Usage: reserve() every block to learn the
// total, then allocate() once; or construct with a byte count and take() blocks in order.
class Arena {
 public:
  Arena() = default;
  explicit Arena(size_t bytes) { allocate(bytes); }
  ~Arena();
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  Arena(Arena&& o) noexcept;
  Arena& operator=(Arena&& o) noexcept;

  static constexpr size_t kAlign = 64;
  static size_t aligned(size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

  void allocate(size_t bytes);  // frees any previous block; memory is zero-filled
  // Next `count` elements of T; throws fsl::Error when the arena is exhausted (a planning bug).
  template <typename T>
  T* take(size_t count) {
    return static_cast<T*>(take_bytes(count * sizeof(T)));
  }
  template <typename T>
  TensorT<T> tensor(std::initializer_list<int64_t> shape);
  size_t capacity() const { return capacity_; }
  size_t used() const { return used_; }
  void reset() { used_ = 0; }  // hand the same blocks out again (views become stale)

 private:
  void* take_bytes(size_t bytes);
  char* base_ = nullptr;
  size_t capacity_ = 0;
  size_t used_ = 0;
};

template <typename T>
TensorT<T> Arena::tensor(std::initializer_list<int64_t> shape) {
  TensorT<T> t;
  t.shape.assign(shape.begin(), shape.end());
  t.data = take<T>(static_cast<size_t>(t.numel()));
  return t;
}

}  // namespace fsl

namespace fsl {

// A named, typed view for checkpoints: the encoder's parameters and buffers as PyTorch names
// them (`encoder.layer1.0.conv1.weight`, `...bn1.num_batches_tracked` as int64, ...).
enum class DType { f32, f64, i64 };
size_t dtype_size(DType t);
const char* dtype_name(DType t);  // safetensors spelling: "F32", "F64", "I64"

struct NamedTensor {
  std::string name;
  std::vector<int64_t> shape;
  DType dtype = DType::f32;
  void* data = nullptr;  // numel * dtype_size bytes, owned elsewhere
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

}  // namespace fsl
