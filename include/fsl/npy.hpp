// NPY v1.0 float32 arrays: written atomically, read through mmap. Features are (frames, n_mels).
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace fsl {

// Writes a C-order '<f4' array of `shape` (product = data.size()) to `path`, atomically.
void npy_write(const std::string& path, const float* data, const std::vector<size_t>& shape);

// A read-only memory-mapped NPY file of '<f4' (C order). Throws Error naming the file on any
// malformed header, wrong dtype, Fortran order, or a file shorter than its header says.
class NpyMap {
 public:
  explicit NpyMap(const std::string& path);
  ~NpyMap();
  NpyMap(NpyMap&& o) noexcept;
  NpyMap& operator=(NpyMap&& o) noexcept;
  NpyMap(const NpyMap&) = delete;
  NpyMap& operator=(const NpyMap&) = delete;

  const float* data() const { return data_; }
  const std::vector<size_t>& shape() const { return shape_; }
  size_t size() const;  // number of elements
  size_t rows() const { return shape_.empty() ? 1 : shape_[0]; }
  size_t cols() const;  // product of all but the first dimension
  const std::string& path() const { return path_; }

 private:
  void release();
  std::string path_;
  void* map_ = nullptr;
  size_t map_len_ = 0;
  const float* data_ = nullptr;
  std::vector<size_t> shape_;
};

// Parses an NPY header from the first bytes of a file (exposed for tests and fuzzing).
// Returns the data offset; fills shape. Throws Error(`what`: reason).
size_t npy_parse_header(const unsigned char* bytes, size_t len, std::vector<size_t>& shape,
                        const std::string& what);

// Reads the whole array into memory (small files, tests).
std::vector<float> npy_read(const std::string& path, std::vector<size_t>* shape = nullptr);

}  // namespace fsl
