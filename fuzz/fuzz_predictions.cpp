// Fuzzes fsl_score's prediction-CSV reader on arbitrary bytes.
#include "fsl/error.hpp"
#include "fsl/metric.hpp"
#include "fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    fsl::read_predictions(fsl::fuzz::write_temp(data, size, "pred", "pred.csv"));
  } catch (const fsl::Error&) {
  }
  return 0;
}
