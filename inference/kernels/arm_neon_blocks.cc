// aarch64 NEON kernels of the GGUF block types (armv8-a: every aarch64 CPU;
// compiled without dotprod, see CMakeLists.txt). The fp32 / fp16 / bf16 dots
// and the attention vector helpers are fp32 FMA in four accumulators (float
// order differs from the scalar reference, within the tests' tolerance);
// Q8_0 / Q4_0 / Q2_0 use SMULL + SADALP for exact block sums.
#include "inference/kernels/arm_neon_common.h"

namespace qatk::inference::internal {
namespace {

inline float32x4_t LoadF16(const uint8_t* p) {
  return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(reinterpret_cast<const uint16_t*>(p))));
}
inline float32x4_t LoadBF16(const uint8_t* p) {
  return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(reinterpret_cast<const uint16_t*>(p)), 16));
}
inline float32x4_t LoadF32(const uint8_t* p) {
  return vld1q_f32(reinterpret_cast<const float*>(p));
}

// sum w[i] * a[i]: w as raw bytes of kBytes per element, Load converts 4.
template <int kBytes, float32x4_t (*Load)(const uint8_t*), float (*One)(const uint8_t*)>
float DotFloat(const uint8_t* w, const void* act, int64_t n) {
  const float* a = static_cast<const float*>(act);
  float32x4_t acc[4] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f),
                        vdupq_n_f32(0.0f)};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    for (int u = 0; u < 4; ++u) {
      acc[u] = vfmaq_f32(acc[u], Load(w + (i + 4 * u) * kBytes), vld1q_f32(a + i + 4 * u));
    }
  }
  for (; i + 4 <= n; i += 4) acc[0] = vfmaq_f32(acc[0], Load(w + i * kBytes), vld1q_f32(a + i));
  float s = vaddvq_f32(vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3])));
  for (; i < n; ++i) s += One(w + i * kBytes) * a[i];
  return s;
}

float OneF32(const uint8_t* p) {
  float f;
  std::memcpy(&f, p, 4);
  return f;
}
float OneF16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return Fp16ToFp32(h);
}
float OneBF16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return Bf16ToFp32(h);
}

float VecDot(const float* a, const float* b, int64_t n) {
  return DotFloat<4, LoadF32, OneF32>(reinterpret_cast<const uint8_t*>(a), b, n);
}
void VecAxpy(float a, const float* x, float* y, int64_t n) {
  const float32x4_t va = vdupq_n_f32(a);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_f32(vld1q_f32(y + i), va, vld1q_f32(x + i)));
  for (; i < n; ++i) y[i] += a * x[i];
}
void VecDotRows(const float* rows, int64_t stride, int m, const float* x, int64_t n, float* out) {
  for (int g = 0; g < m; ++g) out[g] = VecDot(rows + g * stride, x, n);
}
void VecAxpyRows(const float* a, const float* x, float* y, int64_t stride, int m, int64_t n) {
  for (int g = 0; g < m; ++g) VecAxpy(a[g], x, y + g * stride, n);
}
void VecF16ToF32(const uint16_t* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(x + i))));
  for (; i < n; ++i) y[i] = Fp16ToFp32(x[i]);
}

MatMulKernel Kernel(size_t (*bytes)(const QMatrix&),
                    void (*prep)(const QMatrix&, const float*, void*),
                    decltype(MatMulKernel::rows) rows) {
  MatMulKernel k;
  k.target = "neon";
  k.supported = CpuHasArmNeon;
  k.act_row_bytes = bytes;
  k.prepare = prep;
  k.rows = rows;
  return k;
}

}  // namespace

void RegisterNeonBlockKernels() {
  RegisterMatMulKernel(WType::kF32, Kernel(NoPrepare, nullptr,
                                           RowsLoop<DotFloat<4, LoadF32, OneF32>>));
  RegisterMatMulKernel(WType::kF16, Kernel(NoPrepare, nullptr,
                                           RowsLoop<DotFloat<2, LoadF16, OneF16>>));
  RegisterMatMulKernel(WType::kBF16, Kernel(NoPrepare, nullptr,
                                            RowsLoop<DotFloat<2, LoadBF16, OneBF16>>));
  RegisterMatMulKernel(WType::kQ8_0, Kernel(Q8RowBytes, PrepareQ8Neon, RowsLoop<DotQ8_0>));
  RegisterMatMulKernel(WType::kQ4_0, Kernel(Q8RowBytes, PrepareQ8Neon, RowsLoop<DotQ4_0>));
  RegisterMatMulKernel(WType::kQ2_0, Kernel(Q8RowBytes, PrepareQ8Neon, RowsLoop<DotQ2_0>));
  if (CpuHasArmNeon()) {
    ActiveVecOps() = VecOps{VecDot, VecAxpy, VecF16ToF32, VecDotRows, VecAxpyRows};
  }
}

}  // namespace qatk::inference::internal
