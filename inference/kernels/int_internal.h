// Internal to the mobile int kernels: the activation quantizer, the SIMD
// activation layouts and the shared row loop.
//
// SIMD layout of one prepared activation row of `cols` int8 codes:
//   bytes [0, cols)          codes; each full block of 64 weight-code BYTES
//                            (B = 64 * per_byte elements: int8 64, int4 128,
//                            int2 256) is permuted so that field i of weight
//                            byte j meets act[i*64 + j] = a[per_byte*j + i];
//                            the tail (cols % B elements) is in natural order
//   pad to RoundUp64(cols)   zero
//   int32 at RoundUp64(cols) sum of the codes of the full blocks
// The scalar reference uses the natural order (no permutation, no sum).
//
// Layout of the x16 kernels (kInt8x16 / kInt4x16 / kInt2x16, x16.h), the
// same for every target, scalar included:
//   bytes [0, cols)          codes in natural order
//   pad to RoundUp64(cols)   zero
//   int32 at RoundUp64(cols) sum of all cols codes
#ifndef QATK_INFERENCE_KERNELS_INT_INTERNAL_H_
#define QATK_INFERENCE_KERNELS_INT_INTERNAL_H_

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "inference/kernels/int.h"
#include "inference/kernels/internal.h"

namespace qatk::inference::internal {

inline int64_t RoundUp64(int64_t n) { return (n + 63) / 64 * 64; }
inline int64_t IntBlockElems(WType t) { return 64 * CodesPerByte(t); }

// The activation quantizer of a matrix (QuantizeActivations), its constants
// computed once. Quantize(x) is the reference code of one element.
struct ActQuant {
  float inv, flo, fhi;  // 1 / act_scale; lo - 1, hi + 1 as floats
  int lo, hi;           // -Qn, Qp
  bool even;            // half-even rounding (else half away from zero)

  explicit ActQuant(const QMatrix& w);
  // v = x * inv is clamped to [lo-1, hi+1] first (rounding is monotonic and
  // integers are fixed points, so clamping before and after rounding gives
  // the clamp of the rounded value), then t = trunc(v) by conversion and
  // f = v - t (exact for |v| < 2^23) decides the rounding.
  int8_t Quantize(float x) const {
    float v = x * inv;
    v = v < flo ? flo : (v > fhi ? fhi : v);
    const int t = static_cast<int>(v);
    const float f = v - static_cast<float>(t);
    const int away = f > 0.0f ? 1 : -1;
    const float af = f < 0.0f ? -f : f;
    const bool up = af > 0.5f || (af == 0.5f && (!even || (t & 1) != 0));
    int r = t + (up ? away : 0);
    r = r < lo ? lo : (r > hi ? hi : r);
    return static_cast<int8_t>(r);
  }
};

// q[n] = codes of x[n], the same as p.Quantize per element; returns their
// sum. AVX2 (x86_avx2_int.cc, x86 builds only): call only where CpuHasAvx2().
int32_t QuantizeActAvx2(const ActQuant& p, const float* x, int8_t* q, int64_t n);

// act_row_bytes of the SIMD kernels (0 for weight-only matrices).
size_t SimdIntActBytes(const QMatrix& w);
// prepare of the SIMD kernels: quantize (reference codec; AVX2 on x86,
// ActQuant::Quantize elsewhere), permute, sum.
void SimdIntPrepare(const QMatrix& w, const float* x, void* out);
// The weight-only fp32 path: y = row_scale * sum x * code.
void FloatIntRows(const QMatrix& w, const void* act, size_t act_stride, int n_tok, float* y,
                  int64_t y_stride, int64_t r0, int64_t r1);

// Exact sums over `nblocks` 64-byte weight blocks of code * act (SIMD
// layout) for N activation rows a[0..N-1] at once (the weight block is
// unpacked once per N tokens); sums[j] is the int32 stored after row j's
// codes; out[j] receives the dot product.
using IntBlockDotN = void (*)(const uint8_t* w_row, const int8_t* const* a, int64_t nblocks,
                              const int32_t* sums, int32_t* out);

// Decode (one token): exact sums over `nblocks` 64-byte blocks of 4
// consecutive weight rows (row r at w + r * row_bytes) with one activation
// row a (SIMD layout, code sum `sum`); out[r] receives row r's dot product.
// One pass keeps 4 independent accumulator chains and shares the
// activation loads.
using IntRowDot4 = void (*)(const uint8_t* w, size_t row_bytes, const int8_t* a, int64_t nblocks,
                            int32_t sum, int32_t* out);

// One token, rows [r0, r1) (at least 4): Rows4 for groups of 4 rows, the
// last group overlapping the previous one when (r1 - r0) % 4 != 0.
template <IntRowDot4 Rows4>
void SimdIntRowsDecode(const QMatrix& w, const int8_t* a, float* y, int64_t r0, int64_t r1) {
  const int64_t be = IntBlockElems(w.type);
  const int64_t nb = w.cols / be;
  int32_t sum;
  std::memcpy(&sum, a + RoundUp64(w.cols), 4);
  for (int64_t r = r0; r < r1; r += 4) {
    if (r + 4 > r1) r = r1 - 4;
    int32_t acc[4];
    Rows4(w.Row(r), w.row_bytes, a, nb, sum, acc);
    for (int i = 0; i < 4; ++i) {
      const uint8_t* row = w.Row(r + i);
      for (int64_t k = nb * be; k < w.cols; ++k) acc[i] += CodeAt(w.type, row, k) * a[k];
      y[r + i] = static_cast<float>(acc[i]) * (w.act_scale * w.row_scales[r + i]);
    }
  }
}

// Rows loop of the SIMD targets: Dot4 for groups of 4 tokens, Dot1 for the
// rest; tails (cols % block) in scalar. With Rows4 set, a single token goes
// through Rows4 for groups of 4 rows.
template <IntBlockDotN Dot1, IntBlockDotN Dot4, IntRowDot4 Rows4 = nullptr>
void SimdIntRows(const QMatrix& w, const void* act, size_t act_stride, int n_tok, float* y,
                 int64_t y_stride, int64_t r0, int64_t r1) {
  if (w.act_scale == 0.0f) {
    FloatIntRows(w, act, act_stride, n_tok, y, y_stride, r0, r1);
    return;
  }
  const int64_t be = IntBlockElems(w.type);
  const int64_t nb = w.cols / be;
  const int64_t sum_off = RoundUp64(w.cols);
  const uint8_t* a0 = static_cast<const uint8_t*>(act);
  if constexpr (Rows4 != nullptr) {
    if (n_tok == 1 && r1 - r0 >= 4) {
      SimdIntRowsDecode<Rows4>(w, reinterpret_cast<const int8_t*>(a0), y, r0, r1);
      return;
    }
  }
  for (int t0 = 0; t0 < n_tok; t0 += kTokBlock) {
    const int t1 = n_tok < t0 + kTokBlock ? n_tok : t0 + kTokBlock;
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* row = w.Row(r);
      const float s = w.act_scale * w.row_scales[r];
      for (int t = t0; t < t1;) {
        const int n = t1 - t >= 4 ? 4 : 1;
        const int8_t* a[4];
        int32_t sums[4], acc[4];
        for (int j = 0; j < n; ++j) {
          a[j] = reinterpret_cast<const int8_t*>(a0 + (t + j) * act_stride);
          std::memcpy(&sums[j], a[j] + sum_off, 4);
        }
        (n == 4 ? Dot4 : Dot1)(row, a, nb, sums, acc);
        for (int j = 0; j < n; ++j) {
          for (int64_t k = nb * be; k < w.cols; ++k) acc[j] += CodeAt(w.type, row, k) * a[j][k];
          y[(t + j) * y_stride + r] = static_cast<float>(acc[j]) * s;
        }
        t += n;
      }
    }
  }
}

// The x16 activation layout (above): act_row_bytes and prepare of the
// scalar reference and of the SIMD targets (AVX2 quantizer); equal bytes.
size_t IntX16ActBytes(const QMatrix& w);
void IntX16PrepareRef(const QMatrix& w, const float* x, void* out);
void IntX16PrepareAvx2(const QMatrix& w, const float* x, void* out);

}  // namespace qatk::inference::internal

#endif  // QATK_INFERENCE_KERNELS_INT_INTERNAL_H_
