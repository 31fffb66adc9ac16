#include "fsl/tensor.hpp"

#include <cstdlib>
#include <cstring>
#include <sstream>
#include <utility>

#include "fsl/error.hpp"

namespace fsl {

template <typename T>
int64_t TensorT<T>::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

template <typename T>
std::string TensorT<T>::shape_str() const {
  std::ostringstream os;
  os << '(';
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << ')';
  return os.str();
}

template struct TensorT<float>;
template struct TensorT<double>;

Arena::~Arena() { std::free(base_); }

Arena::Arena(Arena&& o) noexcept
    : base_(std::exchange(o.base_, nullptr)),
      capacity_(std::exchange(o.capacity_, 0)),
      used_(std::exchange(o.used_, 0)) {}

Arena& Arena::operator=(Arena&& o) noexcept {
  if (this != &o) {
    std::free(base_);
    base_ = std::exchange(o.base_, nullptr);
    capacity_ = std::exchange(o.capacity_, 0);
    used_ = std::exchange(o.used_, 0);
  }
  return *this;
}

void Arena::allocate(size_t bytes) {
  std::free(base_);
  base_ = nullptr;
  capacity_ = aligned(bytes);
  used_ = 0;
  if (capacity_ == 0) return;
  base_ = static_cast<char*>(std::aligned_alloc(kAlign, capacity_));
  if (!base_) fail("out of memory: cannot allocate an arena of ", capacity_ >> 20, " MiB");
  std::memset(base_, 0, capacity_);
}

void* Arena::take_bytes(size_t bytes) {
  size_t need = aligned(bytes);
  if (used_ + need > capacity_)
    fail("arena exhausted: asked ", need, " bytes with ", capacity_ - used_, " left (planning bug)");
  void* p = base_ + used_;
  used_ += need;
  return p;
}

}  // namespace fsl

namespace fsl {

size_t dtype_size(DType t) { return t == DType::f32 ? 4 : 8; }
const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "F32";
    case DType::f64: return "F64";
    case DType::i64: return "I64";
  }
  return "?";
}

}  // namespace fsl
