// libFuzzer entry point: fsl::fuzz::safetensors_one (fuzz/targets.hpp).
#include "targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fsl::fuzz::safetensors_one(data, size);
  return 0;
}
