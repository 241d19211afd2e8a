// AVX-512 kernels for the runtime-packed kQ4_0x16 layout (repack.h): one
// zmm lane per weight row, 16 rows per vector. Two targets, like
// kernels_avx512.cc: "avx512vnni" (vpdpbusd) and "avx512" (vpmaddubsw +
// vpmaddwd; unsigned nibbles times int8 cannot saturate the int16 pairs).
// No AMX.
//
// Per block column b of a 16-row group: four 64-byte loads give the
// unsigned codes of 8 element groups (g = c: low nibbles of chunk c,
// elements 4c..4c+3; g = 4+c: high nibbles, elements 16+4c..16+4c+3). For
// one token, lane i of dot(W[g], broadcast(activation word g)) sums row i's
// 4 products of group g, so 8 dots give the 16 rows' block sums at once,
// in one chain starting from the activation's -8 sum(a) (Q8Sum) to undo the
// +8 of the codes; then one fma per block scales by d_w[16] * d_a. No
// horizontal sums.
//
// Register tile: 16 rows x up to kTileTok tokens; the block's 8 code
// vectors are unpacked once and used for every token of the tile. Tokens go
// in blocks of kTokBlock so a group's codes stay in L1/L2 across the block.
#include <immintrin.h>

#include <cstring>

#include "formats/quant/types.h"
#include "inference/kernels_internal.h"
#include "inference/repack.h"

namespace qatk::inference::internal {
namespace {

// 8 tokens: 8 independent vpdpbusd chains per block, 8 code + 8 accumulator
// registers (4 to 16 measured alike on the 1B model's shapes).
constexpr int kTileTok = 8;
// Decode streams the weights from DRAM once per token: prefetch into L2
// this many bytes ahead (with the hardware prefetcher alone this kernel read
// ~13 GB/s where a plain streaming loop reads ~28; on the 1B model, 8-32 KiB
// ahead measured alike and best of 1-32 KiB, T1 better than T0 or NTA).
constexpr int kPrefetch = 16384;

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")

// acc + sum over 4-byte groups of u (unsigned) * a (signed).
template <bool Vnni>
inline __m512i Dp(__m512i acc, __m512i u, __m512i a) {
  if constexpr (Vnni) {
    return _mm512_dpbusd_epi32(acc, u, a);
  } else {
    const __m512i p = _mm512_maddubs_epi16(u, a);
    return _mm512_add_epi32(acc, _mm512_madd_epi16(p, _mm512_set1_epi16(1)));
  }
}

inline __m512i Word(const int8_t* qs, int g) {
  int32_t v;
  std::memcpy(&v, qs + 4 * g, 4);
  return _mm512_set1_epi32(v);
}

// y[t + j, 16G + i] for j < NT, i < n_rows: group `grp` (nb blocks) times
// the prepared activations of tokens t .. t+NT-1.
template <bool Vnni, int NT>
void Tile(const uint8_t* grp, int64_t nb, const uint8_t* act, size_t stride, size_t sum_off,
          float* y, int64_t ys, int n_rows) {
  const uint8_t* d = grp + nb * 256;
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  __m512 acc[NT];
  for (int j = 0; j < NT; ++j) acc[j] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* q = grp + 256 * b;
    if (NT == 1) {  // the layout is linear: this runs into the scales and the next groups
      for (int c = 0; c < 4; ++c) {
        _mm_prefetch(reinterpret_cast<const char*>(q + kPrefetch + 64 * c), _MM_HINT_T1);
      }
    }
    __m512i u[8];
    for (int c = 0; c < 4; ++c) {
      const __m512i raw = _mm512_loadu_si512(q + 64 * c);
      u[c] = _mm512_and_si512(raw, m4);
      u[4 + c] = _mm512_and_si512(_mm512_srli_epi16(raw, 4), m4);
    }
    const __m512 dw =
        _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(d + 32 * b)));
#pragma GCC unroll 8
    for (int j = 0; j < NT; ++j) {
      const uint8_t* a = act + j * stride;
      const int8_t* qa = reinterpret_cast<const BlockQ8_0*>(a)[b].qs;
      const Q8Sum* s = reinterpret_cast<const Q8Sum*>(a + sum_off) + b;
      __m512i si = _mm512_set1_epi32(s->start);
      for (int g = 0; g < 8; ++g) si = Dp<Vnni>(si, u[g], Word(qa, g));
      const __m512 sum = _mm512_cvtepi32_ps(si);
      acc[j] = _mm512_fmadd_ps(sum, _mm512_mul_ps(dw, _mm512_set1_ps(s->d)), acc[j]);
    }
  }
  const __mmask16 keep = static_cast<__mmask16>((1u << n_rows) - 1);
  for (int j = 0; j < NT; ++j) _mm512_mask_storeu_ps(y + j * ys, keep, acc[j]);
}

// Tile of n tokens, 1 <= n <= N.
template <bool Vnni, int N>
void TileUpTo(int n, const uint8_t* grp, int64_t nb, const uint8_t* act, size_t stride,
              size_t sum_off, float* y, int64_t ys, int n_rows) {
  if constexpr (N > 1) {
    if (n < N) return TileUpTo<Vnni, N - 1>(n, grp, nb, act, stride, sum_off, y, ys, n_rows);
  }
  Tile<Vnni, N>(grp, nb, act, stride, sum_off, y, ys, n_rows);
}

template <bool Vnni>
void Rows(const QMatrix& w, const void* act, size_t stride, int n_tok, float* y, int64_t ys,
          int64_t r0, int64_t r1) {
  const uint8_t* a = static_cast<const uint8_t*>(act);
  const int64_t nb = w.cols / 32;
  const size_t gb = Q4x16GroupBytes(w.cols), sum_off = Q8SumOffset(w);
  const uint8_t* base = static_cast<const uint8_t*>(w.data);
  // r0 is a multiple of 16 (MatMul aligns row ranges); r1 may end a group early.
  for (int t0 = 0; t0 < n_tok; t0 += kTokBlock) {
    const int t1 = n_tok < t0 + kTokBlock ? n_tok : t0 + kTokBlock;
    for (int64_t r = r0; r < r1; r += kQ4x16Rows) {
      const uint8_t* grp = base + (r / kQ4x16Rows) * gb;
      const int nr = r1 - r < kQ4x16Rows ? static_cast<int>(r1 - r) : kQ4x16Rows;
      for (int t = t0; t < t1; t += kTileTok) {
        const int n = t1 - t < kTileTok ? t1 - t : kTileTok;
        TileUpTo<Vnni, kTileTok>(n, grp, nb, a + t * stride, stride, sum_off, y + t * ys + r, ys,
                                 nr);
      }
    }
  }
}

#pragma GCC pop_options

template <bool Vnni>
MatMulKernel Kernel() {
  MatMulKernel k;
  k.target = Vnni ? "avx512vnni" : "avx512";
  k.supported = Vnni ? CpuHasAvx512Vnni : CpuHasAvx512;
  k.act_row_bytes = Q8SumRowBytes;
  k.prepare = PrepareQ8SumsAvx2;
  k.rows = Rows<Vnni>;
  return k;
}

}  // namespace

void RegisterPackedAvx512Kernels() {
  RegisterMatMulKernel(WType::kQ4_0x16, Kernel<false>());
  RegisterMatMulKernel(WType::kQ4_0x16, Kernel<true>());
}

}  // namespace qatk::inference::internal
