// AVX2 + FMA + F16C kernels (256-bit). Chosen at run time when the CPU has
// them. Integer block sums are exact; only the float accumulation order
// differs from the scalar reference.
#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "formats/quant/codecs.h"
#include "formats/quant/fp16.h"
#include "formats/quant/types.h"
#include "inference/kernels/internal.h"

namespace qatk::inference::internal {
namespace {

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

inline float Hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float H2F(uint16_t h) { return _cvtsh_ss(h); }

// Sum of signed a*b over 32 bytes as 8 int32 lanes (|a| <= 127 wherever
// b == -128 could occur: a is a weight code).
inline __m256i DotI8(__m256i a, __m256i b) {
  const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a));
  return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

#pragma GCC pop_options
}  // namespace
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

// Q8_0 activations of one row: the shared codec's AVX2 row quantizer
// (QuantizeRowQ8_0Act, llama.cpp's x86 rule).
void PrepareQ8Avx2(const QMatrix& w, const float* x, void* out) {
  QuantizeRowQ8_0Act(x, static_cast<BlockQ8_0*>(out), w.cols / 32);
}

// Q2_0 activations: Q8_0 blocks whose 32 codes are stored crumb-major, so
// the kernel can unpack weights with 64-bit shifts: position 8k+b holds
// element 4b+k of the block (b = 0..7 bytes of the block's half, k = crumb).
void PrepareQ8CrumbAvx2(const QMatrix& w, const float* x, void* out) {
  PrepareQ8Avx2(w, x, out);
  BlockQ8_0* b = static_cast<BlockQ8_0*>(out);
  for (int64_t i = 0; i < w.cols / 32; ++i) {
    int8_t tmp[32];
    for (int k = 0; k < 4; ++k) {
      for (int j = 0; j < 8; ++j) tmp[8 * k + j] = b[i].qs[4 * j + k];
    }
    std::memcpy(b[i].qs, tmp, 32);
  }
}

// Q8_0 activations plus the per-block sum table of the kQ4_0x16 kernels.
void PrepareQ8SumsAvx2(const QMatrix& w, const float* x, void* out) {
  PrepareQ8Avx2(w, x, out);
  FillQ8Sums(w, out);
}

#pragma GCC pop_options
namespace {
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

float DotQ4_0(const uint8_t* w, const void* a, int64_t n) {
  const BlockQ4_0* x = reinterpret_cast<const BlockQ4_0*>(w);
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(a);
  const __m256i lo = _mm256_set1_epi8(0x0F);
  const __m256i eight = _mm256_set1_epi8(8);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / 32; ++i) {
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[i].qs));
    const __m256i nib = _mm256_and_si256(
        _mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), lo);  // elems 0..15 | 16..31
    const __m256i wq = _mm256_sub_epi8(nib, eight);
    const __m256i aq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs));
    const __m256 s = _mm256_cvtepi32_ps(DotI8(wq, aq));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(H2F(x[i].d) * H2F(y[i].d)), s, acc);
  }
  return Hsum(acc);
}

float DotQ8_0(const uint8_t* w, const void* a, int64_t n) {
  const BlockQ8_0* x = reinterpret_cast<const BlockQ8_0*>(w);
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(a);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / 32; ++i) {
    // Weight codes from the reference quantizer are in [-127, 127].
    const __m256i wq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].qs));
    const __m256i aq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs));
    const __m256 s = _mm256_cvtepi32_ps(DotI8(wq, aq));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(H2F(x[i].d) * H2F(y[i].d)), s, acc);
  }
  return Hsum(acc);
}

// Activations from PrepareQ8Crumb. Per 64-element block: per half h, the
// 8 weight bytes are broadcast to 4 lanes and shifted by 0,2,4,6 bits.
float DotQ2_0(const uint8_t* w, const void* a, int64_t n) {
  const BlockQ2_0* x = reinterpret_cast<const BlockQ2_0*>(w);
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(a);
  const __m256i shifts = _mm256_setr_epi64x(0, 2, 4, 6);
  const __m256i three = _mm256_set1_epi8(3);
  const __m256i one = _mm256_set1_epi8(1);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / 64; ++i) {
    uint64_t half[2];
    std::memcpy(half, x[i].qs, 16);
    __m256 si = _mm256_setzero_ps();
    for (int h = 0; h < 2; ++h) {
      const __m256i bytes = _mm256_set1_epi64x(static_cast<long long>(half[h]));
      const __m256i c = _mm256_and_si256(_mm256_srlv_epi64(bytes, shifts), three);
      const __m256i wq = _mm256_sub_epi8(c, one);
      const BlockQ8_0& yb = y[2 * i + h];
      const __m256i aq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(yb.qs));
      si = _mm256_fmadd_ps(_mm256_set1_ps(H2F(yb.d)), _mm256_cvtepi32_ps(DotI8(wq, aq)), si);
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(H2F(x[i].d)), si, acc);
  }
  return Hsum(acc);
}

float VecDot(const float* a, const float* b, int64_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  for (; i + 8 <= n; i += 8) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
  }
  float s = Hsum(_mm256_add_ps(acc0, acc1));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

void VecAxpy(float a, const float* x, float* y, int64_t n) {
  const __m256 va = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  }
  for (; i < n; ++i) y[i] += a * x[i];
}

// The helpers inlined per row: one call per cached position, not per head.
void VecDotRows(const float* rows, int64_t stride, int m, const float* x, int64_t n, float* out) {
  for (int g = 0; g < m; ++g) out[g] = VecDot(rows + g * stride, x, n);
}
void VecAxpyRows(const float* a, const float* x, float* y, int64_t stride, int m, int64_t n) {
  for (int g = 0; g < m; ++g) VecAxpy(a[g], x, y + g * stride, n);
}

void VecF16ToF32(const uint16_t* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(y + i,
                     _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i))));
  }
  for (; i < n; ++i) y[i] = H2F(x[i]);
}

float DotF32(const uint8_t* w, const void* a, int64_t n) {
  return VecDot(reinterpret_cast<const float*>(w), static_cast<const float*>(a), n);
}

float DotF16(const uint8_t* w, const void* a, int64_t n) {
  const uint16_t* h = reinterpret_cast<const uint16_t*>(w);
  const float* af = static_cast<const float*>(a);
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 w0 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i)));
    const __m256 w1 =
        _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i + 8)));
    acc0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(af + i), acc0);
    acc1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(af + i + 8), acc1);
  }
  float s = Hsum(_mm256_add_ps(acc0, acc1));
  for (; i < n; ++i) s += H2F(h[i]) * af[i];
  return s;
}

float DotBF16(const uint8_t* w, const void* a, int64_t n) {
  const uint16_t* h = reinterpret_cast<const uint16_t*>(w);
  const float* af = static_cast<const float*>(a);
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i)));
    const __m256 wf = _mm256_castsi256_ps(_mm256_slli_epi32(u, 16));
    acc = _mm256_fmadd_ps(wf, _mm256_loadu_ps(af + i), acc);
  }
  float s = Hsum(acc);
  for (; i < n; ++i) s += Bf16ToFp32(h[i]) * af[i];
  return s;
}

#pragma GCC pop_options

MatMulKernel Kernel(size_t (*ab)(const QMatrix&), decltype(MatMulKernel::prepare) prep,
                    decltype(MatMulKernel::rows) rows) {
  return {"avx2", CpuHasAvx2, ab, prep, rows};
}

}  // namespace

void RegisterAvx2BlockKernels() {
  RegisterMatMulKernel(WType::kF32, Kernel(NoPrepare, nullptr, RowsLoop<DotF32>));
  RegisterMatMulKernel(WType::kF16, Kernel(NoPrepare, nullptr, RowsLoop<DotF16>));
  RegisterMatMulKernel(WType::kBF16, Kernel(NoPrepare, nullptr, RowsLoop<DotBF16>));
  RegisterMatMulKernel(WType::kQ8_0, Kernel(Q8RowBytes, PrepareQ8Avx2, RowsLoop<DotQ8_0>));
  RegisterMatMulKernel(WType::kQ4_0, Kernel(Q8RowBytes, PrepareQ8Avx2, RowsLoop<DotQ4_0>));
  RegisterMatMulKernel(WType::kQ2_0, Kernel(Q8RowBytes, PrepareQ8CrumbAvx2, RowsLoop<DotQ2_0>));
  if (CpuHasAvx2()) ActiveVecOps() = VecOps{VecDot, VecAxpy, VecF16ToF32, VecDotRows, VecAxpyRows};
}

}  // namespace qatk::inference::internal
