// Reference codecs. Compiled with -ffp-contract=off (see formats/CMakeLists.txt):
// ggml's reference quantizers evaluate x*id + 8.5f as two roundings, and an
// FMA would change ties.
#include "formats/quant/codecs.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "formats/quant/fp16.h"
#include "formats/quant/kquants.h"
#include "formats/util/cpu_features.h"
#include "formats/util/status_macros.h"

namespace qatk {
namespace {

// C's float->int conversion as ggml's x86-64 build performs it (cvttss2si):
// truncation toward zero; NaN and values outside int32 give INT32_MIN. This
// only matters for blocks whose scale underflows (subnormal inputs), where
// 1/d is infinite and x*id is +-inf or NaN; ggml then stores code 0
// (golden fixtures in tests/formats/testdata pin this down).
inline int32_t TruncToInt32(float v) {
  if (!(v > -2147483904.0f && v < 2147483648.0f)) return INT32_MIN;
  return static_cast<int32_t>(v);
}
// (int8_t)float on the same build: the low byte of the int32 conversion.
inline int8_t TruncToInt8(float v) {
  return static_cast<int8_t>(static_cast<uint8_t>(static_cast<uint32_t>(TruncToInt32(v)) & 0xFFu));
}

}  // namespace

void Q4_0Codes(const float* x, uint8_t* q, float* d_fp32) {
  float amax = 0.0f;
  float max = 0.0f;
  for (int j = 0; j < kQK4_0; ++j) {
    const float v = x[j];
    if (amax < std::fabs(v)) {  // strict: the first extreme wins ties
      amax = std::fabs(v);
      max = v;
    }
  }
  const float d = max / -8;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  for (int j = 0; j < kQK4_0; ++j) {
    const float xs = x[j] * id;  // rounded before the add, as in ggml
    const int8_t t = TruncToInt8(xs + 8.5f);
    q[j] = static_cast<uint8_t>(t < 15 ? t : 15);
  }
  *d_fp32 = d;
}

void QuantizeBlockQ4_0(const float* x, BlockQ4_0* out) {
  uint8_t q[kQK4_0];
  float d;
  Q4_0Codes(x, q, &d);
  out->d = Fp32ToFp16(d);
  for (int j = 0; j < kQK4_0 / 2; ++j) {
    out->qs[j] = static_cast<uint8_t>(q[j] | (q[j + kQK4_0 / 2] << 4));
  }
}

void Q4_0CodesWithScale(const float* x, float d, uint8_t* q) {
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  for (int j = 0; j < kQK4_0; ++j) {
    const float v = x[j] * id + 8.5f;  // two roundings, as in ggml (no FMA here)
    // Clamped in float: a learned d can put x*id far outside the codes. A
    // non-finite x*id (1/d overflowed) gives code 0, as ggml's cast does.
    q[j] = std::isfinite(v) ? static_cast<uint8_t>(std::trunc(std::min(std::max(v, 0.0f), 15.0f))) : 0;
  }
}

void QuantizeBlockQ4_0WithScale(const float* x, float d, BlockQ4_0* out) {
  uint8_t q[kQK4_0];
  Q4_0CodesWithScale(x, d, q);
  out->d = Fp32ToFp16(d);
  for (int j = 0; j < kQK4_0 / 2; ++j) {
    out->qs[j] = static_cast<uint8_t>(q[j] | (q[j + kQK4_0 / 2] << 4));
  }
}

void DequantizeBlockQ4_0(const BlockQ4_0& b, float* y) {
  const float d = Fp16ToFp32(b.d);
  for (int j = 0; j < kQK4_0 / 2; ++j) {
    y[j] = static_cast<float>((b.qs[j] & 0x0F) - 8) * d;
    y[j + kQK4_0 / 2] = static_cast<float>((b.qs[j] >> 4) - 8) * d;
  }
}

void QuantizeBlockQ8_0(const float* x, BlockQ8_0* out) {
  float amax = 0.0f;
  for (int j = 0; j < kQK8_0; ++j) amax = std::fmax(amax, std::fabs(x[j]));
  const float d = amax / ((1 << 7) - 1);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  out->d = Fp32ToFp16(d);
  for (int j = 0; j < kQK8_0; ++j) out->qs[j] = TruncToInt8(std::round(x[j] * id));
}

void QuantizeBlockQ8_0Act(const float* x, BlockQ8_0* out) {
  float amax = 0.0f;
  for (int j = 0; j < kQK8_0; ++j) amax = std::fmax(amax, std::fabs(x[j]));
  out->d = Fp32ToFp16(amax / 127.0f);
  const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
  // nearbyint under the default rounding mode = round half to even; then
  // cvtps_epi32 + saturating packs: NaN/inf (a block whose 127/amax
  // overflows) become INT32_MIN and saturate to -128.
  for (int j = 0; j < kQK8_0; ++j) {
    const int32_t q = TruncToInt32(std::nearbyint(x[j] * id));
    out->qs[j] = static_cast<int8_t>(q < -128 ? -128 : q > 127 ? 127 : q);
  }
}

#if defined(__x86_64__) || defined(__i386__)
namespace {

// QuantizeBlockQ8_0Act with AVX2, block by block, bit for bit: the same fp32
// amax, 127/amax and x*id; cvtps rounds half to even (default MXCSR mode)
// and gives INT32_MIN for NaN/inf, which packs saturates to -128.
__attribute__((target("avx2"))) void QuantizeRowQ8_0ActAvx2(const float* x, BlockQ8_0* out,
                                                            int64_t n_blocks) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  for (int64_t i = 0; i < n_blocks; ++i) {
    const float* xb = x + i * kQK8_0;
    __m256 v[4];
    __m256 m = _mm256_setzero_ps();
    for (int j = 0; j < 4; ++j) {
      v[j] = _mm256_loadu_ps(xb + 8 * j);
      m = _mm256_max_ps(m, _mm256_and_ps(v[j], abs_mask));
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    out[i].d = Fp32ToFp16(amax / 127.0f);
    const __m256 vid = _mm256_set1_ps(amax != 0.0f ? 127.0f / amax : 0.0f);
    __m256i q[4];
    for (int j = 0; j < 4; ++j) q[j] = _mm256_cvtps_epi32(_mm256_mul_ps(v[j], vid));
    __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
    b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[i].qs), b);
  }
}

const bool kHasAvx2 = GetCpuFeatures().avx2;

}  // namespace
#endif

void QuantizeRowQ8_0Act(const float* x, BlockQ8_0* out, int64_t n_blocks) {
#if defined(__x86_64__) || defined(__i386__)
  if (kHasAvx2) {
    QuantizeRowQ8_0ActAvx2(x, out, n_blocks);
    return;
  }
#endif
  for (int64_t i = 0; i < n_blocks; ++i) QuantizeBlockQ8_0Act(x + i * kQK8_0, out + i);
}

void DequantizeBlockQ8_0(const BlockQ8_0& b, float* y) {
  const float d = Fp16ToFp32(b.d);
  for (int j = 0; j < kQK8_0; ++j) y[j] = static_cast<float>(b.qs[j]) * d;
}

void QuantizeBlockQ2_0(const float* x, BlockQ2_0* out) {
  float amax = 0.0f;
  for (int j = 0; j < kQK2_0; ++j) {
    const float a = std::fabs(x[j]);
    if (a > amax) amax = a;
  }
  const float d = amax;
  const float id = d > 0.0f ? 1.0f / d : 0.0f;
  out->d = Fp32ToFp16(d);
  std::memset(out->qs, 0, sizeof(out->qs));
  for (int j = 0; j < kQK2_0; ++j) {
    const int32_t r = TruncToInt32(std::round(x[j] * id));
    int q = r == INT32_MIN ? 0 : r + 1;  // ggml: INT32_MIN + 1 clamps to 0
    q = q < 0 ? 0 : (q > 3 ? 3 : q);
    out->qs[j / 4] |= static_cast<uint8_t>(q << ((j % 4) * 2));
  }
}

void DequantizeBlockQ2_0(const BlockQ2_0& b, float* y) {
  const float d = Fp16ToFp32(b.d);
  for (int j = 0; j < kQK2_0; ++j) {
    const int q = (b.qs[j / 4] >> ((j % 4) * 2)) & 3;
    y[j] = static_cast<float>(q - 1) * d;
  }
}

absl::Status QuantizeRow(GgmlType type, const float* x, int64_t n, void* dst) {
  const TypeTraits& t = Traits(type);
  if (n < 0 || n % t.block_size != 0) {
    return absl::InvalidArgumentError(absl::StrCat("row of ", n, " elements is not a multiple of ",
                                                   t.name, "'s block size ", t.block_size));
  }
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat("non-finite value ", x[i], " at element ", i, " cannot be quantized to ", t.name));
    }
  }
  auto* out = static_cast<uint8_t*>(dst);
  switch (type) {
    case GgmlType::kF32:
      std::memcpy(out, x, n * sizeof(float));
      break;
    case GgmlType::kF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h = Fp32ToFp16(x[i]);
        std::memcpy(out + 2 * i, &h, 2);
      }
      break;
    case GgmlType::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h = Fp32ToBf16(x[i]);
        std::memcpy(out + 2 * i, &h, 2);
      }
      break;
    case GgmlType::kQ4_0:
      for (int64_t b = 0; b < n / kQK4_0; ++b) {
        QuantizeBlockQ4_0(x + b * kQK4_0, reinterpret_cast<BlockQ4_0*>(out) + b);
      }
      break;
    case GgmlType::kQ8_0:
      for (int64_t b = 0; b < n / kQK8_0; ++b) {
        QuantizeBlockQ8_0(x + b * kQK8_0, reinterpret_cast<BlockQ8_0*>(out) + b);
      }
      break;
    case GgmlType::kQ2_0:
      for (int64_t b = 0; b < n / kQK2_0; ++b) {
        QuantizeBlockQ2_0(x + b * kQK2_0, reinterpret_cast<BlockQ2_0*>(out) + b);
      }
      break;
    case GgmlType::kQ4_K:
      QuantizeRowQ4_K(x, reinterpret_cast<BlockQ4_K*>(out), n, nullptr);
      break;
    case GgmlType::kQ6_K:
      QuantizeRowQ6_K(x, reinterpret_cast<BlockQ6_K*>(out), n, nullptr);
      break;
  }
  return absl::OkStatus();
}

void DequantizeRow(GgmlType type, const void* src, float* y, int64_t n) {
  const auto* in = static_cast<const uint8_t*>(src);
  switch (type) {
    case GgmlType::kF32:
      std::memcpy(y, in, n * sizeof(float));
      break;
    case GgmlType::kF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, in + 2 * i, 2);
        y[i] = Fp16ToFp32(h);
      }
      break;
    case GgmlType::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, in + 2 * i, 2);
        y[i] = Bf16ToFp32(h);
      }
      break;
    case GgmlType::kQ4_0:
      for (int64_t b = 0; b < n / kQK4_0; ++b) {
        DequantizeBlockQ4_0(reinterpret_cast<const BlockQ4_0*>(in)[b], y + b * kQK4_0);
      }
      break;
    case GgmlType::kQ8_0:
      for (int64_t b = 0; b < n / kQK8_0; ++b) {
        DequantizeBlockQ8_0(reinterpret_cast<const BlockQ8_0*>(in)[b], y + b * kQK8_0);
      }
      break;
    case GgmlType::kQ2_0:
      for (int64_t b = 0; b < n / kQK2_0; ++b) {
        DequantizeBlockQ2_0(reinterpret_cast<const BlockQ2_0*>(in)[b], y + b * kQK2_0);
      }
      break;
    case GgmlType::kQ4_K:
      DequantizeRowQ4_K(reinterpret_cast<const BlockQ4_K*>(in), y, n);
      break;
    case GgmlType::kQ6_K:
      DequantizeRowQ6_K(reinterpret_cast<const BlockQ6_K*>(in), y, n);
      break;
  }
}

// ---- Reference intN codec -------------------------------------------------

float StoreScale(const QuantSpec& spec, float s) {
  if (spec.scale_type == ScaleType::kF32) return s;
  s = std::min(std::max(s, -65504.0f), 65504.0f);
  return RoundToFp16(s);
}

float RoundValue(const QuantSpec& spec, float v) {
  return spec.rounding == Rounding::kHalfEven ? std::nearbyint(v) : std::round(v);
}

float ChooseScaleAbsmax(const QuantSpec& spec, const float* x, int64_t n) {
  float amax = 0.0f;
  for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  return StoreScale(spec, amax / static_cast<float>(spec.Qp()));
}

float ChooseScaleMse(const QuantSpec& spec, const float* x, int64_t n) {
  float amax = 0.0f;
  for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  if (amax == 0.0f) return 0.0f;
  std::vector<float> y(n);
  float best_s = 0.0f;
  double best_err = std::numeric_limits<double>::infinity();
  const double step = (1.0 - spec.mse_min_ratio) / (spec.mse_grid - 1);
  // A full range is lopsided (int2: -2..1); a negative scale mirrors it
  // (int2: 2..-1 times |s|), which suits rows whose long tail is positive.
  const int signs = spec.Qn() != spec.Qp() ? 2 : 1;
  for (int sign = 0; sign < signs; ++sign) {
    float prev = 0.0f;
    for (int k = 0; k < spec.mse_grid; ++k) {
      const double r = 1.0 - k * step;
      const float mag = StoreScale(spec, static_cast<float>(r * amax / spec.Qp()));
      if (mag == prev) continue;
      prev = mag;
      const float s = sign ? -mag : mag;
      const double err = FakeQuantizeWithScale(spec, x, n, s, y.data());
      if (err < best_err) {
        best_err = err;
        best_s = s;
      }
    }
  }
  return best_s;
}

float ChooseScale(const QuantSpec& spec, const float* x, int64_t n) {
  QATK_CHECK(!spec.is_block() && spec.enabled(), "ChooseScale needs an int_* spec");
  if (spec.scale_rule == ScaleRule::kMse || spec.scale_rule == ScaleRule::kLearned) {
    return ChooseScaleMse(spec, x, n);
  }
  return ChooseScaleAbsmax(spec, x, n);
}

void QuantizeWithScale(const QuantSpec& spec, const float* x, int64_t n, float s, int8_t* q) {
  const float inv = s != 0.0f ? 1.0f / s : 0.0f;
  const float lo = static_cast<float>(-spec.Qn());
  const float hi = static_cast<float>(spec.Qp());
  for (int64_t i = 0; i < n; ++i) {
    const float r = RoundValue(spec, x[i] * inv);
    q[i] = static_cast<int8_t>(std::min(std::max(r, lo), hi));
  }
}

void DequantizeWithScale(const int8_t* q, int64_t n, float s, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>(q[i]) * s;
}

double FakeQuantizeWithScale(const QuantSpec& spec, const float* x, int64_t n, float s, float* y) {
  const float inv = s != 0.0f ? 1.0f / s : 0.0f;
  const float lo = static_cast<float>(-spec.Qn());
  const float hi = static_cast<float>(spec.Qp());
  double err = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const float r = std::min(std::max(RoundValue(spec, x[i] * inv), lo), hi);
    y[i] = r * s;
    const double e = static_cast<double>(x[i]) - y[i];
    err += e * e;
  }
  return err;
}

namespace {

// q4_0 with learned scales: one fp32 d per block, row-major [rows, cols/32].
absl::StatusOr<QuantizedMatrix> QuantizeQ4_0WithScales(const float* w, int64_t rows, int64_t cols,
                                                       const std::vector<float>& scales, QuantizedMatrix m) {
  const int64_t nb = cols / kQK4_0;
  if (m.spec.scheme != QuantScheme::kQ4_0 || static_cast<int64_t>(scales.size()) != rows * nb) {
    return absl::InvalidArgumentError(absl::StrCat("got ", scales.size(), " scales for ", SchemeName(m.spec.scheme),
                                                   " [", rows, ", ", cols, "] (only q4_0 takes block scales: ",
                                                   rows * nb, ")"));
  }
  auto* out = reinterpret_cast<BlockQ4_0*>(m.blocks.data());
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t b = 0; b < nb; ++b) {
      const float* x = w + r * cols + b * kQK4_0;
      const float d = scales[r * nb + b];
      for (int i = 0; i < kQK4_0; ++i) {
        if (!std::isfinite(x[i])) {
          return absl::InvalidArgumentError(absl::StrCat("non-finite value at row ", r, " column ", b * kQK4_0 + i));
        }
      }
      if (!std::isfinite(d)) {
        return absl::InvalidArgumentError(absl::StrCat("invalid scale ", d, " for row ", r, " block ", b));
      }
      QuantizeBlockQ4_0WithScale(x, d, out + r * nb + b);
    }
  }
  return m;
}

}  // namespace

absl::StatusOr<QuantizedMatrix> QuantizeMatrix(const QuantSpec& spec, const float* w, int64_t rows,
                                               int64_t cols, const std::vector<float>& row_scales) {
  QuantizedMatrix m;
  m.spec = spec;
  m.rows = rows;
  m.cols = cols;
  if (spec.is_block()) {
    const GgmlType t = spec.ggml_type();
    if (cols % Traits(t).block_size != 0) {
      return absl::InvalidArgumentError(absl::StrCat("cols ", cols, " is not a multiple of ",
                                                     Traits(t).name, "'s block ", Traits(t).block_size));
    }
    const uint64_t rb = RowBytes(t, cols);
    m.blocks.resize(rb * rows);
    if (!row_scales.empty()) return QuantizeQ4_0WithScales(w, rows, cols, row_scales, std::move(m));
    for (int64_t r = 0; r < rows; ++r) {
      absl::Status st = QuantizeRow(t, w + r * cols, cols, m.blocks.data() + r * rb);
      if (!st.ok()) return absl::InvalidArgumentError(absl::StrCat("row ", r, ": ", st.message()));
    }
    return m;
  }
  if (spec.scheme != QuantScheme::kIntChannel) {
    return absl::InvalidArgumentError(absl::StrCat("scheme ", SchemeName(spec.scheme), " is not a weight scheme"));
  }
  if (!row_scales.empty() && static_cast<int64_t>(row_scales.size()) != rows) {
    return absl::InvalidArgumentError(absl::StrCat("got ", row_scales.size(), " row scales for ", rows, " rows"));
  }
  m.codes.resize(rows * cols);
  m.scales.resize(rows);
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = w + r * cols;
    for (int64_t i = 0; i < cols; ++i) {
      if (!std::isfinite(x[i])) {
        return absl::InvalidArgumentError(absl::StrCat("non-finite value at row ", r, " column ", i));
      }
    }
    float s = row_scales.empty() ? ChooseScale(spec, x, cols) : StoreScale(spec, row_scales[r]);
    if (!std::isfinite(s)) {  // a negative scale is valid: it mirrors a full range
      return absl::InvalidArgumentError(absl::StrCat("invalid scale ", s, " for row ", r));
    }
    m.scales[r] = s;
    QuantizeWithScale(spec, x, cols, s, m.codes.data() + r * cols);
  }
  return m;
}

std::vector<float> DequantizeMatrix(const QuantizedMatrix& m) {
  std::vector<float> y(m.rows * m.cols);
  if (m.spec.is_block()) {
    const GgmlType t = m.spec.ggml_type();
    const uint64_t rb = RowBytes(t, m.cols);
    for (int64_t r = 0; r < m.rows; ++r) {
      DequantizeRow(t, m.blocks.data() + r * rb, y.data() + r * m.cols, m.cols);
    }
    return y;
  }
  for (int64_t r = 0; r < m.rows; ++r) {
    DequantizeWithScale(m.codes.data() + r * m.cols, m.cols, m.scales[r], y.data() + r * m.cols);
  }
  return y;
}

}  // namespace qatk
