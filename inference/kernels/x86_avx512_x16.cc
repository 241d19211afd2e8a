// AVX-512 kernels for the row-interleaved x16 layouts (x16.h), kQ4_0x16 and
// the int x16 types: one zmm lane per weight row, 16 rows per vector. Two
// targets, like x86_avx512_blocks.cc: "avx512vnni" (vpdpbusd) and "avx512"
// (vpmaddubsw + vpmaddwd; unsigned nibbles or crumbs times int8 cannot
// saturate the int16 pairs, offset-binary int8 codes could: no "avx512"
// kernel for kInt8x16). No AMX.
//
// kQ4_0x16:
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
//
// Int x16 (kInt8x16 / kInt4x16 / kInt2x16): per 64-byte chunk c, one load;
// field f of every lane (P = CodesPerByte fields, unsigned codes + 2^(B-1))
// meets the broadcast activation word at column 4Pc + 4f, so lane i sums
// row i's int32 dot product exactly. The +2^(B-1) is removed at the end
// with the activation's code sum (wrapping int32, as the scalar sum), then
// y = float(acc) * (act_scale * row_scale), the scalar reference's float
// operations lane by lane. Decode keeps 4 accumulator chains.
#include <immintrin.h>

#include <cstring>

#include "formats/quant/types.h"
#include "inference/kernels/int_internal.h"
#include "inference/kernels/internal.h"
#include "inference/kernels/x16.h"

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

template <bool Vnni>
void Rows(const QMatrix& w, const void* act, size_t stride, int n_tok, float* y, int64_t ys,
          int64_t r0, int64_t r1) {
  const uint8_t* a = static_cast<const uint8_t*>(act);
  const int64_t nb = w.cols / 32;
  const size_t gb = Q4x16GroupBytes(w.cols), sum_off = Q8SumOffset(w);
  const uint8_t* base = static_cast<const uint8_t*>(w.data);
  ForEachRowTile<kTileTok>(n_tok, r0, r1, kX16Rows, [&](int64_t r, int nr, int t, int n) {
    WithTileSize<kTileTok>(n, [&](auto nt) {
      Tile<Vnni, nt>(base + (r / kX16Rows) * gb, nb, a + t * stride, stride, sum_off,
                     y + t * ys + r, ys, nr);
    });
  });
}

// ---- int x16 ----

// Field f (B = 8 / P bits) of every byte of v.
template <int P>
inline __m512i Field(__m512i v, int f) {
  if constexpr (P == 1) return v;
  const __m512i mask = _mm512_set1_epi8(static_cast<char>((1 << (8 / P)) - 1));
  return _mm512_and_si512(_mm512_srli_epi16(v, f * (8 / P)), mask);
}

// Decode: one token, four accumulator chains over consecutive chunks.
template <bool Vnni, int P>
__m512i IntDecode(const uint8_t* grp, int64_t nc, const int8_t* a) {
  __m512i acc[4];
  for (int u = 0; u < 4; ++u) acc[u] = _mm512_setzero_si512();
  auto chunk = [&](int64_t c, __m512i& s) {
    const uint8_t* q = grp + 64 * c;
    _mm_prefetch(reinterpret_cast<const char*>(q + kPrefetch), _MM_HINT_T1);
    const __m512i v = _mm512_loadu_si512(q);
    for (int f = 0; f < P; ++f) s = Dp<Vnni>(s, Field<P>(v, f), Word(a + 4 * P * c, f));
  };
  int64_t c = 0;
  for (; c + 4 <= nc; c += 4) {
    for (int u = 0; u < 4; ++u) chunk(c + u, acc[u]);
  }
  for (; c < nc; ++c) chunk(c, acc[0]);
  return _mm512_add_epi32(_mm512_add_epi32(acc[0], acc[1]), _mm512_add_epi32(acc[2], acc[3]));
}

// Prefill: NT tokens; the chunk's P fields are unpacked once for all.
// Accumulates in locals (byte loads may alias `out`), then stores out[NT].
template <bool Vnni, int P, int NT>
void IntTile(const uint8_t* grp, int64_t nc, const uint8_t* a, size_t stride, __m512i* out) {
  __m512i acc[NT];
  for (int j = 0; j < NT; ++j) acc[j] = _mm512_setzero_si512();
  for (int64_t c = 0; c < nc; ++c) {
    const __m512i v = _mm512_loadu_si512(grp + 64 * c);
    __m512i u[P];
    for (int f = 0; f < P; ++f) u[f] = Field<P>(v, f);
#pragma GCC unroll 8
    for (int j = 0; j < NT; ++j) {
      const int8_t* aj = reinterpret_cast<const int8_t*>(a + j * stride) + 4 * P * c;
      for (int f = 0; f < P; ++f) acc[j] = Dp<Vnni>(acc[j], u[f], Word(aj, f));
    }
  }
  for (int j = 0; j < NT; ++j) out[j] = acc[j];
}

template <bool Vnni, int P>
void IntRows(const QMatrix& w, const void* act, size_t stride, int n_tok, float* y, int64_t ys,
             int64_t r0, int64_t r1) {
  const uint8_t* a = static_cast<const uint8_t*>(act);
  const size_t gb = IntX16GroupBytes(w.type, w.cols), sum_off = RoundUp64(w.cols);
  const int64_t nc = static_cast<int64_t>(gb / 64);
  const uint8_t* base = static_cast<const uint8_t*>(w.data);
  const __m512 as = _mm512_set1_ps(w.act_scale);
  ForEachRowTile<kTileTok>(n_tok, r0, r1, kX16Rows, [&](int64_t r, int nr, int t, int n) {
    const uint8_t* grp = base + (r / kX16Rows) * gb;
    __m512i acc[kTileTok];
    if (n == 1) {
      acc[0] = IntDecode<Vnni, P>(grp, nc, reinterpret_cast<const int8_t*>(a + t * stride));
    } else {
      WithTileSize<kTileTok>(
          n, [&](auto nt) { IntTile<Vnni, P, nt>(grp, nc, a + t * stride, stride, acc); });
    }
    const __mmask16 keep = static_cast<__mmask16>((1u << nr) - 1);
    const __m512 s = _mm512_mul_ps(as, _mm512_maskz_loadu_ps(keep, w.row_scales + r));
    for (int j = 0; j < n; ++j) {
      int32_t sum;
      std::memcpy(&sum, a + (t + j) * stride + sum_off, 4);
      const uint32_t off = (1u << (8 / P - 1)) * static_cast<uint32_t>(sum);
      const __m512i d = _mm512_sub_epi32(acc[j], _mm512_set1_epi32(static_cast<int32_t>(off)));
      _mm512_mask_storeu_ps(y + (t + j) * ys + r, keep, _mm512_mul_ps(_mm512_cvtepi32_ps(d), s));
    }
  });
}

#pragma GCC pop_options

template <bool Vnni>
MatMulKernel Kernel(size_t (*act_row_bytes)(const QMatrix&), decltype(MatMulKernel::prepare) prepare,
                    decltype(MatMulKernel::rows) rows) {
  return {Vnni ? "avx512vnni" : "avx512", Vnni ? CpuHasAvx512Vnni : CpuHasAvx512, act_row_bytes, prepare,
          rows};
}

template <bool Vnni, int P>
MatMulKernel IntKernel() {
  return Kernel<Vnni>(IntX16ActBytes, IntX16PrepareAvx2, IntRows<Vnni, P>);
}

}  // namespace

void RegisterAvx512X16Kernels() {
  RegisterMatMulKernel(WType::kQ4_0x16, Kernel<false>(Q8SumRowBytes, PrepareQ8SumsAvx2, Rows<false>));
  RegisterMatMulKernel(WType::kQ4_0x16, Kernel<true>(Q8SumRowBytes, PrepareQ8SumsAvx2, Rows<true>));
  RegisterMatMulKernel(WType::kInt8x16, IntKernel<true, 1>());
  RegisterMatMulKernel(WType::kInt4x16, IntKernel<false, 2>());
  RegisterMatMulKernel(WType::kInt4x16, IntKernel<true, 2>());
  RegisterMatMulKernel(WType::kInt2x16, IntKernel<false, 4>());
  RegisterMatMulKernel(WType::kInt2x16, IntKernel<true, 4>());
}

}  // namespace qatk::inference::internal
