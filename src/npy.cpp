#include "fsl/npy.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <limits>

#include "fsl/error.hpp"
#include "fsl/fileio.hpp"

namespace fsl {

namespace {
const char kMagic[] = "\x93NUMPY";

std::string header_text(const std::vector<size_t>& shape) {
  std::string s = "{'descr': '<f4', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < shape.size(); ++i) {
    s += std::to_string(shape[i]);
    if (shape.size() == 1 || i + 1 < shape.size()) s += ",";
    if (i + 1 < shape.size()) s += " ";
  }
  s += "), }";
  // Total header (magic 6 + version 2 + len 2 + text + '\n') padded to a multiple of 64.
  size_t total = 10 + s.size() + 1;
  s.append((64 - total % 64) % 64, ' ');
  s += '\n';
  return s;
}

// Finds `'key':` in the dict text and returns the position just after the colon.
size_t find_key(const std::string& h, const std::string& key, const std::string& what) {
  size_t p = h.find("'" + key + "'");
  if (p == std::string::npos) p = h.find("\"" + key + "\"");
  if (p == std::string::npos) fail(what, ": NPY header has no '", key, "'");
  p = h.find(':', p + key.size() + 2);
  if (p == std::string::npos) fail(what, ": NPY header is malformed near '", key, "'");
  return p + 1;
}
}  // namespace

size_t npy_parse_header(const unsigned char* b, size_t len, std::vector<size_t>& shape,
                        const std::string& what) {
  if (len < 10 || std::memcmp(b, kMagic, 6) != 0) fail(what, ": not an NPY file (bad magic)");
  int major = b[6];
  size_t hlen, off;
  if (major == 1) {
    hlen = b[8] | (size_t(b[9]) << 8);
    off = 10;
  } else if (major == 2 || major == 3) {
    if (len < 12) fail(what, ": truncated NPY header");
    hlen = b[8] | (size_t(b[9]) << 8) | (size_t(b[10]) << 16) | (size_t(b[11]) << 24);
    off = 12;
  } else {
    fail(what, ": unsupported NPY version ", major);
  }
  if (hlen > len - off) fail(what, ": truncated NPY header");
  std::string h(reinterpret_cast<const char*>(b + off), hlen);
  size_t p = find_key(h, "descr", what);
  size_t q1 = h.find_first_of("'\"", p);
  size_t q2 = q1 == std::string::npos ? q1 : h.find_first_of("'\"", q1 + 1);
  if (q2 == std::string::npos) fail(what, ": NPY header is malformed near 'descr'");
  std::string descr = h.substr(q1 + 1, q2 - q1 - 1);
  if (descr != "<f4" && descr != "=f4" && descr != "f4")
    fail(what, ": dtype ", descr, " is not float32 little-endian ('<f4')");
  p = find_key(h, "fortran_order", what);
  while (p < h.size() && h[p] == ' ') ++p;
  if (h.compare(p, 5, "False") != 0) fail(what, ": Fortran-order arrays are not supported");
  p = find_key(h, "shape", what);
  size_t open = h.find('(', p), close = h.find(')', p);
  if (open == std::string::npos || close == std::string::npos || close < open)
    fail(what, ": NPY header is malformed near 'shape'");
  shape.clear();
  std::string dims = h.substr(open + 1, close - open - 1);
  size_t i = 0;
  while (i < dims.size()) {
    while (i < dims.size() && (dims[i] == ' ' || dims[i] == ',')) ++i;
    if (i >= dims.size()) break;
    if (dims[i] < '0' || dims[i] > '9') fail(what, ": NPY shape is malformed");
    size_t v = 0;
    while (i < dims.size() && dims[i] >= '0' && dims[i] <= '9') {
      if (v > (std::numeric_limits<size_t>::max() - 9) / 10) fail(what, ": NPY shape overflows");
      v = v * 10 + size_t(dims[i++] - '0');
    }
    if (shape.size() >= 8) fail(what, ": NPY array has too many dimensions");
    shape.push_back(v);
  }
  return off + hlen;
}

void npy_write(const std::string& path, const float* data, const std::vector<size_t>& shape) {
  size_t n = 1;
  for (auto d : shape) n *= d;
  std::string h = header_text(shape);
  atomic_write(path, [&](const fs::path& tmp) {
    FILE* f = std::fopen(tmp.c_str(), "wb");
    if (!f) fail(path, ": cannot open for writing");
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                             static_cast<unsigned char>(h.size() & 0xff),
                             static_cast<unsigned char>(h.size() >> 8)};
    bool ok = std::fwrite(pre, 1, 10, f) == 10 && std::fwrite(h.data(), 1, h.size(), f) == h.size() &&
              (n == 0 || std::fwrite(data, sizeof(float), n, f) == n);
    ok = (std::fclose(f) == 0) && ok;
    if (!ok) fail(path, ": write failed (disk full?)");
  });
}

NpyMap::NpyMap(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) fail(path, ": cannot open: ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    fail(path, ": cannot stat");
  }
  map_len_ = static_cast<size_t>(st.st_size);
  if (map_len_ < 10) {
    ::close(fd);
    fail(path, ": truncated NPY file (", map_len_, " bytes)");
  }
  map_ = ::mmap(nullptr, map_len_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    fail(path, ": mmap failed");
  }
  try {
    auto* b = static_cast<const unsigned char*>(map_);
    size_t off = npy_parse_header(b, map_len_, shape_, path);
    size_t n = size();
    if (n > (map_len_ - off) / sizeof(float))
      fail(path, ": truncated NPY file: header says ", n, " floats, file holds ",
           (map_len_ - off) / sizeof(float));
    if (off % alignof(float) != 0) fail(path, ": misaligned NPY data");
    data_ = reinterpret_cast<const float*>(b + off);
  } catch (...) {
    release();
    throw;
  }
}

size_t NpyMap::size() const {
  size_t n = 1;
  for (auto d : shape_) {
    if (d != 0 && n > std::numeric_limits<size_t>::max() / d) fail(path_, ": NPY shape overflows");
    n *= d;
  }
  return n;
}

size_t NpyMap::cols() const {
  size_t n = 1;
  for (size_t i = 1; i < shape_.size(); ++i) n *= shape_[i];
  return n;
}

void NpyMap::release() {
  if (map_) ::munmap(map_, map_len_);
  map_ = nullptr;
  data_ = nullptr;
}

NpyMap::~NpyMap() { release(); }

NpyMap::NpyMap(NpyMap&& o) noexcept { *this = std::move(o); }

NpyMap& NpyMap::operator=(NpyMap&& o) noexcept {
  if (this != &o) {
    release();
    path_ = std::move(o.path_);
    map_ = o.map_;
    map_len_ = o.map_len_;
    data_ = o.data_;
    shape_ = std::move(o.shape_);
    o.map_ = nullptr;
    o.data_ = nullptr;
  }
  return *this;
}

std::vector<float> npy_read(const std::string& path, std::vector<size_t>* shape) {
  NpyMap m(path);
  if (shape) *shape = m.shape();
  return std::vector<float>(m.data(), m.data() + m.size());
}

}  // namespace fsl
