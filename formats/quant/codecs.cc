// Reference codecs. Compiled with -ffp-contract=off (see formats/CMakeLists.txt):
// ggml's reference quantizers evaluate x*id + 8.5f as two roundings, and an
// FMA would change ties.
#include "formats/quant/codecs.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "formats/quant/fp16.h"
#include "formats/util/cpu_features.h"

namespace qatk {
namespace {

// C's float->int conversion as ggml's x86-64 build performs it (cvttss2si):
// truncation toward zero; NaN and values outside int32 give INT32_MIN. This
// only matters for blocks whose scale underflows (subnormal inputs), where
// 1/d is infinite and x*id is +-inf or NaN; ggml then stores code 0
// (golden fixtures in tests/formats/testdata pin this down).
inline int32_t TruncToInt32(float v) {
  if (!(v > -2147483904.0f && v < 2147483648.0f)) return INT32_MIN;
  return static_cast<int32_t>(v);
}
// (int8_t)float on the same build: the low byte of the int32 conversion.
inline int8_t TruncToInt8(float v) {
  return static_cast<int8_t>(static_cast<uint8_t>(static_cast<uint32_t>(TruncToInt32(v)) & 0xFFu));
}

}  // namespace

void Q4_0Codes(const float* x, uint8_t* q, float* d_fp32) {
  float amax = 0.0f;
  float max = 0.0f;
  for (int j = 0; j < kQK4_0; ++j) {
    const float v = x[j];
    if (amax < std::fabs(v)) {  // strict: the first extreme wins ties
      amax = std::fabs(v);
      max = v;
    }
  }
  const float d = max / -8;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  for (int j = 0; j < kQK4_0; ++j) {
    const float xs = x[j] * id;  // rounded before the add, as in ggml
    const int8_t t = TruncToInt8(xs + 8.5f);
    q[j] = static_cast<uint8_t>(t < 15 ? t : 15);
  }
  *d_fp32 = d;
}

void QuantizeBlockQ4_0(const float* x, BlockQ4_0* out) {
  uint8_t q[kQK4_0];
  float d;
  Q4_0Codes(x, q, &d);
  out->d = Fp32ToFp16(d);
  for (int j = 0; j < kQK4_0 / 2; ++j) {
    out->qs[j] = static_cast<uint8_t>(q[j] | (q[j + kQK4_0 / 2] << 4));
  }
}

void Q4_0CodesWithScale(const float* x, float d, uint8_t* q) {
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  for (int j = 0; j < kQK4_0; ++j) {
    const float v = x[j] * id + 8.5f;  // two roundings, as in ggml (no FMA here)
    // Clamped in float: a learned d can put x*id far outside the codes. A
    // non-finite x*id (1/d overflowed) gives code 0, as ggml's cast does.
    q[j] = std::isfinite(v) ? static_cast<uint8_t>(std::trunc(std::min(std::max(v, 0.0f), 15.0f))) : 0;
  }
}

void QuantizeBlockQ4_0WithScale(const float* x, float d, BlockQ4_0* out) {
  uint8_t q[kQK4_0];
  Q4_0CodesWithScale(x, d, q);
  out->d = Fp32ToFp16(d);
  for (int j = 0; j < kQK4_0 / 2; ++j) {
    out->qs[j] = static_cast<uint8_t>(q[j] | (q[j + kQK4_0 / 2] << 4));
  }
}

void DequantizeBlockQ4_0(const BlockQ4_0& b, float* y) {
  const float d = Fp16ToFp32(b.d);
  for (int j = 0; j < kQK4_0 / 2; ++j) {
    y[j] = static_cast<float>((b.qs[j] & 0x0F) - 8) * d;
    y[j + kQK4_0 / 2] = static_cast<float>((b.qs[j] >> 4) - 8) * d;
  }
}

void QuantizeBlockQ8_0(const float* x, BlockQ8_0* out) {
  float amax = 0.0f;
  for (int j = 0; j < kQK8_0; ++j) amax = std::fmax(amax, std::fabs(x[j]));
  const float d = amax / ((1 << 7) - 1);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  out->d = Fp32ToFp16(d);
  for (int j = 0; j < kQK8_0; ++j) out->qs[j] = TruncToInt8(std::round(x[j] * id));
}

void QuantizeBlockQ8_0Act(const float* x, BlockQ8_0* out) {
  float amax = 0.0f;
  for (int j = 0; j < kQK8_0; ++j) amax = std::fmax(amax, std::fabs(x[j]));
  out->d = Fp32ToFp16(amax / 127.0f);
  const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
  // nearbyint under the default rounding mode = round half to even; then
  // cvtps_epi32 + saturating packs: NaN/inf (a block whose 127/amax
  // overflows) become INT32_MIN and saturate to -128.
  for (int j = 0; j < kQK8_0; ++j) {
    const int32_t q = TruncToInt32(std::nearbyint(x[j] * id));
    out->qs[j] = static_cast<int8_t>(q < -128 ? -128 : q > 127 ? 127 : q);
  }
}

#if defined(__x86_64__) || defined(__i386__)
namespace {

// QuantizeBlockQ8_0Act with AVX2, block by block, bit for bit: the same fp32
// amax, 127/amax and x*id; cvtps rounds half to even (default MXCSR mode)
// and gives INT32_MIN for NaN/inf, which packs saturates to -128.
__attribute__((target("avx2"))) void QuantizeRowQ8_0ActAvx2(const float* x, BlockQ8_0* out,
                                                            int64_t n_blocks) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  for (int64_t i = 0; i < n_blocks; ++i) {
    const float* xb = x + i * kQK8_0;
    __m256 v[4];
    __m256 m = _mm256_setzero_ps();
    for (int j = 0; j < 4; ++j) {
      v[j] = _mm256_loadu_ps(xb + 8 * j);
      m = _mm256_max_ps(m, _mm256_and_ps(v[j], abs_mask));
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    out[i].d = Fp32ToFp16(amax / 127.0f);
    const __m256 vid = _mm256_set1_ps(amax != 0.0f ? 127.0f / amax : 0.0f);
    __m256i q[4];
    for (int j = 0; j < 4; ++j) q[j] = _mm256_cvtps_epi32(_mm256_mul_ps(v[j], vid));
    __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
    b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[i].qs), b);
  }
}

const bool kHasAvx2 = GetCpuFeatures().avx2;

}  // namespace
#endif

void QuantizeRowQ8_0Act(const float* x, BlockQ8_0* out, int64_t n_blocks) {
#if defined(__x86_64__) || defined(__i386__)
  if (kHasAvx2) {
    QuantizeRowQ8_0ActAvx2(x, out, n_blocks);
    return;
  }
#endif
  for (int64_t i = 0; i < n_blocks; ++i) QuantizeBlockQ8_0Act(x + i * kQK8_0, out + i);
}

void DequantizeBlockQ8_0(const BlockQ8_0& b, float* y) {
  const float d = Fp16ToFp32(b.d);
  for (int j = 0; j < kQK8_0; ++j) y[j] = static_cast<float>(b.qs[j]) * d;
}

void QuantizeBlockQ2_0(const float* x, BlockQ2_0* out) {
  float amax = 0.0f;
  for (int j = 0; j < kQK2_0; ++j) {
    const float a = std::fabs(x[j]);
    if (a > amax) amax = a;
  }
  const float d = amax;
  const float id = d > 0.0f ? 1.0f / d : 0.0f;
  out->d = Fp32ToFp16(d);
  std::memset(out->qs, 0, sizeof(out->qs));
  for (int j = 0; j < kQK2_0; ++j) {
    const int32_t r = TruncToInt32(std::round(x[j] * id));
    int q = r == INT32_MIN ? 0 : r + 1;  // ggml: INT32_MIN + 1 clamps to 0
    q = q < 0 ? 0 : (q > 3 ? 3 : q);
    out->qs[j / 4] |= static_cast<uint8_t>(q << ((j % 4) * 2));
  }
}

void DequantizeBlockQ2_0(const BlockQ2_0& b, float* y) {
  const float d = Fp16ToFp32(b.d);
  for (int j = 0; j < kQK2_0; ++j) {
    const int q = (b.qs[j / 4] >> ((j % 4) * 2)) & 3;
    y[j] = static_cast<float>(q - 1) * d;
  }
}

absl::Status QuantizeRow(GgmlType type, const float* x, int64_t n, void* dst) {
  const TypeTraits& t = Traits(type);
  if (n < 0 || n % t.block_size != 0) {
    return absl::InvalidArgumentError(absl::StrCat("row of ", n, " elements is not a multiple of ",
                                                   t.name, "'s block size ", t.block_size));
  }
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat("non-finite value ", x[i], " at element ", i, " cannot be quantized to ", t.name));
    }
  }
  auto* out = static_cast<uint8_t*>(dst);
  switch (type) {
    case GgmlType::kF32:
      std::memcpy(out, x, n * sizeof(float));
      break;
    case GgmlType::kF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h = Fp32ToFp16(x[i]);
        std::memcpy(out + 2 * i, &h, 2);
      }
      break;
    case GgmlType::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h = Fp32ToBf16(x[i]);
        std::memcpy(out + 2 * i, &h, 2);
      }
      break;
    case GgmlType::kQ4_0:
      for (int64_t b = 0; b < n / kQK4_0; ++b) {
        QuantizeBlockQ4_0(x + b * kQK4_0, reinterpret_cast<BlockQ4_0*>(out) + b);
      }
      break;
    case GgmlType::kQ8_0:
      for (int64_t b = 0; b < n / kQK8_0; ++b) {
        QuantizeBlockQ8_0(x + b * kQK8_0, reinterpret_cast<BlockQ8_0*>(out) + b);
      }
      break;
    case GgmlType::kQ2_0:
      for (int64_t b = 0; b < n / kQK2_0; ++b) {
        QuantizeBlockQ2_0(x + b * kQK2_0, reinterpret_cast<BlockQ2_0*>(out) + b);
      }
      break;
  }
  return absl::OkStatus();
}

void DequantizeRow(GgmlType type, const void* src, float* y, int64_t n) {
  const auto* in = static_cast<const uint8_t*>(src);
  switch (type) {
    case GgmlType::kF32:
      std::memcpy(y, in, n * sizeof(float));
      break;
    case GgmlType::kF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, in + 2 * i, 2);
        y[i] = Fp16ToFp32(h);
      }
      break;
    case GgmlType::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, in + 2 * i, 2);
        y[i] = Bf16ToFp32(h);
      }
      break;
    case GgmlType::kQ4_0:
      for (int64_t b = 0; b < n / kQK4_0; ++b) {
        DequantizeBlockQ4_0(reinterpret_cast<const BlockQ4_0*>(in)[b], y + b * kQK4_0);
      }
      break;
    case GgmlType::kQ8_0:
      for (int64_t b = 0; b < n / kQK8_0; ++b) {
        DequantizeBlockQ8_0(reinterpret_cast<const BlockQ8_0*>(in)[b], y + b * kQK8_0);
      }
      break;
    case GgmlType::kQ2_0:
      for (int64_t b = 0; b < n / kQK2_0; ++b) {
        DequantizeBlockQ2_0(reinterpret_cast<const BlockQ2_0*>(in)[b], y + b * kQK2_0);
      }
      break;
  }
}

}  // namespace qatk
