// AVX-512 VNNI kernels for Q4_K and Q6_K weights against Q8_K activations
// (the scalar reference and the activation choice: scalar_kquants.cc).
// One vpdpbusd covers 64 elements: the weight codes as unsigned bytes
// (Q4_K nibbles; Q6_K codes + 32) times the int8 activations, 4 products
// per int32 lane, then the lanes are scaled by their sub-block's integer
// scale. The super-block's integer sums are exact, so results equal the
// scalar kernel's up to an FMA in the final float step.
#include <immintrin.h>

#include <cstring>

#include "formats/quant/fp16.h"
#include "formats/quant/kquants.h"
#include "inference/kernels/internal.h"

namespace qatk::inference::internal {
namespace {

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")

inline int32_t HsumI32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

float DotQ4_K(const uint8_t* w, const void* a, int64_t n) {
  const BlockQ4_K* x = reinterpret_cast<const BlockQ4_K*>(w);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(a);
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  float s = 0.0f;
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    uint8_t sc[8], mn[8];
    for (int j = 0; j < 8; ++j) Q4_KScaleMin(x[i].scales, j, &sc[j], &mn[j]);
    const __m256i bs = _mm256_madd_epi16(
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].bsums)),
        _mm256_cvtepu8_epi16(_mm_set_epi8(mn[7], mn[7], mn[6], mn[6], mn[5], mn[5], mn[4], mn[4], mn[3],
                                          mn[3], mn[2], mn[2], mn[1], mn[1], mn[0], mn[0])));
    __m512i acc = _mm512_setzero_si512();
    for (int k = 0; k < 4; ++k) {
      // Elements 64k..64k+63: sub-block 2k in the low nibbles, 2k+1 in the
      // high ones, matching the activation bytes in order.
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].qs + 32 * k));
      const __m512i u = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_and_si256(q, m4)),
                                           _mm256_and_si256(_mm256_srli_epi16(q, 4), m4), 1);
      const __m512i av = _mm512_loadu_si512(y[i].qs + 64 * k);
      const __m512i scv = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi32(sc[2 * k])),
                                             _mm256_set1_epi32(sc[2 * k + 1]), 1);
      acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), u, av), scv));
    }
    const int32_t sumi = _mm512_reduce_add_epi32(acc), summ = HsumI32(bs);
    s += Fp16ToFp32(x[i].d) * y[i].d * static_cast<float>(sumi) -
         Fp16ToFp32(x[i].dmin) * y[i].d * static_cast<float>(summ);
  }
  return s;
}

// Q6_K codes enter as u = q + 32; the 32 sum(a) term comes from bsums.
float DotQ6_K(const uint8_t* w, const void* a, int64_t n) {
  const BlockQ6_K* x = reinterpret_cast<const BlockQ6_K*>(w);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(a);
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i m3 = _mm256_set1_epi8(0x03);
  // Lane l of a 64-element vpdpbusd holds elements 4l..4l+3: sub-block l/4.
  const __m512i lane_group = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
  float s = 0.0f;
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const __m128i sc8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[i].scales));
    const __m512i sc32 = _mm512_cvtepi8_epi32(sc8);
    const __m256i corr = _mm256_madd_epi16(_mm256_cvtepi8_epi16(sc8),
                                           _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].bsums)));
    __m512i acc = _mm512_setzero_si512();
    for (int h = 0; h < 2; ++h) {
      const __m256i ql0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].ql + 64 * h));
      const __m256i ql1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].ql + 64 * h + 32));
      const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].qh + 32 * h));
      const __m256i u0 = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4));
      const __m256i u1 = _mm256_or_si256(_mm256_and_si256(ql1, m4),
                                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m3), 4));
      const __m256i u2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m3), 4));
      const __m256i u3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m3), 4));
      const __m512i ua = _mm512_inserti64x4(_mm512_castsi256_si512(u0), u1, 1);  // elements 128h + 0..63
      const __m512i ub = _mm512_inserti64x4(_mm512_castsi256_si512(u2), u3, 1);  // 128h + 64..127
      const __m512i aa = _mm512_loadu_si512(y[i].qs + 128 * h);
      const __m512i ab = _mm512_loadu_si512(y[i].qs + 128 * h + 64);
      const __m512i sa = _mm512_permutexvar_epi32(_mm512_add_epi32(lane_group, _mm512_set1_epi32(8 * h)), sc32);
      const __m512i sb = _mm512_permutexvar_epi32(_mm512_add_epi32(lane_group, _mm512_set1_epi32(8 * h + 4)), sc32);
      acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), ua, aa), sa));
      acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), ub, ab), sb));
    }
    const int32_t sumi = _mm512_reduce_add_epi32(acc) - 32 * HsumI32(corr);
    s += Fp16ToFp32(x[i].d) * y[i].d * static_cast<float>(sumi);
  }
  return s;
}

#pragma GCC pop_options

MatMulKernel VnniKernel(void (*rows)(const QMatrix&, const void*, size_t, int, float*, int64_t,
                                     int64_t, int64_t)) {
  MatMulKernel k;
  k.target = "avx512vnni";
  k.supported = CpuHasAvx512Vnni;
  k.act_row_bytes = Q8KRowBytes;
  k.prepare = PrepareQ8K;
  k.rows = rows;
  return k;
}

}  // namespace

void RegisterAvx512KQuantKernels() {
  RegisterMatMulKernel(WType::kQ4_K, VnniKernel(RowsLoop<DotQ4_K>));
  RegisterMatMulKernel(WType::kQ6_K, VnniKernel(RowsLoop<DotQ6_K>));
}

}  // namespace qatk::inference::internal
