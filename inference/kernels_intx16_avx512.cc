// AVX-512 kernels for the runtime-packed int x16 layouts (repack.h): one
// zmm lane per weight row, 16 rows per vector, like the kQ4_0x16 kernels
// (kernels_packed_avx512.cc). Two targets: "avx512vnni" (vpdpbusd; int8,
// int4, int2) and "avx512" (vpmaddubsw + vpmaddwd; int4 and int2 only:
// offset-binary int8 codes times int8 could saturate the int16 pairs).
// No AMX.
//
// Per 64-byte chunk c of a 16-row group: one load; field f of every lane
// (P fields, unsigned codes + 2^(B-1)) meets the broadcast activation word
// at column 4Pc + 4f, so lane i accumulates row i's int32 dot product. The
// +2^(B-1) of the codes is removed at the end with the activation's code
// sum, in wrapping int32 arithmetic (as the scalar sum), then
// y = float(acc) * (act_scale * row_scale): the scalar reference's float
// operations, lane by lane. No horizontal sums.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "inference/kernels_int_internal.h"
#include "inference/repack.h"

namespace qatk::inference::internal {
namespace {

// Tokens per prefill register tile (as the kQ4_0x16 kernel).
constexpr int kTileTok = 8;
// Decode streams the weights from DRAM: prefetch into L2 this far ahead
// (the kQ4_0x16 kernel's distance).
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

inline __m512i Word(const int8_t* a) {
  int32_t v;
  std::memcpy(&v, a, 4);
  return _mm512_set1_epi32(v);
}

// Field f (B = 8 / P bits) of every byte of v.
template <int P>
inline __m512i Field(__m512i v, int f) {
  if constexpr (P == 1) return v;
  const __m512i mask = _mm512_set1_epi8(static_cast<char>((1 << (8 / P)) - 1));
  return _mm512_and_si512(_mm512_srli_epi16(v, f * (8 / P)), mask);
}

// Adds chunk c's products for one token to acc.
template <bool Vnni, int P>
inline __m512i Chunk(__m512i acc, __m512i v, const int8_t* a, int64_t c) {
  for (int f = 0; f < P; ++f) acc = Dp<Vnni>(acc, Field<P>(v, f), Word(a + 4 * P * c + 4 * f));
  return acc;
}

// y[i] for the group's first n_rows rows: (acc - 2^(B-1) sum) scaled.
template <int P>
inline void Store(__m512i acc, int32_t sum, const QMatrix& w, int64_t r, int n_rows, float* y) {
  const uint32_t off = (1u << (8 / P - 1)) * static_cast<uint32_t>(sum);
  acc = _mm512_sub_epi32(acc, _mm512_set1_epi32(static_cast<int32_t>(off)));
  const __mmask16 keep = static_cast<__mmask16>((1u << n_rows) - 1);
  const __m512 s = _mm512_mul_ps(_mm512_set1_ps(w.act_scale),
                                 _mm512_maskz_loadu_ps(keep, w.row_scales + r));
  _mm512_mask_storeu_ps(y, keep, _mm512_mul_ps(_mm512_cvtepi32_ps(acc), s));
}

inline int32_t SumOf(const int8_t* a, const QMatrix& w) {
  int32_t s;
  std::memcpy(&s, a + RoundUp64(w.cols), 4);
  return s;
}

// Decode: one token, four accumulator chains over consecutive chunks.
template <bool Vnni, int P>
void Decode(const uint8_t* grp, int64_t nc, const int8_t* a, __m512i* out) {
  __m512i acc[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(),
                    _mm512_setzero_si512()};
  int64_t c = 0;
  for (; c + 4 <= nc; c += 4) {
    for (int u = 0; u < 4; ++u) {
      const uint8_t* q = grp + 64 * (c + u);
      _mm_prefetch(reinterpret_cast<const char*>(q + kPrefetch), _MM_HINT_T1);
      acc[u] = Chunk<Vnni, P>(acc[u], _mm512_loadu_si512(q), a, c + u);
    }
  }
  for (; c < nc; ++c) acc[0] = Chunk<Vnni, P>(acc[0], _mm512_loadu_si512(grp + 64 * c), a, c);
  *out = _mm512_add_epi32(_mm512_add_epi32(acc[0], acc[1]), _mm512_add_epi32(acc[2], acc[3]));
}

// Prefill: NT tokens (act rows at a[j * stride]); the chunk's P fields are
// unpacked once for all of them.
template <bool Vnni, int P, int NT>
void Tile(const uint8_t* grp, int64_t nc, const uint8_t* a, size_t stride, __m512i* acc) {
  for (int j = 0; j < NT; ++j) acc[j] = _mm512_setzero_si512();
  for (int64_t c = 0; c < nc; ++c) {
    const __m512i v = _mm512_loadu_si512(grp + 64 * c);
    __m512i u[P];
    for (int f = 0; f < P; ++f) u[f] = Field<P>(v, f);
#pragma GCC unroll 8
    for (int j = 0; j < NT; ++j) {
      const int8_t* aj = reinterpret_cast<const int8_t*>(a + j * stride) + 4 * P * c;
      for (int f = 0; f < P; ++f) acc[j] = Dp<Vnni>(acc[j], u[f], Word(aj + 4 * f));
    }
  }
}

// Tile of n tokens, 1 <= n <= N.
template <bool Vnni, int P, int N>
void TileUpTo(int n, const uint8_t* grp, int64_t nc, const uint8_t* a, size_t stride,
              __m512i* acc) {
  if constexpr (N > 1) {
    if (n < N) return TileUpTo<Vnni, P, N - 1>(n, grp, nc, a, stride, acc);
  }
  Tile<Vnni, P, N>(grp, nc, a, stride, acc);
}

template <bool Vnni, int P>
void Rows(const QMatrix& w, const void* act, size_t stride, int n_tok, float* y, int64_t ys,
          int64_t r0, int64_t r1) {
  const uint8_t* a = static_cast<const uint8_t*>(act);
  const size_t gb = IntX16GroupBytes(w.type, w.cols);
  const int64_t nc = static_cast<int64_t>(gb / 64);
  const uint8_t* base = static_cast<const uint8_t*>(w.data);
  // r0 is a multiple of 16 (MatMul aligns row ranges); r1 may end a group early.
  for (int t0 = 0; t0 < n_tok; t0 += kTokBlock) {
    const int t1 = n_tok < t0 + kTokBlock ? n_tok : t0 + kTokBlock;
    for (int64_t r = r0; r < r1; r += kQ4x16Rows) {
      const uint8_t* grp = base + (r / kQ4x16Rows) * gb;
      const int nr = r1 - r < kQ4x16Rows ? static_cast<int>(r1 - r) : kQ4x16Rows;
      for (int t = t0; t < t1; t += kTileTok) {
        const int n = t1 - t < kTileTok ? t1 - t : kTileTok;
        __m512i acc[kTileTok];
        if (n == 1) {
          Decode<Vnni, P>(grp, nc, reinterpret_cast<const int8_t*>(a + t * stride), acc);
        } else {
          TileUpTo<Vnni, P, kTileTok>(n, grp, nc, a + t * stride, stride, acc);
        }
        for (int j = 0; j < n; ++j) {
          const int8_t* aj = reinterpret_cast<const int8_t*>(a + (t + j) * stride);
          Store<P>(acc[j], SumOf(aj, w), w, r, nr, y + (t + j) * ys + r);
        }
      }
    }
  }
}

#pragma GCC pop_options

template <bool Vnni, int P>
MatMulKernel Kernel() {
  MatMulKernel k;
  k.target = Vnni ? "avx512vnni" : "avx512";
  k.supported = Vnni ? CpuHasAvx512Vnni : CpuHasAvx512;
  k.act_row_bytes = IntX16ActBytes;
  k.prepare = IntX16PrepareAvx2;
  k.rows = Rows<Vnni, P>;
  return k;
}

}  // namespace

void RegisterIntX16Avx512(WType t) {
  switch (t) {
    case WType::kInt8x16: RegisterMatMulKernel(t, Kernel<true, 1>()); break;
    case WType::kInt4x16:
      RegisterMatMulKernel(t, Kernel<false, 2>());
      RegisterMatMulKernel(t, Kernel<true, 2>());
      break;
    case WType::kInt2x16:
      RegisterMatMulKernel(t, Kernel<false, 4>());
      RegisterMatMulKernel(t, Kernel<true, 4>());
      break;
    default: break;
  }
}

}  // namespace qatk::inference::internal
