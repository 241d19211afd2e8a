// aarch64 SMMLA kernels of Q8_0 / Q4_0 for prefill (compiled with
// -march=armv8.6-a+i8mm; chosen when HWCAP2_I8MM says so): one SMMLA
// multiplies 8 codes of 2 weight rows by 8 codes of 2 tokens, so a 2 x 2
// tile of (row, token) block sums costs 4 instructions per block. Single
// rows / tokens left over use SDOT. Exact block sums in the scalar
// reference's float order: results equal the reference.
#include <algorithm>

#include "inference/kernels/arm_neon_common.h"

#if !defined(__ARM_FEATURE_MATMUL_INT8) || !defined(__ARM_FEATURE_DOTPROD)
#error "arm_i8mm_blocks.cc needs -march=armv8.6-a+i8mm (CMakeLists.txt)"
#endif

namespace qatk::inference::internal {
namespace {

// The 32 signed weight codes of block b of a row: elements 0..15, 16..31.
template <WType kType>
inline void Codes(const uint8_t* row, int64_t b, int8x16_t* lo, int8x16_t* hi) {
  if constexpr (kType == WType::kQ8_0) {
    const BlockQ8_0& x = reinterpret_cast<const BlockQ8_0*>(row)[b];
    *lo = vld1q_s8(x.qs);
    *hi = vld1q_s8(x.qs + 16);
  } else {
    UnpackQ4_0(reinterpret_cast<const BlockQ4_0*>(row)[b], lo, hi);
  }
}

template <WType kType>
inline uint16_t Scale(const uint8_t* row, int64_t b) {
  if constexpr (kType == WType::kQ8_0) return reinterpret_cast<const BlockQ8_0*>(row)[b].d;
  return reinterpret_cast<const BlockQ4_0*>(row)[b].d;
}

// lanes: [row0 tok0, row0 tok1, row1 tok0, row1 tok1].
inline int32x4_t Mmla(int32x4_t acc, int8x16_t w0, int8x16_t w1, int8x16_t a0, int8x16_t a1) {
  acc = vmmlaq_s32(acc, vcombine_s8(vget_low_s8(w0), vget_low_s8(w1)),
                   vcombine_s8(vget_low_s8(a0), vget_low_s8(a1)));
  return vmmlaq_s32(acc, vcombine_s8(vget_high_s8(w0), vget_high_s8(w1)),
                    vcombine_s8(vget_high_s8(a0), vget_high_s8(a1)));
}

template <WType kType, float (*Dot)(const uint8_t*, const void*, int64_t)>
void RowsMmla(const QMatrix& w, const void* act, size_t act_stride, int n_tok, float* y,
              int64_t y_stride, int64_t r0, int64_t r1) {
  const uint8_t* a = static_cast<const uint8_t*>(act);
  const int64_t nb = w.cols / 32;
  for (int t0 = 0; t0 < n_tok; t0 += kTokBlock) {
    const int t1 = std::min(n_tok, t0 + kTokBlock);
    int64_t r = r0;
    for (; r + 2 <= r1; r += 2) {
      const uint8_t* w0 = w.Row(r);
      const uint8_t* w1 = w.Row(r + 1);
      int t = t0;
      for (; t + 2 <= t1; t += 2) {
        const BlockQ8_0* ya = reinterpret_cast<const BlockQ8_0*>(a + t * act_stride);
        const BlockQ8_0* yb = reinterpret_cast<const BlockQ8_0*>(a + (t + 1) * act_stride);
        float s[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (int64_t b = 0; b < nb; ++b) {
          int8x16_t x0l, x0h, x1l, x1h;
          Codes<kType>(w0, b, &x0l, &x0h);
          Codes<kType>(w1, b, &x1l, &x1h);
          int32x4_t acc = vdupq_n_s32(0);
          acc = Mmla(acc, x0l, x1l, vld1q_s8(ya[b].qs), vld1q_s8(yb[b].qs));
          acc = Mmla(acc, x0h, x1h, vld1q_s8(ya[b].qs + 16), vld1q_s8(yb[b].qs + 16));
          const float d0 = H2F(Scale<kType>(w0, b)), d1 = H2F(Scale<kType>(w1, b));
          const float da = H2F(ya[b].d), db = H2F(yb[b].d);
          s[0] += vgetq_lane_s32(acc, 0) * (d0 * da);
          s[1] += vgetq_lane_s32(acc, 1) * (d0 * db);
          s[2] += vgetq_lane_s32(acc, 2) * (d1 * da);
          s[3] += vgetq_lane_s32(acc, 3) * (d1 * db);
        }
        y[t * y_stride + r] = s[0];
        y[(t + 1) * y_stride + r] = s[1];
        y[t * y_stride + r + 1] = s[2];
        y[(t + 1) * y_stride + r + 1] = s[3];
      }
      for (; t < t1; ++t) {
        y[t * y_stride + r] = Dot(w0, a + t * act_stride, w.cols);
        y[t * y_stride + r + 1] = Dot(w1, a + t * act_stride, w.cols);
      }
    }
    for (; r < r1; ++r) {
      for (int t = t0; t < t1; ++t) y[t * y_stride + r] = Dot(w.Row(r), a + t * act_stride, w.cols);
    }
  }
}

}  // namespace

void RegisterI8mmBlockKernels() {
  auto add = [](WType t, decltype(MatMulKernel::rows) rows) {
    RegisterMatMulKernel(t, {"i8mm", CpuHasArmI8mm, Q8RowBytes, PrepareQ8Neon, rows});
  };
  add(WType::kQ8_0, RowsMmla<WType::kQ8_0, DotQ8_0>);
  add(WType::kQ4_0, RowsMmla<WType::kQ4_0, DotQ4_0>);
}

}  // namespace qatk::inference::internal
