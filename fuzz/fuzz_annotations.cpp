// libFuzzer entry point: fsl::fuzz::annotations_one (fuzz/targets.hpp).
#include "targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fsl::fuzz::annotations_one(data, size);
  return 0;
}
