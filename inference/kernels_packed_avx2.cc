// AVX2 kernel for the runtime-packed kQ4_0x16 layout (repack.h), for CPUs
// without AVX-512: a 16-row group is two halves of 8 rows, one ymm lane per
// row. Per block column and half: four 32-byte loads give the unsigned codes
// of the 8 element groups (as in kernels_packed_avx512.cc); vpmaddubsw with
// the broadcast activation word g gives int16 pair sums of at most
// 2 * 15 * 128 = 3840 in magnitude, so the 8 groups add up in int16 without
// overflow (<= 30720) before one vpmaddwd makes them int32 lanes.
//
// Register tile: 8 rows x up to 4 tokens (8 code + 4 accumulator registers
// of the 16); tokens in blocks of kTokBlock as in the AVX-512 kernel.
#include <immintrin.h>

#include <cstring>

#include "formats/quant/types.h"
#include "inference/kernels_internal.h"
#include "inference/repack.h"

namespace qatk::inference::internal {
namespace {

constexpr int kTileTok = 4;
constexpr int kHalf = kQ4x16Rows / 2;
constexpr int kPrefetch = 16384;  // decode: as kernels_packed_avx512.cc

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

template <int N>
void TileUpTo(int n, const uint8_t* grp, int h, int64_t nb, const uint8_t* act, size_t stride,
              size_t sum_off, float* y, int64_t ys, int n_rows) {
  if constexpr (N > 1) {
    if (n < N) return TileUpTo<N - 1>(n, grp, h, nb, act, stride, sum_off, y, ys, n_rows);
  }
  Tile<N>(grp, h, nb, act, stride, sum_off, y, ys, n_rows);
}

void Rows(const QMatrix& w, const void* act, size_t stride, int n_tok, float* y, int64_t ys,
          int64_t r0, int64_t r1) {
  const uint8_t* a = static_cast<const uint8_t*>(act);
  const int64_t nb = w.cols / 32;
  const size_t gb = Q4x16GroupBytes(w.cols), sum_off = Q8SumOffset(w);
  const uint8_t* base = static_cast<const uint8_t*>(w.data);
  // r0 is a multiple of 16 (MatMul aligns row ranges); r1 may end a group early.
  for (int t0 = 0; t0 < n_tok; t0 += kTokBlock) {
    const int t1 = n_tok < t0 + kTokBlock ? n_tok : t0 + kTokBlock;
    for (int64_t r = r0; r < r1; r += kHalf) {
      const uint8_t* grp = base + (r / kQ4x16Rows) * gb;
      const int h = static_cast<int>(r / kHalf % 2);
      const int nr = r1 - r < kHalf ? static_cast<int>(r1 - r) : kHalf;
      for (int t = t0; t < t1; t += kTileTok) {
        const int n = t1 - t < kTileTok ? t1 - t : kTileTok;
        TileUpTo<kTileTok>(n, grp, h, nb, a + t * stride, stride, sum_off, y + t * ys + r, ys, nr);
      }
    }
  }
}

#pragma GCC pop_options

}  // namespace

void RegisterPackedAvx2Kernels() {
  MatMulKernel k;
  k.target = "avx2";
  k.supported = CpuHasAvx2;
  k.act_row_bytes = Q8SumRowBytes;
  k.prepare = PrepareQ8SumsAvx2;
  k.rows = Rows;
  RegisterMatMulKernel(WType::kQ4_0x16, k);
}

}  // namespace qatk::inference::internal
