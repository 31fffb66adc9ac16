// libFuzzer entry point: fsl::fuzz::file_scores_one (fuzz/targets.hpp).
#include "targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fsl::fuzz::file_scores_one(data, size);
  return 0;
}
