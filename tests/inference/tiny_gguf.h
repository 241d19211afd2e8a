// A tiny random GGUF model for runtime tests: every weight type the runtime
// multiplies with (Q4_0, Q8_0, Q2_0, F16, BF16) appears in some layer slot.
#ifndef QATK_TESTS_INFERENCE_TINY_GGUF_H_
#define QATK_TESTS_INFERENCE_TINY_GGUF_H_

#include <string>

#include "formats/gguf/gguf.h"

namespace qatk::inference::testing {

// Shape of a test model's hyperparameter keys.
struct TinyDims {
  int ctx = 128, E = 0, L = 0, F = 0, H = 0, Hk = 0, D = 0;
  float eps = 1e-6f;
};
// Writes general.architecture, the <arch>.* shape keys of `d` and a
// "llama" tokenizer of V tokens "t0".."t<V-1>" (gtest failures on error).
void AddModelKvs(gguf::GgufWriter& w, const std::string& arch, const TinyDims& d, int V);

constexpr int kTinyE = 64, kTinyH = 4, kTinyHk = 2, kTinyD = 32, kTinyF = 128, kTinyL = 2,
              kTinyV = 300;

// Writes a "llama" or "gemma3" model (random weights, seed 42) to
// TempDir()/tiny_<arch>.gguf and returns the path (gtest failures on error).
std::string WriteTinyModel(const std::string& arch);

}  // namespace qatk::inference::testing

#endif  // QATK_TESTS_INFERENCE_TINY_GGUF_H_
