// Shared by the GPU tests: skip (with the one-line reason) when no CUDA device is usable.
#pragma once
#include <gtest/gtest.h>

#include <string>

#include "fsl/cuda_frontend.hpp"

#define SKIP_WITHOUT_GPU()                                      \
  do {                                                          \
    std::string why;                                            \
    if (!fsl::cuda_device_available(&why)) GTEST_SKIP() << why; \
  } while (0)
