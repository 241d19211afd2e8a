// y = x W^T for every weight type, with a per-type dispatch table.
//
// Shapes: W is a QMatrix [rows, cols]; x is [n_tok, cols] fp32 row-major;
// y is [n_tok, rows] fp32 row-major. n_tok > 1 is the prefill batch: each
// weight row is read once per block of tokens, not once per token.
//
// A kernel (MatMulKernel) is two functions:
//   prepare: converts one activation row (cols floats) into the kernel's own
//            format (GGUF quantized types: Q8_0 blocks, like llama.cpp; the
//            mobile int types: int8 with the static scale);
//   rows:    computes y[t, r] for all tokens t and rows r in [r0, r1).
// The table holds, per WType, every kernel of this directory (scalar
// reference first, then SIMD targets); MatMul uses the last one whose
// `supported()` is true on this CPU. It is filled once, on first use, by
// the lookups below: callers register nothing.
#ifndef QATK_INFERENCE_KERNELS_MATMUL_H_
#define QATK_INFERENCE_KERNELS_MATMUL_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "inference/thread_pool.h"
#include "inference/weights.h"

namespace qatk::inference {

struct MatMulKernel {
  const char* target = "scalar";  // "scalar", "avx2", "avx512", "avx512vnni", ...
  bool (*supported)() = nullptr;  // null = always
  // Bytes of one prepared activation row of `cols` elements (0: the kernel
  // reads fp32 activations directly and `prepare` is not called).
  size_t (*act_row_bytes)(const QMatrix& w) = nullptr;
  void (*prepare)(const QMatrix& w, const float* x /*[cols]*/, void* out) = nullptr;
  // act: n_tok prepared rows of act_stride bytes (or fp32 rows of cols when
  // act_row_bytes returns 0); y row t starts at y + t * y_stride.
  void (*rows)(const QMatrix& w, const void* act, size_t act_stride, int n_tok, float* y,
               int64_t y_stride, int64_t r0, int64_t r1) = nullptr;
};

// Every kernel for `type` that this CPU supports, scalar reference first.
std::vector<MatMulKernel> SupportedMatMulKernels(WType type);
// The kernel MatMul uses for `type` (null if none is registered).
const MatMulKernel* BestMatMulKernel(WType type);

// y[n_tok, rows] = x[n_tok, cols] W^T with the best kernel, rows split over
// the pool. Uses a scratch buffer that grows once (no allocation per token).
void MatMul(const QMatrix& w, const float* x, int n_tok, float* y, ThreadPool& pool);
// Same with an explicit kernel (tests compare every target to the scalar one).
void MatMulWith(const MatMulKernel& k, const QMatrix& w, const float* x, int n_tok, float* y,
                ThreadPool& pool);

// Small fp32 vector helpers for attention, dispatched to the best target.
float DotF32(const float* a, const float* b, int64_t n);
void AxpyF32(float a, const float* x, float* y, int64_t n);  // y += a*x
// m rows against one vector (attention: a group of query heads and one
// cached key / value row): out[g] = dot(rows + g*stride, x[n]) and
// y + g*stride += a[g] * x[n], for g < m. Same sums as DotF32 / AxpyF32.
void DotF32Rows(const float* rows, int64_t stride, int m, const float* x, int64_t n, float* out);
void AxpyF32Rows(const float* a, const float* x, float* y, int64_t stride, int m, int64_t n);
// Converts n fp16 values to fp32.
void F16ToF32Row(const uint16_t* x, float* y, int64_t n);

}  // namespace qatk::inference

#endif  // QATK_INFERENCE_KERNELS_MATMUL_H_
