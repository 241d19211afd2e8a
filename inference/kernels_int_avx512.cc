// AVX-512 VNNI mobile int kernels (vpdpbusd: unsigned x signed bytes, four
// products per int32 lane, no saturation). Weight codes become offset binary
// (code + 2^(bits-1)); the offset is removed with the stored activation sum
// in wrapping uint32 arithmetic, so the result equals the scalar int32 sum.
// No AMX.
#include <immintrin.h>

#include <cstdint>

#include "inference/kernels_int_internal.h"

namespace qatk::inference::internal {
namespace {

bool HasAvx512Vnni() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vnni");
}

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vnni")

inline __m512i Load(const void* p) { return _mm512_loadu_si512(p); }

inline int32_t Finish(__m512i acc, uint32_t offset, int32_t sum) {
  return static_cast<int32_t>(static_cast<uint32_t>(_mm512_reduce_add_epi32(acc)) -
                              offset * static_cast<uint32_t>(sum));
}

int32_t DotInt4(const uint8_t* w, const int8_t* a, int64_t nb, int32_t sum) {
  const __m512i m4 = _mm512_set1_epi8(0x0F), x8 = _mm512_set1_epi8(0x08);
  __m512i acc = _mm512_setzero_si512();
  for (int64_t b = 0; b < nb; ++b) {
    const __m512i v = Load(w + b * 64);
    const __m512i lo = _mm512_xor_si512(_mm512_and_si512(v, m4), x8);
    const __m512i hi = _mm512_xor_si512(_mm512_and_si512(_mm512_srli_epi16(v, 4), m4), x8);
    acc = _mm512_dpbusd_epi32(acc, lo, Load(a + b * 128));
    acc = _mm512_dpbusd_epi32(acc, hi, Load(a + b * 128 + 64));
  }
  return Finish(acc, 8u, sum);
}

int32_t DotInt2(const uint8_t* w, const int8_t* a, int64_t nb, int32_t sum) {
  const __m512i m2 = _mm512_set1_epi8(0x03), x2 = _mm512_set1_epi8(0x02);
  __m512i acc = _mm512_setzero_si512();
  for (int64_t b = 0; b < nb; ++b) {
    const __m512i v = Load(w + b * 64);
    const int8_t* ab = a + b * 256;
    acc = _mm512_dpbusd_epi32(acc, _mm512_xor_si512(_mm512_and_si512(v, m2), x2), Load(ab));
    acc = _mm512_dpbusd_epi32(
        acc, _mm512_xor_si512(_mm512_and_si512(_mm512_srli_epi16(v, 2), m2), x2), Load(ab + 64));
    acc = _mm512_dpbusd_epi32(
        acc, _mm512_xor_si512(_mm512_and_si512(_mm512_srli_epi16(v, 4), m2), x2), Load(ab + 128));
    acc = _mm512_dpbusd_epi32(
        acc, _mm512_xor_si512(_mm512_and_si512(_mm512_srli_epi16(v, 6), m2), x2), Load(ab + 192));
  }
  return Finish(acc, 2u, sum);
}

int32_t DotInt8(const uint8_t* w, const int8_t* a, int64_t nb, int32_t sum) {
  const __m512i x80 = _mm512_set1_epi8(static_cast<char>(0x80));
  __m512i acc = _mm512_setzero_si512();
  for (int64_t b = 0; b < nb; ++b) {
    acc = _mm512_dpbusd_epi32(acc, _mm512_xor_si512(Load(w + b * 64), x80), Load(a + b * 64));
  }
  return Finish(acc, 128u, sum);
}

#pragma GCC pop_options

}  // namespace

void RegisterIntAvx512Vnni(WType t) {
  MatMulKernel k;
  k.target = "avx512vnni";
  k.supported = HasAvx512Vnni;
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
