// Fuzzes the NPY header parser on the raw bytes and NpyMap/npy_read on them as a file.
#include <vector>

#include "fsl/error.hpp"
#include "fsl/npy.hpp"
#include "fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<size_t> shape;
  try {
    size_t offset = fsl::npy_parse_header(data, size, shape, "fuzz.npy");
    (void)offset;
  } catch (const fsl::Error&) {
  }
  try {
    fsl::NpyMap map(fsl::fuzz::write_temp(data, size, "npy", "x.npy"));
    // Touch every element: the map must really be as long as the header says.
    volatile float sum = 0;
    for (size_t i = 0; i < map.size(); ++i) sum = sum + map.data()[i];
    (void)map.rows();
    (void)map.cols();
  } catch (const fsl::Error&) {
  }
  return 0;
}
