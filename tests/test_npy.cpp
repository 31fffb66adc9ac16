#include <gtest/gtest.h>

#include <fstream>

#include "fsl/error.hpp"
#include "fsl/npy.hpp"
#include "testutil.hpp"

TEST(Npy, RoundTrip) {
  fsl::test::TempDir dir;
  std::vector<float> v(7 * 5);
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(i) * 0.5f - 3;
  auto p = (dir / "a.npy").string();
  fsl::npy_write(p, v.data(), {7, 5});
  fsl::NpyMap m(p);
  ASSERT_EQ(m.shape(), (std::vector<size_t>{7, 5}));
  EXPECT_EQ(m.rows(), 7u);
  EXPECT_EQ(m.cols(), 5u);
  for (size_t i = 0; i < v.size(); ++i) EXPECT_EQ(m.data()[i], v[i]);
}

TEST(Npy, ReadsNumpyWrittenFile) {
  // tests/data/numpy_3x4.npy was written by numpy.save(np.arange(12, dtype='<f4').reshape(3, 4))
  std::vector<size_t> shape;
  auto v = fsl::npy_read(fsl::test::data_path("numpy_3x4.npy").string(), &shape);
  ASSERT_EQ(shape, (std::vector<size_t>{3, 4}));
  for (size_t i = 0; i < 12; ++i) EXPECT_EQ(v[i], float(i));
}

TEST(Npy, RejectsTruncatedAndWrongDtype) {
  fsl::test::TempDir dir;
  std::vector<float> v(100, 1.f);
  auto p = (dir / "t.npy").string();
  fsl::npy_write(p, v.data(), {10, 10});
  std::filesystem::resize_file(p, std::filesystem::file_size(p) - 4);
  EXPECT_THROW(fsl::NpyMap{p}, fsl::Error);
  std::ofstream(dir / "junk.npy") << "hello world, not npy";
  EXPECT_THROW(fsl::NpyMap{(dir / "junk.npy").string()}, fsl::Error);
  std::vector<size_t> shape_out;
  std::string h = "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }";
  std::string bytes = std::string("\x93NUMPY\x01\x00", 8) + char(h.size()) + '\0' + h;
  EXPECT_THROW(fsl::npy_parse_header(reinterpret_cast<const unsigned char*>(bytes.data()),
                                     bytes.size(), shape_out, "x"),
               fsl::Error);
  EXPECT_THROW(fsl::NpyMap{(dir / "missing.npy").string()}, fsl::Error);
}
