// AVX2 mobile int kernels. int4/int2 weight codes become offset binary
// (code + 2^(bits-1), unsigned) so _mm256_maddubs_epi16 multiplies them with
// the signed int8 activations without saturation (per 16-bit lane at most
// kPerByte pairs of 2*15*128 (int4) or 2*3*128 (int2)); the offset is removed
// with the stored activation sum. int8 weights widen to int16
// (_mm256_madd_epi16, exact). All sums equal the scalar int32 sums.
#include <immintrin.h>

#include <cstdint>

#include "inference/kernels/int_internal.h"

namespace qatk::inference::internal {
namespace {

#pragma GCC push_options
#pragma GCC target("avx2")

inline int32_t HsumI32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

inline __m256i Load(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// int4 (kPerByte 2) / int2 (4): per 32-byte half of each 64-byte block.
template <int kPerByte, int N>
void DotPacked(const uint8_t* w, const int8_t* const* a, int64_t nb, const int32_t* sums,
               int32_t* out) {
  constexpr int kBits = 8 / kPerByte;
  const __m256i mask = _mm256_set1_epi8((1 << kBits) - 1);
  const __m256i off = _mm256_set1_epi8(1 << (kBits - 1));
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc[N];
  for (int j = 0; j < N; ++j) acc[j] = _mm256_setzero_si256();
  for (int64_t b = 0; b < nb; ++b) {
    for (int h = 0; h < 2; ++h) {
      const __m256i v = Load(w + b * 64 + h * 32);
      __m256i f[kPerByte];
      for (int i = 0; i < kPerByte; ++i) {
        f[i] = _mm256_xor_si256(_mm256_and_si256(_mm256_srli_epi16(v, i * kBits), mask), off);
      }
      for (int j = 0; j < N; ++j) {
        const int8_t* ab = a[j] + b * 64 * kPerByte + h * 32;
        __m256i p = _mm256_maddubs_epi16(f[0], Load(ab));
        for (int i = 1; i < kPerByte; ++i) {
          p = _mm256_add_epi16(p, _mm256_maddubs_epi16(f[i], Load(ab + i * 64)));
        }
        acc[j] = _mm256_add_epi32(acc[j], _mm256_madd_epi16(p, ones));
      }
    }
  }
  for (int j = 0; j < N; ++j) {
    out[j] = static_cast<int32_t>(static_cast<uint32_t>(HsumI32(acc[j])) -
                                  (1u << (kBits - 1)) * static_cast<uint32_t>(sums[j]));
  }
}

template <int N>
void DotInt8(const uint8_t* w, const int8_t* const* a, int64_t nb, const int32_t* /*sums*/,
             int32_t* out) {
  __m256i acc[N];
  for (int j = 0; j < N; ++j) acc[j] = _mm256_setzero_si256();
  for (int64_t i = 0; i < nb * 4; ++i) {  // 16 codes per step
    const __m256i wv =
        _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i * 16)));
    for (int j = 0; j < N; ++j) {
      const __m256i av =
          _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a[j] + i * 16)));
      acc[j] = _mm256_add_epi32(acc[j], _mm256_madd_epi16(wv, av));
    }
  }
  for (int j = 0; j < N; ++j) out[j] = HsumI32(acc[j]);
}

// Codes of 8 floats, ActQuant::Quantize lane by lane (int32).
inline __m256i Quantize8(const ActQuant& p, const float* x) {
  __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x), _mm256_set1_ps(p.inv));
  v = _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(p.flo)), _mm256_set1_ps(p.fhi));
  const __m256i t = _mm256_cvttps_epi32(v);
  const __m256 f = _mm256_sub_ps(v, _mm256_cvtepi32_ps(t));
  const __m256 af = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), f);
  const __m256 half = _mm256_set1_ps(0.5f);
  __m256 up = _mm256_cmp_ps(af, half, _CMP_GT_OQ);
  const __m256 tie = _mm256_cmp_ps(af, half, _CMP_EQ_OQ);
  const __m256i odd = _mm256_slli_epi32(t, 31);  // sign bit = t & 1
  up = _mm256_or_ps(up, p.even ? _mm256_and_ps(tie, _mm256_castsi256_ps(odd)) : tie);
  // up: all ones, or (even ties) the sign bit alone: both test as "set" by srai.
  const __m256i up_i = _mm256_srai_epi32(_mm256_castps_si256(up), 31);
  // away = f > 0 ? 1 : -1 (all ones | 1 = -1), as in Quantize.
  const __m256i not_pos = _mm256_castps_si256(_mm256_cmp_ps(f, _mm256_setzero_ps(), _CMP_NGT_UQ));
  const __m256i away = _mm256_or_si256(not_pos, _mm256_set1_epi32(1));
  __m256i r = _mm256_add_epi32(t, _mm256_and_si256(up_i, away));
  r = _mm256_max_epi32(r, _mm256_set1_epi32(p.lo));
  return _mm256_min_epi32(r, _mm256_set1_epi32(p.hi));
}

int32_t QuantizeActAvx2Impl(const ActQuant& p, const float* x, int8_t* q, int64_t n) {
  __m256i sum = _mm256_setzero_si256();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m256i r[4];
    for (int u = 0; u < 4; ++u) {
      r[u] = Quantize8(p, x + i + 8 * u);
      sum = _mm256_add_epi32(sum, r[u]);
    }
    // packs interleave the 128-bit lanes; the permute restores the order.
    const __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(r[0], r[1]),
                                         _mm256_packs_epi32(r[2], r[3]));
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + i), _mm256_permutevar8x32_epi32(b, order));
  }
  int32_t total = HsumI32(sum);
  for (; i < n; ++i) total += q[i] = p.Quantize(x[i]);
  return total;
}

#pragma GCC pop_options

}  // namespace

int32_t QuantizeActAvx2(const ActQuant& p, const float* x, int8_t* q, int64_t n) {
  return QuantizeActAvx2Impl(p, x, q, n);
}

void RegisterAvx2IntKernels() {
  auto add = [](WType t, decltype(MatMulKernel::rows) rows) {
    RegisterMatMulKernel(t, {"avx2", CpuHasAvx2, SimdIntActBytes, SimdIntPrepare, rows});
  };
  add(WType::kInt8Channel, SimdIntRows<DotInt8<1>, DotInt8<4>>);
  add(WType::kInt4Channel, SimdIntRows<DotPacked<2, 1>, DotPacked<2, 4>>);
  add(WType::kInt2Channel, SimdIntRows<DotPacked<4, 1>, DotPacked<4, 4>>);
}

}  // namespace qatk::inference::internal
