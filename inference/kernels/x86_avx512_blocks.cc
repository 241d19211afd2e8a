// AVX-512 kernels for the GGUF block types (Q4_0, Q8_0, Q2_0 weights times
// Q8_0 activations), chosen at run time. Two targets:
//   "avx512vnni"  F+BW+VL+VNNI: vpdpbusd for every byte dot (Q4_0, Q8_0, Q2_0);
//   "avx512"      F+BW+VL: vpmaddubsw + vpmaddwd (Q4_0, Q2_0 only: their
//                 unsigned codes are small enough that the int16 pair sums
//                 cannot saturate).
// No AMX.
//
// Work unit: a "superblock" of 64 input elements = two Q8_0 activation blocks
// in one zmm (Q4_0/Q8_0: two weight blocks; Q2_0: one). Weight codes are
// made unsigned (u = code + off, off = 8 / 128 / 1) so that one vpdpbusd
// computes sum(u * a); the accumulator starts at -off * sum(a), computed
// once per token and superblock, which leaves sum(code * a) exactly. Lanes
// 0-7 belong to the first 32 elements and 8-15 to the second, so one scale
// vector [d0 x8 | d1 x8] per row and per token scales the int32 lanes.
//
// Register tile (prefill): up to 4 weight rows x 4 tokens (16 fp32
// accumulators); each weight superblock is unpacked once per tile and used
// for 4 tokens, each activation superblock is loaded once and used for 4
// rows. Decode (one token) walks one row at a time: streaming 4 rows at once
// from DRAM measured ~1.5x slower on the 1B model. Tokens go in
// blocks of kTokBlock so the rows of a tile stay in L1 across the block.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "formats/quant/fp16.h"
#include "formats/quant/types.h"
#include "inference/kernels/internal.h"

namespace qatk::inference::internal {
namespace {

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")

inline float H2F(uint16_t h) { return _cvtsh_ss(h); }

// [fp16 a x8 | fp16 b x8] as fp32: one convert and one permute.
inline __m512 Pair(uint16_t a, uint16_t b) {
  const __m128 f = _mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(a | uint32_t{b} << 16)));
  return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1),
                               _mm512_castps128_ps512(f));
}

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

// The activation side of one superblock of token t: codes, scales and the
// -off * sum(a) start value. `two` is false for a lone trailing block.
struct ActSb {
  __m512i a, start;
  __m512 s;
};

template <bool Vnni>
inline ActSb LoadAct(const BlockQ8_0* y, bool two, __m512i off) {
  ActSb r;
  const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[0].qs));
  const __m256i hi =
      two ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[1].qs)) : _mm256_setzero_si256();
  r.a = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
  r.start = _mm512_sub_epi32(_mm512_setzero_si512(), Dp<Vnni>(_mm512_setzero_si512(), off, r.a));
  r.s = Pair(y[0].d, two ? y[1].d : uint16_t{0});
  return r;
}

// Weight formats: Unpack(row, sb, two, &u, &s) gives the unsigned codes of
// superblock sb and its scale vector; kOff is the code offset.
struct FmtQ4_0 {
  static constexpr int kOff = 8;
  static void Unpack(const uint8_t* row, int64_t sb, bool two, __m512i* u, __m512* s) {
    const BlockQ4_0* x = reinterpret_cast<const BlockQ4_0*>(row) + 2 * sb;
    const __m128i r0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[0].qs));
    const __m128i r1 =
        two ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[1].qs)) : _mm_setzero_si128();
    const __m256i lo = _mm256_set_m128i(r1, r0);
    const __m256i hi = _mm256_srli_epi16(lo, 4);
    const __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);  // r0 r1 h0 h1
    *u = _mm512_and_si512(_mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(3, 1, 2, 0)),
                          _mm512_set1_epi8(0x0F));  // elems 0-15 16-31 | 32-47 48-63
    *s = Pair(x[0].d, two ? x[1].d : uint16_t{0});
  }
};

struct FmtQ8_0 {
  static constexpr int kOff = 128;
  static void Unpack(const uint8_t* row, int64_t sb, bool two, __m512i* u, __m512* s) {
    const BlockQ8_0* x = reinterpret_cast<const BlockQ8_0*>(row) + 2 * sb;
    const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[0].qs));
    const __m256i hi = two ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[1].qs))
                           : _mm256_setzero_si256();
    *u = _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1),
                          _mm512_set1_epi8(static_cast<char>(0x80)));
    *s = Pair(x[0].d, two ? x[1].d : uint16_t{0});
  }
};

// Activations crumb-major (PrepareQ8CrumbAvx2): 64-bit lane 4h+k holds the
// 8 weight bytes of half h shifted right by 2k.
struct FmtQ2_0 {
  static constexpr int kOff = 1;
  static void Unpack(const uint8_t* row, int64_t sb, bool, __m512i* u, __m512* s) {
    const BlockQ2_0* x = reinterpret_cast<const BlockQ2_0*>(row) + sb;
    const __m512i q =
        _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x->qs)));
    const __m512i b = _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 0, 0, 0, 1, 1, 1, 1), q);
    *u = _mm512_and_si512(_mm512_srlv_epi64(b, _mm512_setr_epi64(0, 2, 4, 6, 0, 2, 4, 6)),
                          _mm512_set1_epi8(3));
    *s = _mm512_set1_ps(H2F(x->d));
  }
};

// Expands tokens [t0, t1) of the prepared activations into ActSb per
// (token, superblock): ex[(t - t0) * nsb + sb]. Done once per token block
// and matmul call, so no tile recomputes the offsets or scale vectors.
template <class Fmt, bool Vnni>
void Expand(const uint8_t* act, size_t stride, int t0, int t1, int64_t nblk, ActSb* ex) {
  const int64_t nsb = (nblk + 1) / 2;
  const __m512i off = _mm512_set1_epi8(static_cast<char>(Fmt::kOff));
  for (int t = t0; t < t1; ++t) {
    const BlockQ8_0* y = reinterpret_cast<const BlockQ8_0*>(act + t * stride);
    for (int64_t sb = 0; sb < nsb; ++sb) {
      ex[(t - t0) * nsb + sb] = LoadAct<Vnni>(y + 2 * sb, 2 * sb + 1 < nblk, off);
    }
  }
}

// y[t, r] for rows r .. r+NR-1 and tokens t .. t+NT-1; ex: expanded
// activations of token t onwards ([NT][nsb]).
template <class Fmt, bool Vnni, int NR, int NT>
void Tile(const QMatrix& w, const ActSb* ex, float* y, int64_t ys, int64_t r, int t) {
  const int64_t nblk = w.cols / 32;  // Q8_0 activation blocks
  const int64_t nsb = (nblk + 1) / 2;
  __m512 acc[NR][NT];
  for (int i = 0; i < NR; ++i) {
    for (int j = 0; j < NT; ++j) acc[i][j] = _mm512_setzero_ps();
  }
  for (int64_t sb = 0; sb < nsb; ++sb) {
    const bool two = 2 * sb + 1 < nblk;
#pragma GCC unroll 4
    for (int i = 0; i < NR; ++i) {
      __m512i u;
      __m512 ws;
      Fmt::Unpack(w.Row(r + i), sb, two, &u, &ws);
#pragma GCC unroll 4
      for (int j = 0; j < NT; ++j) {
        const ActSb& a = ex[j * nsb + sb];
        const __m512 d = _mm512_cvtepi32_ps(Dp<Vnni>(a.start, u, a.a));
        acc[i][j] = _mm512_fmadd_ps(d, _mm512_mul_ps(ws, a.s), acc[i][j]);
      }
    }
  }
  for (int i = 0; i < NR; ++i) {
    for (int j = 0; j < NT; ++j) y[(t + j) * ys + r + i] = _mm512_reduce_add_ps(acc[i][j]);
  }
}

// Tokens [t0, t1) for rows r .. r+NR-1, in tiles of up to 4 tokens.
template <class Fmt, bool Vnni, int NR>
void TokenTiles(const QMatrix& w, const ActSb* ex, int64_t nsb, float* y, int64_t ys, int64_t r,
                int t0, int t1) {
  int t = t0;
  for (; t + 4 <= t1; t += 4) Tile<Fmt, Vnni, NR, 4>(w, ex + (t - t0) * nsb, y, ys, r, t);
  const ActSb* e = ex + (t - t0) * nsb;
  switch (t1 - t) {
    case 3: Tile<Fmt, Vnni, NR, 3>(w, e, y, ys, r, t); break;
    case 2: Tile<Fmt, Vnni, NR, 2>(w, e, y, ys, r, t); break;
    case 1: Tile<Fmt, Vnni, NR, 1>(w, e, y, ys, r, t); break;
    default: break;
  }
}

template <class Fmt, bool Vnni>
void Rows(const QMatrix& w, const void* act, size_t stride, int n_tok, float* y, int64_t ys,
          int64_t r0, int64_t r1) {
  const uint8_t* a = static_cast<const uint8_t*>(act);
  const int64_t nblk = w.cols / 32, nsb = (nblk + 1) / 2;
  // Grows to the largest [kTokBlock, nsb] seen, then is reused (no allocation per token).
  static thread_local std::vector<uint8_t> buf;  // ActSb needs 64-byte alignment
  const size_t need = static_cast<size_t>(std::min(n_tok, kTokBlock) * nsb) * sizeof(ActSb) + 64;
  if (buf.size() < need) buf.resize(need);
  ActSb* ex = reinterpret_cast<ActSb*>((reinterpret_cast<uintptr_t>(buf.data()) + 63) &
                                       ~uintptr_t{63});
  for (int t0 = 0; t0 < n_tok; t0 += kTokBlock) {
    const int t1 = n_tok < t0 + kTokBlock ? n_tok : t0 + kTokBlock;
    Expand<Fmt, Vnni>(a, stride, t0, t1, nblk, ex);
    int64_t r = r0;
    if (n_tok > 1) {  // decode: one row at a time streams faster (measured)
      for (; r + 4 <= r1; r += 4) TokenTiles<Fmt, Vnni, 4>(w, ex, nsb, y, ys, r, t0, t1);
    }
    for (; r < r1; ++r) TokenTiles<Fmt, Vnni, 1>(w, ex, nsb, y, ys, r, t0, t1);
  }
}

#pragma GCC pop_options

template <class Fmt, bool Vnni>
MatMulKernel Kernel(void (*prep)(const QMatrix&, const float*, void*)) {
  return {Vnni ? "avx512vnni" : "avx512", Vnni ? CpuHasAvx512Vnni : CpuHasAvx512, Q8RowBytes, prep,
          Rows<Fmt, Vnni>};
}

}  // namespace

void RegisterAvx512BlockKernels() {
  RegisterMatMulKernel(WType::kQ4_0, Kernel<FmtQ4_0, false>(PrepareQ8Avx2));
  RegisterMatMulKernel(WType::kQ2_0, Kernel<FmtQ2_0, false>(PrepareQ8CrumbAvx2));
  RegisterMatMulKernel(WType::kQ4_0, Kernel<FmtQ4_0, true>(PrepareQ8Avx2));
  RegisterMatMulKernel(WType::kQ8_0, Kernel<FmtQ8_0, true>(PrepareQ8Avx2));
  RegisterMatMulKernel(WType::kQ2_0, Kernel<FmtQ2_0, true>(PrepareQ8CrumbAvx2));
}

}  // namespace qatk::inference::internal
