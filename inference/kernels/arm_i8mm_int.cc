// aarch64 SMMLA kernels of the mobile int channel types for prefill
// (compiled with -march=armv8.6-a+i8mm; chosen when HWCAP2_I8MM says so):
// one SMMLA multiplies 8 codes of 2 weight rows by 8 codes of 2 tokens, so
// the weight fields are unpacked once per 2 x 2 tile instead of once per
// row. Decode (one token) and weight-only matrices take the SDOT paths.
// Exact int32 sums and the same float scaling as SimdIntRows: y equals the
// scalar reference bit for bit.
#include <algorithm>

#include "inference/kernels/arm_neon_common.h"

#if !defined(__ARM_FEATURE_MATMUL_INT8) || !defined(__ARM_FEATURE_DOTPROD)
#error "arm_i8mm_int.cc needs -march=armv8.6-a+i8mm (CMakeLists.txt)"
#endif

namespace qatk::inference::internal {
namespace {

// Sums of rows w0, w1 x tokens a0, a1 over nb 64-byte blocks (SIMD
// activation layout): lanes [w0 a0, w0 a1, w1 a0, w1 a1].
template <int kPerByte>
int32x4_t Tile2x2(const uint8_t* w0, const uint8_t* w1, const int8_t* a0, const int8_t* a1,
                  int64_t nb) {
  int32x4_t acc = vdupq_n_s32(0);
  for (int64_t b = 0; b < nb; ++b) {
    for (int q = 0; q < 4; ++q) {
      const int8x16_t v0 = vld1q_s8(reinterpret_cast<const int8_t*>(w0 + b * 64 + q * 16));
      const int8x16_t v1 = vld1q_s8(reinterpret_cast<const int8_t*>(w1 + b * 64 + q * 16));
      for (int i = 0; i < kPerByte; ++i) {
        const int8x16_t f0 = Field<kPerByte>(v0, i), f1 = Field<kPerByte>(v1, i);
        const int64_t off = b * 64 * kPerByte + i * 64 + q * 16;
        const int8x16_t x0 = vld1q_s8(a0 + off), x1 = vld1q_s8(a1 + off);
        acc = vmmlaq_s32(acc, vcombine_s8(vget_low_s8(f0), vget_low_s8(f1)),
                         vcombine_s8(vget_low_s8(x0), vget_low_s8(x1)));
        acc = vmmlaq_s32(acc, vcombine_s8(vget_high_s8(f0), vget_high_s8(f1)),
                         vcombine_s8(vget_high_s8(x0), vget_high_s8(x1)));
      }
    }
  }
  return acc;
}

template <int kPerByte>
void IntRowsMmla(const QMatrix& w, const void* act, size_t act_stride, int n_tok, float* y,
                 int64_t y_stride, int64_t r0, int64_t r1) {
  if (w.act_scale == 0.0f || n_tok < 2 || r1 - r0 < 2) {
    SimdIntRows<IntDotN<kPerByte, 1>, IntDotN<kPerByte, 4>, IntRows4<kPerByte>>(
        w, act, act_stride, n_tok, y, y_stride, r0, r1);
    return;
  }
  const int64_t be = IntBlockElems(w.type);
  const int64_t nb = w.cols / be;
  const uint8_t* a0 = static_cast<const uint8_t*>(act);
  auto tok = [&](int t) { return reinterpret_cast<const int8_t*>(a0 + t * act_stride); };
  // Tail columns (cols % block) in natural order, as SimdIntRows.
  auto tail = [&](const uint8_t* row, const int8_t* a) {
    int32_t s = 0;
    for (int64_t k = nb * be; k < w.cols; ++k) s += CodeAt(w.type, row, k) * a[k];
    return s;
  };
  for (int t0 = 0; t0 < n_tok; t0 += kTokBlock) {
    const int t1 = std::min(n_tok, t0 + kTokBlock);
    for (int64_t r = r0; r < r1; r += 2) {
      if (r + 2 > r1) r = r1 - 2;  // overlap: recomputes equal values
      const uint8_t* w0 = w.Row(r);
      const uint8_t* w1 = w.Row(r + 1);
      const float s0 = w.act_scale * w.row_scales[r], s1 = w.act_scale * w.row_scales[r + 1];
      for (int t = t0; t < t1; t += 2) {
        if (t1 - t0 < 2) {  // a lone token
          const int8_t* a[1] = {tok(t)};
          int32_t acc0, acc1;
          IntDotN<kPerByte, 1>(w0, a, nb, nullptr, &acc0);
          IntDotN<kPerByte, 1>(w1, a, nb, nullptr, &acc1);
          y[t * y_stride + r] = static_cast<float>(acc0 + tail(w0, a[0])) * s0;
          y[t * y_stride + r + 1] = static_cast<float>(acc1 + tail(w1, a[0])) * s1;
          break;
        }
        if (t + 2 > t1) t = t1 - 2;
        const int8_t* x0 = tok(t);
        const int8_t* x1 = tok(t + 1);
        const int32x4_t acc = Tile2x2<kPerByte>(w0, w1, x0, x1, nb);
        y[t * y_stride + r] = static_cast<float>(vgetq_lane_s32(acc, 0) + tail(w0, x0)) * s0;
        y[(t + 1) * y_stride + r] = static_cast<float>(vgetq_lane_s32(acc, 1) + tail(w0, x1)) * s0;
        y[t * y_stride + r + 1] = static_cast<float>(vgetq_lane_s32(acc, 2) + tail(w1, x0)) * s1;
        y[(t + 1) * y_stride + r + 1] =
            static_cast<float>(vgetq_lane_s32(acc, 3) + tail(w1, x1)) * s1;
      }
    }
  }
}

}  // namespace

void RegisterI8mmIntKernels() {
  auto add = [](WType t, decltype(MatMulKernel::rows) rows) {
    RegisterMatMulKernel(t, {"i8mm", CpuHasArmI8mm, SimdIntActBytes, SimdIntPrepare, rows});
  };
  add(WType::kInt8Channel, IntRowsMmla<1>);
  add(WType::kInt4Channel, IntRowsMmla<2>);
  add(WType::kInt2Channel, IntRowsMmla<4>);
}

}  // namespace qatk::inference::internal
