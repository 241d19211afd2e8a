// AVX-512 VNNI mobile int kernels (vpdpbusd: unsigned x signed bytes, four
// products per int32 lane, no saturation). Weight codes become offset binary
// (code + 2^(bits-1)); the offset is removed with the stored activation sum
// in wrapping uint32 arithmetic, so the result equals the scalar int32 sum.
// No AMX.
#include <immintrin.h>

#include <cstdint>

#include "inference/kernels/int_internal.h"

namespace qatk::inference::internal {
namespace {

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vnni,avx2")

inline __m512i Load(const void* p) { return _mm512_loadu_si512(p); }

// Decode streams the weights from DRAM: prefetch into L2 this far ahead, as
// the kQ4_0x16 kernel does (x86_avx512_x16.cc).
constexpr int kPrefetch = 16384;

// Offset-binary fields of one 64-byte weight block; field i meets act[i*64..].
template <int kPerByte>
inline void Fields(const uint8_t* w, __m512i* f) {
  const __m512i v = Load(w);
  if constexpr (kPerByte == 1) {
    f[0] = _mm512_xor_si512(v, _mm512_set1_epi8(static_cast<char>(0x80)));
  } else {
    constexpr int kBits = 8 / kPerByte;
    const __m512i mask = _mm512_set1_epi8((1 << kBits) - 1);
    const __m512i off = _mm512_set1_epi8(1 << (kBits - 1));
    for (int i = 0; i < kPerByte; ++i) {
      f[i] = _mm512_xor_si512(_mm512_and_si512(_mm512_srli_epi16(v, i * kBits), mask), off);
    }
  }
}

template <int kPerByte, int N>
void DotN(const uint8_t* w, const int8_t* const* a, int64_t nb, const int32_t* sums, int32_t* out) {
  __m512i acc[N];
  for (int j = 0; j < N; ++j) acc[j] = _mm512_setzero_si512();
  for (int64_t b = 0; b < nb; ++b) {
    if constexpr (N == 1) {  // decode: rows are contiguous, so this runs on into the next rows
      _mm_prefetch(reinterpret_cast<const char*>(w + b * 64 + kPrefetch), _MM_HINT_T1);
    }
    __m512i f[kPerByte];
    Fields<kPerByte>(w + b * 64, f);
    for (int i = 0; i < kPerByte; ++i) {
      for (int j = 0; j < N; ++j) {
        acc[j] = _mm512_dpbusd_epi32(acc[j], f[i], Load(a[j] + b * 64 * kPerByte + i * 64));
      }
    }
  }
  constexpr uint32_t kOffset = kPerByte == 1 ? 128u : kPerByte == 2 ? 8u : 2u;
  for (int j = 0; j < N; ++j) {
    out[j] = static_cast<int32_t>(static_cast<uint32_t>(_mm512_reduce_add_epi32(acc[j])) -
                                  kOffset * static_cast<uint32_t>(sums[j]));
  }
}

// Decode: 4 consecutive rows x 1 token. Each row keeps its own accumulator
// (4 independent vpdpbusd chains); every activation vector is loaded once
// for the 4 rows. The 4 sums are reduced together (one transpose-add tree).
template <int kPerByte>
void Rows4(const uint8_t* w, size_t rb, const int8_t* a, int64_t nb, int32_t sum, int32_t* out) {
  __m512i acc[4];
  for (int r = 0; r < 4; ++r) acc[r] = _mm512_setzero_si512();
  for (int64_t b = 0; b < nb; ++b) {
    __m512i av[kPerByte];
    for (int i = 0; i < kPerByte; ++i) av[i] = Load(a + b * 64 * kPerByte + i * 64);
    for (int r = 0; r < 4; ++r) {
      const uint8_t* wb = w + r * rb + b * 64;
      _mm_prefetch(reinterpret_cast<const char*>(wb + kPrefetch), _MM_HINT_T1);
      __m512i f[kPerByte];
      Fields<kPerByte>(wb, f);
      for (int i = 0; i < kPerByte; ++i) acc[r] = _mm512_dpbusd_epi32(acc[r], f[i], av[i]);
    }
  }
  // 4 x 16 lanes -> 4 sums: fold 512 -> 256 -> 128 per row, then hadd.
  __m128i q[4];
  for (int r = 0; r < 4; ++r) {
    const __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(acc[r]),
                                       _mm512_extracti64x4_epi64(acc[r], 1));
    q[r] = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
  }
  const __m128i s = _mm_hadd_epi32(_mm_hadd_epi32(q[0], q[1]), _mm_hadd_epi32(q[2], q[3]));
  constexpr uint32_t kOffset = kPerByte == 1 ? 128u : kPerByte == 2 ? 8u : 2u;
  const __m128i off = _mm_set1_epi32(static_cast<int>(kOffset * static_cast<uint32_t>(sum)));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm_sub_epi32(s, off));
}

#pragma GCC pop_options

}  // namespace

void RegisterAvx512IntKernels() {
  auto add = [](WType t, decltype(MatMulKernel::rows) rows) {
    RegisterMatMulKernel(t, {"avx512vnni", CpuHasAvx512Vnni, SimdIntActBytes, SimdIntPrepare, rows});
  };
  add(WType::kInt8Channel, SimdIntRows<DotN<1, 1>, DotN<1, 4>, Rows4<1>>);
  add(WType::kInt4Channel, SimdIntRows<DotN<2, 1>, DotN<2, 4>, Rows4<2>>);
  add(WType::kInt2Channel, SimdIntRows<DotN<4, 1>, DotN<4, 4>, Rows4<4>>);
}

}  // namespace qatk::inference::internal
