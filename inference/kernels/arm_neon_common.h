// Internal to the aarch64 kernel files (arm_*.cc): the NEON kernels of the
// GGUF block types and of the mobile int channel types, written once over
// an int8 dot primitive, Dot16, that each file compiles for its own -march:
// plain NEON (armv8-a: SMULL + SADALP) or SDOT (armv8.2-a+dotprod). Every
// integer sum is exact on both, so the int paths are bit-identical to the
// scalar reference; block kernels also keep its float order per block.
//
// Everything here has internal linkage (an unnamed namespace in a header is
// deliberate): each kernel file gets its own copy built with its own flags,
// so the linker can never hand an armv8.0 caller a dotprod copy.
#ifndef QATK_INFERENCE_KERNELS_ARM_NEON_COMMON_H_
#define QATK_INFERENCE_KERNELS_ARM_NEON_COMMON_H_

#include <arm_neon.h>

#include <cstdint>
#include <cstring>

#include "formats/quant/codecs.h"
#include "formats/quant/fp16.h"
#include "formats/quant/types.h"
#include "inference/kernels/int_internal.h"
#include "inference/kernels/internal.h"

namespace qatk::inference::internal {
namespace {

// acc + the products a[i] * b[i] (16 lanes) summed in some grouping of four
// int32 lanes; only the lanes' total is ever used.
inline int32x4_t Dot16(int32x4_t acc, int8x16_t a, int8x16_t b) {
#if defined(__ARM_FEATURE_DOTPROD)
  return vdotq_s32(acc, a, b);
#else
  acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
  return vpadalq_s16(acc, vmull_high_s8(a, b));
#endif
}

inline float H2F(uint16_t h) { return Fp16ToFp32(h); }

// --- GGUF block types (Q8_0 activations, the scalar PrepareQ8) -------------

inline int32_t BlockSumQ8_0(const BlockQ8_0& x, const BlockQ8_0& y) {
  int32x4_t acc = vdupq_n_s32(0);
  acc = Dot16(acc, vld1q_s8(x.qs), vld1q_s8(y.qs));
  acc = Dot16(acc, vld1q_s8(x.qs + 16), vld1q_s8(y.qs + 16));
  return vaddvq_s32(acc);
}

// Signed codes of a Q4_0 block: elements 0..15 (low nibbles), 16..31 (high).
inline void UnpackQ4_0(const BlockQ4_0& x, int8x16_t* lo, int8x16_t* hi) {
  const uint8x16_t v = vld1q_u8(x.qs);
  const int8x16_t eight = vdupq_n_s8(8);
  *lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0x0F))), eight);
  *hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), eight);
}

inline int32_t BlockSumQ4_0(const BlockQ4_0& x, const BlockQ8_0& y) {
  int8x16_t lo, hi;
  UnpackQ4_0(x, &lo, &hi);
  int32x4_t acc = vdupq_n_s32(0);
  acc = Dot16(acc, lo, vld1q_s8(y.qs));
  acc = Dot16(acc, hi, vld1q_s8(y.qs + 16));
  return vaddvq_s32(acc);
}

inline float DotQ8_0(const uint8_t* w, const void* a, int64_t n) {
  const BlockQ8_0* x = reinterpret_cast<const BlockQ8_0*>(w);
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(a);
  float s = 0.0f;
  for (int64_t i = 0; i < n / 32; ++i) s += BlockSumQ8_0(x[i], y[i]) * (H2F(x[i].d) * H2F(y[i].d));
  return s;
}

inline float DotQ4_0(const uint8_t* w, const void* a, int64_t n) {
  const BlockQ4_0* x = reinterpret_cast<const BlockQ4_0*>(w);
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(a);
  float s = 0.0f;
  for (int64_t i = 0; i < n / 32; ++i) s += BlockSumQ4_0(x[i], y[i]) * (H2F(x[i].d) * H2F(y[i].d));
  return s;
}

// Q2_0: element e of a 64-element block is crumb e % 4 of byte e / 4, code
// crumb - 1. The activations' 32 codes of each half are split by crumb
// (vld2 twice = element 4j + i in lane j of field i), so weight fields meet
// their activations without shuffling the weights.
inline float DotQ2_0(const uint8_t* w, const void* a, int64_t n) {
  const BlockQ2_0* x = reinterpret_cast<const BlockQ2_0*>(w);
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(a);
  const uint8x8_t three = vdup_n_u8(3);
  const int8x16_t one = vdupq_n_s8(1);
  float s = 0.0f;
  for (int64_t i = 0; i < n / 64; ++i) {
    float si = 0.0f;
    for (int k = 0; k < 2; ++k) {
      const BlockQ8_0& yb = y[2 * i + k];
      const uint8x8_t v = vld1_u8(x[i].qs + 8 * k);
      const int8x8x4_t av = vld4_s8(yb.qs);  // av.val[f][j] = element 4j + f
      const int8x16_t f01 = vsubq_s8(
          vreinterpretq_s8_u8(vcombine_u8(vand_u8(v, three), vand_u8(vshr_n_u8(v, 2), three))),
          one);
      const int8x16_t f23 = vsubq_s8(
          vreinterpretq_s8_u8(vcombine_u8(vand_u8(vshr_n_u8(v, 4), three), vshr_n_u8(v, 6))), one);
      int32x4_t acc = vdupq_n_s32(0);
      acc = Dot16(acc, f01, vcombine_s8(av.val[0], av.val[1]));
      acc = Dot16(acc, f23, vcombine_s8(av.val[2], av.val[3]));
      si += H2F(yb.d) * vaddvq_s32(acc);
    }
    s += H2F(x[i].d) * si;
  }
  return s;
}

inline void PrepareQ8Neon(const QMatrix& w, const float* x, void* out) {
  BlockQ8_0* b = static_cast<BlockQ8_0*>(out);
  for (int64_t i = 0; i < w.cols / 32; ++i) QuantizeBlockQ8_0Act(x + i * 32, b + i);
}

// --- mobile int channel types (SIMD activation layout, int_internal.h) -----

// Field i (0 .. kPerByte-1) of 16 weight bytes as signed codes.
template <int kPerByte>
inline int8x16_t Field(int8x16_t v, int i) {
  if constexpr (kPerByte == 1) {
    return v;
  } else if constexpr (kPerByte == 2) {
    return i == 0 ? vshrq_n_s8(vshlq_n_s8(v, 4), 4) : vshrq_n_s8(v, 4);
  } else {
    switch (i) {
      case 0: return vshrq_n_s8(vshlq_n_s8(v, 6), 6);
      case 1: return vshrq_n_s8(vshlq_n_s8(v, 4), 6);
      case 2: return vshrq_n_s8(vshlq_n_s8(v, 2), 6);
      default: return vshrq_n_s8(v, 6);
    }
  }
}

// IntBlockDotN: N tokens, one weight row. Field i of weight byte j meets
// activation i * 64 + j of the block: signed codes, so no offset and the
// stored sums are not needed.
template <int kPerByte, int N>
void IntDotN(const uint8_t* w, const int8_t* const* a, int64_t nb, const int32_t* /*sums*/,
             int32_t* out) {
  int32x4_t acc[N];
  for (int j = 0; j < N; ++j) acc[j] = vdupq_n_s32(0);
  for (int64_t b = 0; b < nb; ++b) {
    for (int q = 0; q < 4; ++q) {
      const int8x16_t v = vld1q_s8(reinterpret_cast<const int8_t*>(w + b * 64 + q * 16));
      for (int i = 0; i < kPerByte; ++i) {
        const int8x16_t f = Field<kPerByte>(v, i);
        for (int j = 0; j < N; ++j) {
          acc[j] = Dot16(acc[j], f, vld1q_s8(a[j] + b * 64 * kPerByte + i * 64 + q * 16));
        }
      }
    }
  }
  for (int j = 0; j < N; ++j) out[j] = vaddvq_s32(acc[j]);
}

// IntRowDot4: 4 weight rows, one token (decode); activation loads shared.
template <int kPerByte>
void IntRows4(const uint8_t* w, size_t row_bytes, const int8_t* a, int64_t nb, int32_t /*sum*/,
              int32_t* out) {
  int32x4_t acc[4];
  for (int r = 0; r < 4; ++r) acc[r] = vdupq_n_s32(0);
  for (int64_t b = 0; b < nb; ++b) {
    for (int q = 0; q < 4; ++q) {
      int8x16_t v[4];
      for (int r = 0; r < 4; ++r) {
        v[r] = vld1q_s8(reinterpret_cast<const int8_t*>(w + r * row_bytes + b * 64 + q * 16));
      }
      for (int i = 0; i < kPerByte; ++i) {
        const int8x16_t av = vld1q_s8(a + b * 64 * kPerByte + i * 64 + q * 16);
        for (int r = 0; r < 4; ++r) acc[r] = Dot16(acc[r], Field<kPerByte>(v[r], i), av);
      }
    }
  }
  for (int r = 0; r < 4; ++r) out[r] = vaddvq_s32(acc[r]);
}

}  // namespace
}  // namespace qatk::inference::internal

#endif  // QATK_INFERENCE_KERNELS_ARM_NEON_COMMON_H_
