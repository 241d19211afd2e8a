// AVX2 kernels for the int4 / int2 x16 layouts (repack.h): one ymm lane
// per weight row, the 16 rows of a group in two ymm halves (rows 0-7 in
// bytes 0-31 of each 64-byte chunk, rows 8-15 in bytes 32-63). The P
// fields of a chunk times the broadcast activation words go through
// _mm256_maddubs_epi16 (unsigned codes <= 15 times int8: the P int16 pair
// sums stay below 2^15) and _mm256_madd_epi16 into int32 lanes; the +2^(B-1)
// of the codes is removed with the activation sum, and y = float(acc) *
// (act_scale * row_scale) as in the scalar reference. No int8 kernel
// (offset-binary int8 codes could saturate the int16 pairs): int8 matrices
// keep the row layout on AVX2-only CPUs.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "inference/kernels_int_internal.h"
#include "inference/repack.h"

namespace qatk::inference::internal {
namespace {

// Tokens per prefill register tile: 2 tokens x 2 halves of accumulators
// plus 2 x P unpacked fields fit the 16 ymm registers.
constexpr int kTileTok = 2;
constexpr int kPrefetch = 16384;  // as the AVX-512 x16 kernels

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

inline __m256i Word(const int8_t* a) {
  int32_t v;
  std::memcpy(&v, a, 4);
  return _mm256_set1_epi32(v);
}

// y[t + j, 16G + i] for j < NT, i < n_rows.
template <int P, int NT>
void Tile(const QMatrix& w, const uint8_t* grp, int64_t nc, const uint8_t* a, size_t stride,
          float* y, int64_t ys, int64_t r, int n_rows) {
  constexpr int kBits = 8 / P;
  const __m256i mask = _mm256_set1_epi8(static_cast<char>((1 << kBits) - 1));
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc[NT][2];
  for (int j = 0; j < NT; ++j) acc[j][0] = acc[j][1] = _mm256_setzero_si256();
  for (int64_t c = 0; c < nc; ++c) {
    const uint8_t* q = grp + 64 * c;
    if (NT == 1) _mm_prefetch(reinterpret_cast<const char*>(q + kPrefetch), _MM_HINT_T1);
    for (int h = 0; h < 2; ++h) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 32 * h));
      __m256i u[P];
      for (int f = 0; f < P; ++f) u[f] = _mm256_and_si256(_mm256_srli_epi16(v, f * kBits), mask);
      for (int j = 0; j < NT; ++j) {
        const int8_t* aj = reinterpret_cast<const int8_t*>(a + j * stride) + 4 * P * c;
        __m256i p = _mm256_maddubs_epi16(u[0], Word(aj));
        for (int f = 1; f < P; ++f) {
          p = _mm256_add_epi16(p, _mm256_maddubs_epi16(u[f], Word(aj + 4 * f)));
        }
        acc[j][h] = _mm256_add_epi32(acc[j][h], _mm256_madd_epi16(p, ones));
      }
    }
  }
  for (int j = 0; j < NT; ++j) {
    int32_t sum;
    std::memcpy(&sum, a + j * stride + RoundUp64(w.cols), 4);
    const __m256i off = _mm256_set1_epi32(static_cast<int32_t>((1u << (kBits - 1)) *
                                                               static_cast<uint32_t>(sum)));
    float out[16];
    for (int h = 0; h < 2; ++h) {
      const __m256 s = _mm256_cvtepi32_ps(_mm256_sub_epi32(acc[j][h], off));
      _mm256_storeu_ps(out + 8 * h, s);
    }
    // Row scales past the matrix are not read (the group may be partial).
    for (int i = 0; i < n_rows; ++i) y[j * ys + i] = out[i] * (w.act_scale * w.row_scales[r + i]);
  }
}

template <int P>
void Rows(const QMatrix& w, const void* act, size_t stride, int n_tok, float* y, int64_t ys,
          int64_t r0, int64_t r1) {
  const uint8_t* a = static_cast<const uint8_t*>(act);
  const size_t gb = IntX16GroupBytes(w.type, w.cols);
  const int64_t nc = static_cast<int64_t>(gb / 64);
  const uint8_t* base = static_cast<const uint8_t*>(w.data);
  for (int t0 = 0; t0 < n_tok; t0 += kTokBlock) {
    const int t1 = n_tok < t0 + kTokBlock ? n_tok : t0 + kTokBlock;
    for (int64_t r = r0; r < r1; r += kQ4x16Rows) {
      const uint8_t* grp = base + (r / kQ4x16Rows) * gb;
      const int nr = r1 - r < kQ4x16Rows ? static_cast<int>(r1 - r) : kQ4x16Rows;
      for (int t = t0; t < t1; t += kTileTok) {
        float* yt = y + t * ys + r;
        if (t1 - t >= kTileTok) {
          Tile<P, kTileTok>(w, grp, nc, a + t * stride, stride, yt, ys, r, nr);
        } else {
          Tile<P, 1>(w, grp, nc, a + t * stride, stride, yt, ys, r, nr);
        }
      }
    }
  }
}

#pragma GCC pop_options

}  // namespace

void RegisterIntX16Avx2(WType t) {
  MatMulKernel k;
  k.target = "avx2";
  k.supported = CpuHasAvx2;
  k.act_row_bytes = IntX16ActBytes;
  k.prepare = IntX16PrepareAvx2;
  switch (t) {
    case WType::kInt4x16: k.rows = Rows<2>; break;
    case WType::kInt2x16: k.rows = Rows<4>; break;
    default: return;
  }
  RegisterMatMulKernel(t, k);
}

}  // namespace qatk::inference::internal
