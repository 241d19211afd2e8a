// AVX2 kernels for the row-interleaved x16 layouts (x16.h), kQ4_0x16 and the
// int4 / int2 x16 types, for CPUs without AVX-512: a 16-row group is two
// halves of 8 rows, one ymm lane per row.
//
// kQ4_0x16: per block column and half: four 32-byte loads give the unsigned codes
// of the 8 element groups (as in x86_avx512_x16.cc); vpmaddubsw with
// the broadcast activation word g gives int16 pair sums of at most
// 2 * 15 * 128 = 3840 in magnitude, so the 8 groups add up in int16 without
// overflow (<= 30720) before one vpmaddwd makes them int32 lanes.
//
// Register tile: 8 rows x up to 4 tokens (8 code + 4 accumulator registers
// of the 16); tokens in blocks of kTokBlock as in the AVX-512 kernel.
//
// Int x16: per 64-byte chunk and half, one 32-byte load gives P fields of
// unsigned codes (+2^(B-1)); vpmaddubsw with the broadcast activation word
// of each field and an int16 add give at most P * 2 * 15 * 128 = 7680
// (int4) or 4 * 2 * 3 * 128 = 3072 (int2), then vpmaddwd makes int32 lanes;
// the offset is removed with the activation sum and y = float(acc) *
// (act_scale * row_scale) as in the scalar reference. No int8 kernel
// (offset-binary int8 codes could saturate the int16 pairs): int8 matrices
// keep the row layout on AVX2-only CPUs.
#include <immintrin.h>

#include <cstring>

#include "formats/quant/types.h"
#include "inference/kernels/int_internal.h"
#include "inference/kernels/internal.h"
#include "inference/kernels/x16.h"

namespace qatk::inference::internal {
namespace {

constexpr int kTileTok = 4;
constexpr int kHalf = kX16Rows / 2;
constexpr int kPrefetch = 16384;  // decode: as x86_avx512_x16.cc

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

inline __m256i Word(const int8_t* qs, int g) {
  int32_t v;
  std::memcpy(&v, qs + 4 * g, 4);
  return _mm256_set1_epi32(v);
}

// y[t + j, 16G + 8h + i] for j < NT, i < n_rows: half h of group `grp`
// times the prepared activations of tokens t .. t+NT-1.
template <int NT>
void Tile(const uint8_t* grp, int h, int64_t nb, const uint8_t* act, size_t stride,
          size_t sum_off, float* y, int64_t ys, int n_rows) {
  const uint8_t* d = grp + nb * 256 + 2 * kHalf * h;
  const __m256i m4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
  __m256 acc[NT];
  for (int j = 0; j < NT; ++j) acc[j] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* q = grp + 256 * b + 32 * h;
    if (NT == 1) {
      for (int c = 0; c < 4; ++c) {
        _mm_prefetch(reinterpret_cast<const char*>(q + kPrefetch + 64 * c), _MM_HINT_T1);
      }
    }
    __m256i u[8];
    for (int c = 0; c < 4; ++c) {
      const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 64 * c));
      u[c] = _mm256_and_si256(raw, m4);
      u[4 + c] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
    }
    const __m256 dw =
        _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(d + 32 * b)));
    for (int j = 0; j < NT; ++j) {
      const uint8_t* a = act + j * stride;
      const int8_t* qa = reinterpret_cast<const BlockQ8_0*>(a)[b].qs;
      const Q8Sum* s = reinterpret_cast<const Q8Sum*>(a + sum_off) + b;
      __m256i p = _mm256_maddubs_epi16(u[0], Word(qa, 0));
      for (int g = 1; g < 8; ++g) p = _mm256_add_epi16(p, _mm256_maddubs_epi16(u[g], Word(qa, g)));
      const __m256i si = _mm256_add_epi32(_mm256_madd_epi16(p, ones), _mm256_set1_epi32(s->start));
      acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(si), _mm256_mul_ps(dw, _mm256_set1_ps(s->d)),
                               acc[j]);
    }
  }
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i keep = _mm256_cmpgt_epi32(_mm256_set1_epi32(n_rows), lane);
  for (int j = 0; j < NT; ++j) _mm256_maskstore_ps(y + j * ys, keep, acc[j]);
}

void Rows(const QMatrix& w, const void* act, size_t stride, int n_tok, float* y, int64_t ys,
          int64_t r0, int64_t r1) {
  const uint8_t* a = static_cast<const uint8_t*>(act);
  const int64_t nb = w.cols / 32;
  const size_t gb = Q4x16GroupBytes(w.cols), sum_off = Q8SumOffset(w);
  const uint8_t* base = static_cast<const uint8_t*>(w.data);
  ForEachRowTile<kTileTok>(n_tok, r0, r1, kHalf, [&](int64_t r, int nr, int t, int n) {
    WithTileSize<kTileTok>(n, [&](auto nt) {
      Tile<nt>(base + (r / kX16Rows) * gb, static_cast<int>(r / kHalf % 2), nb, a + t * stride,
               stride, sum_off, y + t * ys + r, ys, nr);
    });
  });
}

// ---- int x16 ----

// y[t + j, r + i] for j < NT, i < n_rows: half h (rows r .. r+7) of group
// `grp` times the prepared activations of tokens t .. t+NT-1.
template <int P, int NT>
void IntTile(const QMatrix& w, const uint8_t* grp, int h, int64_t nc, const uint8_t* act,
             size_t stride, float* y, int64_t ys, int64_t r, int n_rows) {
  constexpr int kBits = 8 / P;
  const __m256i mask = _mm256_set1_epi8(static_cast<char>((1 << kBits) - 1));
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc[NT];
  for (int j = 0; j < NT; ++j) acc[j] = _mm256_setzero_si256();
  for (int64_t c = 0; c < nc; ++c) {
    const uint8_t* q = grp + 64 * c + 32 * h;
    if (NT == 1) _mm_prefetch(reinterpret_cast<const char*>(q + kPrefetch), _MM_HINT_T1);
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q));
    __m256i u[P];
    for (int f = 0; f < P; ++f) u[f] = _mm256_and_si256(_mm256_srli_epi16(v, f * kBits), mask);
    for (int j = 0; j < NT; ++j) {
      const int8_t* aj = reinterpret_cast<const int8_t*>(act + j * stride) + 4 * P * c;
      __m256i p = _mm256_maddubs_epi16(u[0], Word(aj, 0));
      for (int f = 1; f < P; ++f) p = _mm256_add_epi16(p, _mm256_maddubs_epi16(u[f], Word(aj, f)));
      acc[j] = _mm256_add_epi32(acc[j], _mm256_madd_epi16(p, ones));
    }
  }
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i keep = _mm256_cmpgt_epi32(_mm256_set1_epi32(n_rows), lane);
  const __m256 s = _mm256_mul_ps(_mm256_set1_ps(w.act_scale),
                                 _mm256_maskload_ps(w.row_scales + r, keep));
  for (int j = 0; j < NT; ++j) {
    int32_t sum;
    std::memcpy(&sum, act + j * stride + RoundUp64(w.cols), 4);
    const uint32_t off = (1u << (kBits - 1)) * static_cast<uint32_t>(sum);
    const __m256i d = _mm256_sub_epi32(acc[j], _mm256_set1_epi32(static_cast<int32_t>(off)));
    _mm256_maskstore_ps(y + j * ys, keep, _mm256_mul_ps(_mm256_cvtepi32_ps(d), s));
  }
}

template <int P>
void IntRows(const QMatrix& w, const void* act, size_t stride, int n_tok, float* y, int64_t ys,
             int64_t r0, int64_t r1) {
  const uint8_t* a = static_cast<const uint8_t*>(act);
  const size_t gb = IntX16GroupBytes(w.type, w.cols);
  const int64_t nc = static_cast<int64_t>(gb / 64);
  const uint8_t* base = static_cast<const uint8_t*>(w.data);
  ForEachRowTile<kTileTok>(n_tok, r0, r1, kHalf, [&](int64_t r, int nr, int t, int n) {
    WithTileSize<kTileTok>(n, [&](auto nt) {
      IntTile<P, nt>(w, base + (r / kX16Rows) * gb, static_cast<int>(r / kHalf % 2), nc,
                     a + t * stride, stride, y + t * ys + r, ys, r, nr);
    });
  });
}

#pragma GCC pop_options

}  // namespace

void RegisterAvx2X16Kernels() {
  RegisterMatMulKernel(WType::kQ4_0x16, {"avx2", CpuHasAvx2, Q8SumRowBytes, PrepareQ8SumsAvx2, Rows});
  // No kInt8x16 kernel (see the top of this file).
  RegisterMatMulKernel(WType::kInt4x16, {"avx2", CpuHasAvx2, IntX16ActBytes, IntX16PrepareAvx2, IntRows<2>});
  RegisterMatMulKernel(WType::kInt2x16, {"avx2", CpuHasAvx2, IntX16ActBytes, IntX16PrepareAvx2, IntRows<4>});
}

}  // namespace qatk::inference::internal
