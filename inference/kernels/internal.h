// Internal to the runtime's kernels: per-target registration and the fp32
// vector helpers table. Each target lives in its own file with its code
// under `#pragma GCC target(...)` (headers are included before the pragma,
// so no inline function of a shared header is compiled for a wider ISA);
// its kernels' `supported` is CpuHasAvx2 / CpuHasAvx512 / CpuHasAvx512Vnni
// (formats/util/cpu_features.h). aarch64 files (arm_*.cc) are compiled whole
// with their own -march instead, and their code with internal linkage
// (arm_neon_common.h); `supported` is CpuHasArmNeon / Dotprod / I8mm.
#ifndef QATK_INFERENCE_KERNELS_INTERNAL_H_
#define QATK_INFERENCE_KERNELS_INTERNAL_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "formats/quant/fp16.h"
#include "formats/quant/types.h"
#include "formats/util/cpu_features.h"
#include "inference/kernels/matmul.h"

namespace qatk::inference::internal {

// Tokens per block in the prefill loop: each weight row is read once per
// block; kTokBlock prepared activation rows must fit in L2.
constexpr int kTokBlock = 32;

// Appends a kernel for `type`. Only the Register* functions below call it,
// from the registry's one-time start-up (matmul.cc).
void RegisterMatMulKernel(WType type, const MatMulKernel& kernel);

// Each kernel file registers all of its kernels with one call; the
// start-up calls them scalar first, then AVX2, then AVX-512 (aarch64: NEON,
// dotprod, i8mm), so each type's table goes from the oracle to the widest
// target. Only the current architecture's files are built.
void RegisterScalarBlockKernels();  // scalar_blocks.cc: GGUF types, kQ4_0x16
void RegisterScalarIntKernels();    // int.cc: int channel and int x16 types
void RegisterScalarKQuantKernels(); // scalar_kquants.cc: kQ4_K, kQ6_K
// The K-quant kernels of every target share one activation format, Q8_K
// (formats/quant/kquants.h; llama.cpp's x86 backend quantizes with the same
// reference code): its row size and the row quantizer (scalar_kquants.cc).
size_t Q8KRowBytes(const QMatrix& w);
void PrepareQ8K(const QMatrix& w, const float* x, void* out);
void RegisterAvx2BlockKernels();    // x86_avx2_blocks.cc
void RegisterAvx2IntKernels();      // x86_avx2_int.cc
void RegisterAvx2X16Kernels();      // x86_avx2_x16.cc: kQ4_0x16, kInt4/2x16
void RegisterAvx2KQuantKernels();   // x86_avx2_kquants.cc: kQ4_K, kQ6_K
void RegisterAvx512BlockKernels();  // x86_avx512_blocks.cc
void RegisterAvx512IntKernels();    // x86_avx512_int.cc
void RegisterAvx512X16Kernels();    // x86_avx512_x16.cc: kQ4_0x16, int x16
void RegisterAvx512KQuantKernels(); // x86_avx512_kquants.cc: kQ4_K, kQ6_K (VNNI)
// aarch64 (arm_*.cc; each file built with its own -march, CMakeLists.txt):
// plain NEON, then SDOT, then SMMLA. No x16 kernels: the file layouts stay.
void RegisterNeonBlockKernels();     // arm_neon_blocks.cc (+ vector helpers)
void RegisterNeonIntKernels();       // arm_neon_int.cc
void RegisterDotprodBlockKernels();  // arm_dotprod_blocks.cc
void RegisterDotprodIntKernels();    // arm_dotprod_int.cc
void RegisterI8mmBlockKernels();     // arm_i8mm_blocks.cc: Q8_0 / Q4_0 prefill
void RegisterI8mmIntKernels();       // arm_i8mm_int.cc: int channel prefill

struct VecOps {
  float (*dot_f32)(const float* a, const float* b, int64_t n);
  void (*axpy_f32)(float a, const float* x, float* y, int64_t n);
  void (*f16_to_f32)(const uint16_t* x, float* y, int64_t n);
  void (*dot_f32_rows)(const float* rows, int64_t stride, int m, const float* x, int64_t n,
                       float* out);
  void (*axpy_f32_rows)(const float* a, const float* x, float* y, int64_t stride, int m,
                        int64_t n);
};
// Set by the best supported target's Register* call.
VecOps& ActiveVecOps();

// AVX2 activation quantizers (x86_avx2_blocks.cc; call only when AVX2+F16C
// are present). PrepareQ8Avx2 is bit-identical to QuantizeBlockQ8_0Act;
// PrepareQ8CrumbAvx2 additionally stores each block's 32 codes crumb-major
// (position 8k+b holds element 4b+k) for the Q2_0 kernels; PrepareQ8SumsAvx2
// appends the Q8Sum table (FillQ8Sums) for the kQ4_0x16 kernels.
void PrepareQ8Avx2(const QMatrix& w, const float* x /*[cols]*/, void* out);
void PrepareQ8CrumbAvx2(const QMatrix& w, const float* x /*[cols]*/, void* out);
void PrepareQ8SumsAvx2(const QMatrix& w, const float* x /*[cols]*/, void* out);

// Bytes of `cols` activations as Q8_0 blocks.
inline size_t Q8RowBytes(const QMatrix& w) { return static_cast<size_t>(w.cols / 32) * 34; }
inline size_t NoPrepare(const QMatrix&) { return 0; }

// Activations of the kQ4_0x16 kernels: the row's nb = cols / 32 Q8_0 blocks
// (byte for byte as QuantizeBlockQ8_0Act), padded to 8 bytes, then one
// Q8Sum per block. Weight codes enter the integer dot as unsigned nibbles
// u = code + 8, so sum(code * a) = sum(u * a) + start with start = -8 sum(a).
struct Q8Sum {
  int32_t start;  // -8 * sum of the block's 32 codes
  float d;        // the block's scale as fp32
};
static_assert(sizeof(Q8Sum) == 8, "Q8Sum is two 4-byte words");
inline size_t Q8SumOffset(const QMatrix& w) { return (Q8RowBytes(w) + 7) / 8 * 8; }
inline size_t Q8SumRowBytes(const QMatrix& w) {
  return Q8SumOffset(w) + static_cast<size_t>(w.cols / 32) * sizeof(Q8Sum);
}
// Fills the Q8Sum table of a prepared row whose Q8_0 blocks are written.
inline void FillQ8Sums(const QMatrix& w, void* row) {
  const BlockQ8_0* b = static_cast<const BlockQ8_0*>(row);
  Q8Sum* s = reinterpret_cast<Q8Sum*>(static_cast<uint8_t*>(row) + Q8SumOffset(w));
  for (int64_t i = 0; i < w.cols / 32; ++i) {
    int32_t sum = 0;
    for (int j = 0; j < 32; ++j) sum += b[i].qs[j];
    s[i].start = -8 * sum;
    s[i].d = Fp16ToFp32(b[i].d);
  }
}

// The loop of the row-interleaved x16 kernels (x16.h): tokens in blocks of
// kTokBlock; rows [r0, r1) in steps of `step` (a group of 16 rows, or half
// of one), r0 a multiple of 16 (MatMul aligns row ranges), r1 maybe ending
// a step early; each block's tokens in register tiles of up to kTile.
// fn(r, n_rows, t, n) computes rows [r, r + n_rows) x tokens [t, t + n).
template <int kTile, class Fn>
void ForEachRowTile(int n_tok, int64_t r0, int64_t r1, int64_t step, Fn&& fn) {
  for (int t0 = 0; t0 < n_tok; t0 += kTokBlock) {
    const int t1 = std::min(n_tok, t0 + kTokBlock);
    for (int64_t r = r0; r < r1; r += step) {
      const int nr = static_cast<int>(std::min<int64_t>(r1 - r, step));
      for (int t = t0; t < t1; t += kTile) fn(r, nr, t, std::min(t1 - t, kTile));
    }
  }
}

// fn(std::integral_constant<int, n>()) for a runtime 1 <= n <= N: a
// register tile of n tokens, with n a compile-time constant.
template <int N, class Fn>
void WithTileSize(int n, Fn&& fn) {
  if constexpr (N > 1) {
    if (n < N) return WithTileSize<N - 1>(n, fn);
  }
  fn(std::integral_constant<int, N>());
}

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
