// AVX2 mobile int kernels. Weight codes are turned into offset binary
// (code + 2^(bits-1), unsigned) so _mm256_maddubs_epi16 multiplies them with
// the signed int8 activations without saturation (int4: |pair| <= 2*15*128,
// int2: <= 2*3*128); the offset is removed with the stored activation sum.
// int8 weights widen to int16 (_mm256_madd_epi16). All sums exact.
#include <immintrin.h>

#include <cstdint>

#include "inference/kernels_int_internal.h"

namespace qatk::inference::internal {
namespace {

bool HasAvx2() { return __builtin_cpu_supports("avx2"); }

#pragma GCC push_options
#pragma GCC target("avx2")

inline int32_t HsumI32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

inline __m256i Load(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

int32_t DotInt4(const uint8_t* w, const int8_t* a, int64_t nb, int32_t sum) {
  const __m256i m4 = _mm256_set1_epi8(0x0F), x8 = _mm256_set1_epi8(0x08);
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc = _mm256_setzero_si256();
  for (int64_t b = 0; b < nb; ++b) {
    for (int h = 0; h < 2; ++h) {
      const __m256i v = Load(w + b * 64 + h * 32);
      const __m256i lo = _mm256_xor_si256(_mm256_and_si256(v, m4), x8);
      const __m256i hi = _mm256_xor_si256(_mm256_and_si256(_mm256_srli_epi16(v, 4), m4), x8);
      const int8_t* ab = a + b * 128 + h * 32;
      const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(lo, Load(ab)),
                                         _mm256_maddubs_epi16(hi, Load(ab + 64)));
      acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, ones));
    }
  }
  return static_cast<int32_t>(static_cast<uint32_t>(HsumI32(acc)) - 8u * static_cast<uint32_t>(sum));
}

int32_t DotInt2(const uint8_t* w, const int8_t* a, int64_t nb, int32_t sum) {
  const __m256i m2 = _mm256_set1_epi8(0x03), x2 = _mm256_set1_epi8(0x02);
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc = _mm256_setzero_si256();
  for (int64_t b = 0; b < nb; ++b) {
    for (int h = 0; h < 2; ++h) {
      const __m256i v = Load(w + b * 64 + h * 32);
      const int8_t* ab = a + b * 256 + h * 32;
      const __m256i f0 = _mm256_xor_si256(_mm256_and_si256(v, m2), x2);
      const __m256i f1 = _mm256_xor_si256(_mm256_and_si256(_mm256_srli_epi16(v, 2), m2), x2);
      const __m256i f2 = _mm256_xor_si256(_mm256_and_si256(_mm256_srli_epi16(v, 4), m2), x2);
      const __m256i f3 = _mm256_xor_si256(_mm256_and_si256(_mm256_srli_epi16(v, 6), m2), x2);
      __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(f0, Load(ab)),
                                   _mm256_maddubs_epi16(f1, Load(ab + 64)));
      p = _mm256_add_epi16(p, _mm256_maddubs_epi16(f2, Load(ab + 128)));
      p = _mm256_add_epi16(p, _mm256_maddubs_epi16(f3, Load(ab + 192)));
      acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, ones));
    }
  }
  return static_cast<int32_t>(static_cast<uint32_t>(HsumI32(acc)) - 2u * static_cast<uint32_t>(sum));
}

int32_t DotInt8(const uint8_t* w, const int8_t* a, int64_t nb, int32_t /*sum*/) {
  __m256i acc = _mm256_setzero_si256();
  for (int64_t i = 0; i < nb * 4; ++i) {  // 16 codes per step
    const __m256i wv = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i * 16)));
    const __m256i av = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + i * 16)));
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(wv, av));
  }
  return HsumI32(acc);
}

#pragma GCC pop_options

}  // namespace

void RegisterIntAvx2(WType t) {
  MatMulKernel k;
  k.target = "avx2";
  k.supported = HasAvx2;
  k.act_row_bytes = SimdIntActBytes;
  k.prepare = SimdIntPrepare;
  switch (t) {
    case WType::kInt4Channel: k.rows = SimdIntRows<DotInt4>; break;
    case WType::kInt2Channel: k.rows = SimdIntRows<DotInt2>; break;
    case WType::kInt8Channel: k.rows = SimdIntRows<DotInt8>; break;
    default: return;
  }
  RegisterMatMulKernel(t, k);
}

}  // namespace qatk::inference::internal
