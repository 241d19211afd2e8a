// Mobile int kernels: activation quantization (reference codec), the scalar
// oracles of the int channel and int x16 types, and the SIMD activation
// layouts.
#include "inference/kernels/int.h"

#include <vector>

#include "formats/util/status_macros.h"
#include "inference/kernels/int_internal.h"
#include "inference/kernels/x16.h"

namespace qatk::inference {

QuantSpec ActivationSpec(const QMatrix& w) {
  QuantSpec s;
  s.scheme = QuantScheme::kIntTensor;
  s.bits = w.act_bits;
  s.narrow_range = w.act_narrow;
  s.rounding = w.act_rounding;
  s.scale_type = ScaleType::kF32;
  s.scale_rule = ScaleRule::kCalibrated;
  return s;
}

// Same codes as QuantizeWithScale (tested exactly), without a libm call per
// element (ActQuant::Quantize).
void QuantizeActivations(const QMatrix& w, const float* x, int8_t* q) {
  const internal::ActQuant p(w);
  for (int64_t i = 0; i < w.cols; ++i) q[i] = p.Quantize(x[i]);
}

int32_t DotIntRef(WType t, const uint8_t* w_row, const int8_t* a, int64_t cols) {
  int32_t acc = 0;
  for (int64_t k = 0; k < cols; ++k) acc += CodeAt(t, w_row, k) * static_cast<int32_t>(a[k]);
  return acc;
}

namespace internal {

ActQuant::ActQuant(const QMatrix& w) {
  QATK_CHECK(w.act_scale > 0.0f && w.act_bits >= 2 && w.act_bits <= 8,
             "int kernel needs a static activation scale and 2..8 bits");
  const QuantSpec spec = ActivationSpec(w);
  lo = -spec.Qn();
  hi = spec.Qp();
  flo = static_cast<float>(lo - 1);
  fhi = static_cast<float>(hi + 1);
  inv = 1.0f / w.act_scale;
  even = spec.rounding == Rounding::kHalfEven;
}

namespace {

size_t RefActBytes(const QMatrix& w) {
  return w.act_scale > 0.0f ? static_cast<size_t>(RoundUp64(w.cols)) : 0;
}

void RefPrepare(const QMatrix& w, const float* x, void* out) {
  QuantizeActivations(w, x, static_cast<int8_t*>(out));
}

// The oracle: natural order, per-element codes, one int32 per (t, r).
void RefRows(const QMatrix& w, const void* act, size_t act_stride, int n_tok, float* y,
             int64_t y_stride, int64_t r0, int64_t r1) {
  if (w.act_scale == 0.0f) {
    FloatIntRows(w, act, act_stride, n_tok, y, y_stride, r0, r1);
    return;
  }
  const uint8_t* a0 = static_cast<const uint8_t*>(act);
  for (int64_t r = r0; r < r1; ++r) {
    const float s = w.act_scale * w.row_scales[r];
    for (int t = 0; t < n_tok; ++t) {
      const int8_t* a = reinterpret_cast<const int8_t*>(a0 + t * act_stride);
      y[t * y_stride + r] = static_cast<float>(DotIntRef(w.type, w.Row(r), a, w.cols)) * s;
    }
  }
}

// The x16 oracle: the codes read back from the x16 layout, natural order.
void IntX16RowsRef(const QMatrix& w, const void* act, size_t act_stride, int n_tok, float* y,
                   int64_t y_stride, int64_t r0, int64_t r1) {
  const uint8_t* a0 = static_cast<const uint8_t*>(act);
  for (int64_t r = r0; r < r1; ++r) {
    const float s = w.act_scale * w.row_scales[r];
    for (int t = 0; t < n_tok; ++t) {
      const int8_t* a = reinterpret_cast<const int8_t*>(a0 + t * act_stride);
      int32_t acc = 0;
      for (int64_t k = 0; k < w.cols; ++k) acc += IntX16CodeAt(w, r, k) * int32_t{a[k]};
      y[t * y_stride + r] = static_cast<float>(acc) * s;
    }
  }
}

// Zero padding and the code sum of the x16 activation layout.
void IntX16Finish(const QMatrix& w, int32_t sum, void* out) {
  uint8_t* dst = static_cast<uint8_t*>(out);
  const int64_t sum_off = RoundUp64(w.cols);
  std::memset(dst + w.cols, 0, static_cast<size_t>(sum_off - w.cols));
  std::memcpy(dst + sum_off, &sum, 4);
}

}  // namespace

size_t IntX16ActBytes(const QMatrix& w) { return static_cast<size_t>(RoundUp64(w.cols) + 64); }

void IntX16PrepareRef(const QMatrix& w, const float* x, void* out) {
  const ActQuant p(w);
  int8_t* q = static_cast<int8_t*>(out);
  int32_t sum = 0;
  for (int64_t k = 0; k < w.cols; ++k) sum += q[k] = p.Quantize(x[k]);
  IntX16Finish(w, sum, out);
}

#if defined(__x86_64__) || defined(__i386__)
void IntX16PrepareAvx2(const QMatrix& w, const float* x, void* out) {
  IntX16Finish(w, QuantizeActAvx2(ActQuant(w), x, static_cast<int8_t*>(out), w.cols), out);
}
#endif

size_t SimdIntActBytes(const QMatrix& w) {
  return w.act_scale > 0.0f ? static_cast<size_t>(RoundUp64(w.cols) + 64) : 0;
}

void SimdIntPrepare(const QMatrix& w, const float* x, void* out) {
  static thread_local std::vector<int8_t> q;
  if (q.size() < static_cast<size_t>(w.cols)) q.resize(w.cols);
#if defined(__x86_64__) || defined(__i386__)
  QuantizeActAvx2(ActQuant(w), x, q.data(), w.cols);
#else
  const ActQuant p(w);
  for (int64_t k = 0; k < w.cols; ++k) q[k] = p.Quantize(x[k]);
#endif
  int8_t* dst = static_cast<int8_t*>(out);
  const int pb = CodesPerByte(w.type);
  const int64_t be = IntBlockElems(w.type);
  const int64_t nb = w.cols / be;
  int32_t sum = 0;
  for (int64_t b = 0; b < nb; ++b) {
    const int8_t* src = q.data() + b * be;
    int8_t* d = dst + b * be;
    for (int j = 0; j < 64; ++j) {
      for (int i = 0; i < pb; ++i) {
        d[i * 64 + j] = src[pb * j + i];
        sum += src[pb * j + i];
      }
    }
  }
  for (int64_t k = nb * be; k < w.cols; ++k) dst[k] = q[k];
  const int64_t sum_off = RoundUp64(w.cols);
  for (int64_t k = w.cols; k < sum_off; ++k) dst[k] = 0;
  std::memcpy(dst + sum_off, &sum, 4);
}

void FloatIntRows(const QMatrix& w, const void* act, size_t act_stride, int n_tok, float* y,
                  int64_t y_stride, int64_t r0, int64_t r1) {
  const uint8_t* a0 = static_cast<const uint8_t*>(act);
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = w.Row(r);
    for (int t = 0; t < n_tok; ++t) {
      const float* x = reinterpret_cast<const float*>(a0 + t * act_stride);
      float acc = 0.0f;
      for (int64_t k = 0; k < w.cols; ++k) acc += x[k] * static_cast<float>(CodeAt(w.type, row, k));
      y[t * y_stride + r] = acc * w.row_scales[r];
    }
  }
}

void RegisterScalarIntKernels() {
  for (WType t : {WType::kInt8Channel, WType::kInt4Channel, WType::kInt2Channel}) {
    RegisterMatMulKernel(t, {"scalar", nullptr, RefActBytes, RefPrepare, RefRows});
    RegisterMatMulKernel(IntX16Type(t), {"scalar", nullptr, IntX16ActBytes, IntX16PrepareRef, IntX16RowsRef});
  }
}

}  // namespace internal

}  // namespace qatk::inference
