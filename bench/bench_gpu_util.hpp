// What the GPU benchmarks share: without a usable device a benchmark reports why and runs
// nothing (the programs build and run everywhere; only a GPU machine gives numbers).
#pragma once
#include <benchmark/benchmark.h>

#include <string>

#include "fsl/cuda_frontend.hpp"

inline bool skip_without_gpu(benchmark::State& st) {
  std::string why;
  if (fsl::cuda_device_available(&why)) return false;
  st.SkipWithError(why.c_str());
  for (auto _ : st) {
  }
  return true;
}
