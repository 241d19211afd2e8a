// AVX2 kernels for Q4_K and Q6_K weights against Q8_K activations (the
// scalar reference and the activation choice: scalar_kquants.cc). Each
// super-block's integer sums are exact and the float step is the
// reference's, so results differ from the scalar kernel only where the
// compiler contracts that step into an FMA.
#include <immintrin.h>

#include <cstring>

#include "formats/quant/fp16.h"
#include "formats/quant/kquants.h"
#include "inference/kernels/internal.h"

namespace qatk::inference::internal {
namespace {

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

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
    // Mins against the 16-element activation sums, pairwise per sub-block.
    const __m256i bs = _mm256_madd_epi16(
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].bsums)),
        _mm256_cvtepu8_epi16(_mm_set_epi8(mn[7], mn[7], mn[6], mn[6], mn[5], mn[5], mn[4], mn[4], mn[3],
                                          mn[3], mn[2], mn[2], mn[1], mn[1], mn[0], mn[0])));
    __m256i acc = _mm256_setzero_si256();
    for (int k = 0; k < 4; ++k) {
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].qs + 32 * k));
      const __m256i lo = _mm256_and_si256(q, m4);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
      const __m256i a0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs + 64 * k));
      const __m256i a1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs + 64 * k + 32));
      // |15 * a| pairs stay far inside int16.
      const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, a0), _mm256_set1_epi16(sc[2 * k]));
      const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, a1), _mm256_set1_epi16(sc[2 * k + 1]));
      acc = _mm256_add_epi32(acc, _mm256_add_epi32(p0, p1));
    }
    const int32_t sumi = HsumI32(acc), summ = HsumI32(bs);
    s += Fp16ToFp32(x[i].d) * y[i].d * static_cast<float>(sumi) -
         Fp16ToFp32(x[i].dmin) * y[i].d * static_cast<float>(summ);
  }
  return s;
}

// Q6_K codes enter as unsigned u = q + 32 (0..63); sum(q a) = sum(u a) -
// 32 sum(a), and sum(a) per 16 elements is the activation's bsums.
float DotQ6_K(const uint8_t* w, const void* a, int64_t n) {
  const BlockQ6_K* x = reinterpret_cast<const BlockQ6_K*>(w);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(a);
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i m3 = _mm256_set1_epi8(0x03);
  float s = 0.0f;
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x[i].scales)));
    const __m256i corr =
        _mm256_madd_epi16(sc16, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].bsums)));
    __m256i acc = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i ql0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].ql + 64 * h));
      const __m256i ql1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].ql + 64 * h + 32));
      const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].qh + 32 * h));
      __m256i u[4];
      u[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4));
      u[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m3), 4));
      u[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m3), 4));
      u[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m3), 4));
      for (int k = 0; k < 4; ++k) {
        const int sb = 8 * h + 2 * k;  // sub-block of the first 16 of these 32 elements
        const __m256i av =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs + 128 * h + 32 * k));
        // 63 * |a| pairs fit int16 (<= 16128).
        const __m256i p = _mm256_maddubs_epi16(u[k], av);
        const __m256i scv = _mm256_setr_m128i(_mm_set1_epi16(x[i].scales[sb]), _mm_set1_epi16(x[i].scales[sb + 1]));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, scv));
      }
    }
    const int32_t sumi = HsumI32(acc) - 32 * HsumI32(corr);
    s += Fp16ToFp32(x[i].d) * y[i].d * static_cast<float>(sumi);
  }
  return s;
}

#pragma GCC pop_options

MatMulKernel Avx2Kernel(void (*rows)(const QMatrix&, const void*, size_t, int, float*, int64_t,
                                     int64_t, int64_t)) {
  MatMulKernel k;
  k.target = "avx2";
  k.supported = CpuHasAvx2;
  k.act_row_bytes = Q8KRowBytes;
  k.prepare = PrepareQ8K;
  k.rows = rows;
  return k;
}

}  // namespace

void RegisterAvx2KQuantKernels() {
  RegisterMatMulKernel(WType::kQ4_K, Avx2Kernel(RowsLoop<DotQ4_K>));
  RegisterMatMulKernel(WType::kQ6_K, Avx2Kernel(RowsLoop<DotQ6_K>));
}

}  // namespace qatk::inference::internal
