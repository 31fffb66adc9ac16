// Fuzzes the CSV parser and the annotation reader (both layouts) on arbitrary bytes.
#include "fsl/annotations.hpp"
#include "fsl/error.hpp"
#include "fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    fsl::parse_csv(text, "fuzz.csv");
  } catch (const fsl::Error&) {
  }
  try {
    auto file = fsl::read_annotations(fsl::fuzz::write_temp(data, size, "Sub", "rec.csv"));
    for (const auto& [cls, events] : file.pos) fsl::negative_gaps(events, 0.1);
  } catch (const fsl::Error&) {
  }
  return 0;
}
