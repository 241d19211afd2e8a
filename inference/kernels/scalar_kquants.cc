// Scalar reference kernels for the K-quant weights Q4_K and Q6_K.
//
// Activations are Q8_K, as in llama.cpp's CPU backend (every x86 target
// quantizes a K-quant matmul's input with quantize_row_q8_K_ref, and the
// repacked AVX2 Q4_K path uses Q8_K too): 256 int8 codes with an fp32 scale
// and 16-element sums. Against Q8_K the whole super-block dot is one
// integer sum per scale, like ggml's vec_dot_q{4,6}_K_q8_K, so the result
// is llama.cpp's up to the float order of the final per-block products
// (an f32-activation kernel would be closer to exact but further from
// llama.cpp). Q4_K's mins enter through the activation block sums:
//   sum_j x_j a_j = d_w d_a sum_s sc_s sum(q a) - dmin_w d_a sum_s m_s bsum_s.
#include <cstring>

#include "formats/quant/fp16.h"
#include "formats/quant/kquants.h"
#include "inference/kernels/internal.h"

namespace qatk::inference::internal {
size_t Q8KRowBytes(const QMatrix& w) { return static_cast<size_t>(w.cols / kQK_K) * sizeof(BlockQ8_K); }

void PrepareQ8K(const QMatrix& w, const float* x, void* out) {
  QuantizeRowQ8_K(x, static_cast<BlockQ8_K*>(out), w.cols);
}

namespace {

float DotQ4_K(const uint8_t* w, const void* a, int64_t n) {
  const BlockQ4_K* x = reinterpret_cast<const BlockQ4_K*>(w);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(a);
  float s = 0.0f;
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    int32_t sumi = 0, summ = 0;
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      Q4_KScaleMin(x[i].scales, j, &sc, &m);
      const uint8_t* q = x[i].qs + 32 * (j / 2);
      const int shift = 4 * (j % 2);
      int32_t dot = 0;
      for (int l = 0; l < 32; ++l) dot += ((q[l] >> shift) & 0xF) * y[i].qs[32 * j + l];
      sumi += sc * dot;
      summ += m * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
    }
    s += Fp16ToFp32(x[i].d) * y[i].d * static_cast<float>(sumi) -
         Fp16ToFp32(x[i].dmin) * y[i].d * static_cast<float>(summ);
  }
  return s;
}

// The 256 Q6_K codes of a block minus 32, in element order.
void Q6_KCodes(const BlockQ6_K& b, int8_t* q) {
  for (int h = 0; h < 2; ++h) {
    const uint8_t* ql = b.ql + 64 * h;
    const uint8_t* qh = b.qh + 32 * h;
    int8_t* o = q + 128 * h;
    for (int l = 0; l < 32; ++l) {
      o[l + 0] = static_cast<int8_t>(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
      o[l + 32] = static_cast<int8_t>(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
      o[l + 64] = static_cast<int8_t>(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
      o[l + 96] = static_cast<int8_t>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
    }
  }
}

float DotQ6_K(const uint8_t* w, const void* a, int64_t n) {
  const BlockQ6_K* x = reinterpret_cast<const BlockQ6_K*>(w);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(a);
  float s = 0.0f;
  int8_t q[kQK_K];
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    Q6_KCodes(x[i], q);
    int32_t sumi = 0;
    for (int j = 0; j < 16; ++j) {
      int32_t dot = 0;
      for (int l = 0; l < 16; ++l) dot += q[16 * j + l] * y[i].qs[16 * j + l];
      sumi += x[i].scales[j] * dot;
    }
    s += Fp16ToFp32(x[i].d) * y[i].d * static_cast<float>(sumi);
  }
  return s;
}

MatMulKernel Q8KKernel(void (*rows)(const QMatrix&, const void*, size_t, int, float*, int64_t,
                                    int64_t, int64_t)) {
  MatMulKernel k;
  k.act_row_bytes = Q8KRowBytes;
  k.prepare = PrepareQ8K;
  k.rows = rows;
  return k;
}

}  // namespace

void RegisterScalarKQuantKernels() {
  RegisterMatMulKernel(WType::kQ4_K, Q8KKernel(RowsLoop<DotQ4_K>));
  RegisterMatMulKernel(WType::kQ6_K, Q8KKernel(RowsLoop<DotQ6_K>));
}

}  // namespace qatk::inference::internal
