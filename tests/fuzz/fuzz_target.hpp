// Each fuzz target defines LLVMFuzzerTestOneInput (libFuzzer's entry point) and fuzz_seeds():
// valid inputs the stand-alone driver (driver.cpp) mutates when libFuzzer is not used, and that
// `--write-seeds DIR` writes out as a starting corpus for libFuzzer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
std::vector<std::vector<uint8_t>> fuzz_seeds();
