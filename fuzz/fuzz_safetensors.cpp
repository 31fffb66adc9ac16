// Fuzzes the safetensors reader (header JSON, dtypes, shapes, offsets) on arbitrary bytes.
#include "fsl/error.hpp"
#include "fsl/safetensors.hpp"
#include "fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    fsl::Safetensors st = fsl::read_safetensors(fsl::fuzz::write_temp(data, size, "st", "x.safetensors"));
    for (const auto& [name, t] : st.tensors) (void)t.numel();
  } catch (const fsl::Error&) {
  }
  return 0;
}
