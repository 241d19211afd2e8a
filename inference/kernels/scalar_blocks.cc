// Scalar reference kernels: the oracle every SIMD kernel is tested against.
// GGUF quantized weights take Q8_0 activations quantized as llama.cpp's x86
// backend does (QuantizeBlockQ8_0Act) and accumulate like ggml's generic
// vec_dot (int per block, float across).
#include <cstring>

#include "formats/quant/codecs.h"
#include "formats/quant/fp16.h"
#include "inference/kernels/internal.h"
#include "inference/kernels/x16.h"

namespace qatk::inference::internal {
namespace {

void PrepareQ8(const QMatrix& w, const float* x, void* out) {
  BlockQ8_0* b = static_cast<BlockQ8_0*>(out);
  for (int64_t i = 0; i < w.cols / 32; ++i) QuantizeBlockQ8_0Act(x + i * 32, b + i);
}

float DotF32(const uint8_t* w, const void* a, int64_t n) {
  const float* wf = reinterpret_cast<const float*>(w);
  const float* af = static_cast<const float*>(a);
  float s = 0.0f;
  for (int64_t i = 0; i < n; ++i) s += wf[i] * af[i];
  return s;
}

float DotF16(const uint8_t* w, const void* a, int64_t n) {
  const float* af = static_cast<const float*>(a);
  float s = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, w + 2 * i, 2);
    s += Fp16ToFp32(h) * af[i];
  }
  return s;
}

float DotBF16(const uint8_t* w, const void* a, int64_t n) {
  const float* af = static_cast<const float*>(a);
  float s = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, w + 2 * i, 2);
    s += Bf16ToFp32(h) * af[i];
  }
  return s;
}

float DotQ8_0(const uint8_t* w, const void* a, int64_t n) {
  const BlockQ8_0* x = reinterpret_cast<const BlockQ8_0*>(w);
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(a);
  float s = 0.0f;
  for (int64_t i = 0; i < n / 32; ++i) {
    int sumi = 0;
    for (int j = 0; j < 32; ++j) sumi += x[i].qs[j] * y[i].qs[j];
    s += sumi * (Fp16ToFp32(x[i].d) * Fp16ToFp32(y[i].d));
  }
  return s;
}

float DotQ4_0(const uint8_t* w, const void* a, int64_t n) {
  const BlockQ4_0* x = reinterpret_cast<const BlockQ4_0*>(w);
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(a);
  float s = 0.0f;
  for (int64_t i = 0; i < n / 32; ++i) {
    int sumi = 0;
    for (int j = 0; j < 16; ++j) {
      sumi += ((x[i].qs[j] & 0x0F) - 8) * y[i].qs[j];
      sumi += ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + 16];
    }
    s += sumi * (Fp16ToFp32(x[i].d) * Fp16ToFp32(y[i].d));
  }
  return s;
}

float DotQ2_0(const uint8_t* w, const void* a, int64_t n) {
  const BlockQ2_0* x = reinterpret_cast<const BlockQ2_0*>(w);
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(a);
  float s = 0.0f;
  for (int64_t i = 0; i < n / 64; ++i) {
    float si = 0.0f;
    for (int k = 0; k < 2; ++k) {
      const BlockQ8_0& yb = y[2 * i + k];
      int sumi = 0;
      for (int j = 0; j < 32; ++j) {
        const int e = 32 * k + j;
        sumi += (((x[i].qs[e / 4] >> (2 * (e % 4))) & 3) - 1) * yb.qs[j];
      }
      si += Fp16ToFp32(yb.d) * sumi;
    }
    s += Fp16ToFp32(x[i].d) * si;
  }
  return s;
}

// kQ4_0x16 (layout in x16.h): row r's dot, in DotQ4_0's order.
void PrepareQ8Sums(const QMatrix& w, const float* x, void* out) {
  PrepareQ8(w, x, out);
  FillQ8Sums(w, out);
}

float DotQ4_0x16(const QMatrix& w, int64_t r, const uint8_t* act) {
  const int64_t nb = w.cols / 32;
  const uint8_t* qs =
      static_cast<const uint8_t*>(w.data) + (r / kX16Rows) * Q4x16GroupBytes(w.cols);
  const uint8_t* d = qs + nb * 256;
  const int i = static_cast<int>(r % kX16Rows);
  const BlockQ8_0* y = reinterpret_cast<const BlockQ8_0*>(act);
  float s = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    int sumi = 0;
    for (int c = 0; c < 4; ++c) {
      for (int k = 0; k < 4; ++k) {
        const uint8_t q = qs[256 * b + 64 * c + 4 * i + k];
        sumi += ((q & 0x0F) - 8) * y[b].qs[4 * c + k];
        sumi += ((q >> 4) - 8) * y[b].qs[16 + 4 * c + k];
      }
    }
    uint16_t dw;
    std::memcpy(&dw, d + 32 * b + 2 * i, 2);
    s += sumi * (Fp16ToFp32(dw) * Fp16ToFp32(y[b].d));
  }
  return s;
}

void RowsQ4_0x16(const QMatrix& w, const void* act, size_t act_stride, int n_tok, float* y,
                 int64_t y_stride, int64_t r0, int64_t r1) {
  const uint8_t* a = static_cast<const uint8_t*>(act);
  for (int64_t r = r0; r < r1; ++r) {
    for (int t = 0; t < n_tok; ++t) y[t * y_stride + r] = DotQ4_0x16(w, r, a + t * act_stride);
  }
}

float VecDot(const float* a, const float* b, int64_t n) {
  float s = 0.0f;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}
void VecAxpy(float a, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}
// The helpers inlined per row: one call per cached position, not per head.
void VecDotRows(const float* rows, int64_t stride, int m, const float* x, int64_t n, float* out) {
  for (int g = 0; g < m; ++g) out[g] = VecDot(rows + g * stride, x, n);
}
void VecAxpyRows(const float* a, const float* x, float* y, int64_t stride, int m, int64_t n) {
  for (int g = 0; g < m; ++g) VecAxpy(a[g], x, y + g * stride, n);
}

void VecF16ToF32(const uint16_t* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = Fp16ToFp32(x[i]);
}

MatMulKernel FloatKernel(void (*rows)(const QMatrix&, const void*, size_t, int, float*, int64_t,
                                      int64_t, int64_t)) {
  MatMulKernel k;
  k.act_row_bytes = NoPrepare;
  k.rows = rows;
  return k;
}

MatMulKernel Q8Kernel(void (*rows)(const QMatrix&, const void*, size_t, int, float*, int64_t,
                                   int64_t, int64_t)) {
  MatMulKernel k;
  k.act_row_bytes = Q8RowBytes;
  k.prepare = PrepareQ8;
  k.rows = rows;
  return k;
}

}  // namespace

void RegisterScalarBlockKernels() {
  RegisterMatMulKernel(WType::kF32, FloatKernel(RowsLoop<DotF32>));
  RegisterMatMulKernel(WType::kF16, FloatKernel(RowsLoop<DotF16>));
  RegisterMatMulKernel(WType::kBF16, FloatKernel(RowsLoop<DotBF16>));
  RegisterMatMulKernel(WType::kQ8_0, Q8Kernel(RowsLoop<DotQ8_0>));
  RegisterMatMulKernel(WType::kQ4_0, Q8Kernel(RowsLoop<DotQ4_0>));
  RegisterMatMulKernel(WType::kQ2_0, Q8Kernel(RowsLoop<DotQ2_0>));
  MatMulKernel x16;
  x16.act_row_bytes = Q8SumRowBytes;
  x16.prepare = PrepareQ8Sums;
  x16.rows = RowsQ4_0x16;
  RegisterMatMulKernel(WType::kQ4_0x16, x16);
  ActiveVecOps() = VecOps{VecDot, VecAxpy, VecF16ToF32, VecDotRows, VecAxpyRows};
}

}  // namespace qatk::inference::internal
