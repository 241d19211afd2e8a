// Internal to the runtime's kernels: per-target registration and the fp32
// vector helpers table. Each target lives in its own file with its code
// under `#pragma GCC target(...)` (headers are included before the pragma,
// so no inline function of a shared header is compiled for a wider ISA).
#ifndef QATK_INFERENCE_KERNELS_INTERNAL_H_
#define QATK_INFERENCE_KERNELS_INTERNAL_H_

#include <cstddef>
#include <cstdint>

#include "inference/matmul.h"

namespace qatk::inference::internal {

// Tokens per block in the prefill loop: each weight row is read once per
// block; kTokBlock prepared activation rows must fit in L2.
constexpr int kTokBlock = 32;

void RegisterScalarKernels();  // kernels_ref.cc
void RegisterAvx2Kernels();    // kernels_avx2.cc
void RegisterAvx512Kernels();  // kernels_avx512.cc

struct VecOps {
  float (*dot_f32)(const float* a, const float* b, int64_t n);
  void (*axpy_f32)(float a, const float* x, float* y, int64_t n);
  void (*f16_to_f32)(const uint16_t* x, float* y, int64_t n);
};
// Set by the best supported target's Register* call.
VecOps& ActiveVecOps();

// AVX2 activation quantizers (kernels_avx2.cc; call only when AVX2+F16C
// are present). PrepareQ8Avx2 is bit-identical to QuantizeBlockQ8_0Act;
// PrepareQ8CrumbAvx2 additionally stores each block's 32 codes crumb-major
// (position 8k+b holds element 4b+k) for the Q2_0 kernels.
void PrepareQ8Avx2(const QMatrix& w, const float* x /*[cols]*/, void* out);
void PrepareQ8CrumbAvx2(const QMatrix& w, const float* x /*[cols]*/, void* out);

// Bytes of `cols` activations as Q8_0 blocks.
inline size_t Q8RowBytes(const QMatrix& w) { return static_cast<size_t>(w.cols / 32) * 34; }
inline size_t NoPrepare(const QMatrix&) { return 0; }

// The generic prefill/decode loop over a per-row dot product:
// y[t, r] = dot(W row r, act row t), tokens in blocks of kTokBlock.
template <float (*Dot)(const uint8_t* w_row, const void* act_row, int64_t cols)>
void RowsLoop(const QMatrix& w, const void* act, size_t act_stride, int n_tok, float* y,
              int64_t y_stride, int64_t r0, int64_t r1) {
  const uint8_t* a = static_cast<const uint8_t*>(act);
  for (int t0 = 0; t0 < n_tok; t0 += kTokBlock) {
    const int t1 = n_tok < t0 + kTokBlock ? n_tok : t0 + kTokBlock;
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* row = w.Row(r);
      for (int t = t0; t < t1; ++t) y[t * y_stride + r] = Dot(row, a + t * act_stride, w.cols);
    }
  }
}

}  // namespace qatk::inference::internal

#endif  // QATK_INFERENCE_KERNELS_INTERNAL_H_
