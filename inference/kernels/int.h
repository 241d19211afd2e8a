// Integer kernels of the mobile path: int8 activations (static per-tensor
// scale) x int8 / int4 / int2 per-output-channel weights, int32
// accumulation, y[t, r] = acc[t, r] * act_scale * row_scale[r].
//
// Activations get exactly the codes of the reference codec of
// formats/quant/spec.h (QuantizeWithScale with the QMatrix's act_bits /
// act_narrow / act_rounding; a call-free loop tested bit-exact against it),
// i.e. the codes the QAT fake-quant graph simulated. Every
// target computes the same int32 accumulators, hence bit-identical y.
// Weight-only matrices (act_scale == 0) take fp32 activations:
// y[t, r] = row_scale[r] * sum_k x[t, k] * code[r, k] (scalar on all targets).
//
// Targets: "scalar" (the oracle: natural element order, per-element code
// extraction), "avx2" (maddubs on offset-binary codes), "avx512vnni"
// (vpdpbusd). Never AMX. SIMD targets read activations prepared in their
// block order (int_internal.h).
//
// The row-interleaved x16 types (kInt8x16 / kInt4x16 / kInt2x16, x16.h),
// made at load for matrices with a static activation scale, have kernels of
// their own (x86_avx{2,512}_x16.cc) giving the same int32 sums and the same
// y, and a scalar oracle (int.cc). All are in the MatMul registry from its
// start: nothing to register.
#ifndef QATK_INFERENCE_KERNELS_INT_H_
#define QATK_INFERENCE_KERNELS_INT_H_

#include <cstdint>

#include "inference/kernels/matmul.h"
#include "inference/weights.h"

namespace qatk::inference {

// The activation quantizer of w as a QuantSpec (int_tensor, w.act_bits, ...).
QuantSpec ActivationSpec(const QMatrix& w);
// q[cols] = clamp(round(x * (1/act_scale)), -Qn, Qp), equal to
// QuantizeWithScale(ActivationSpec(w), ...) for finite x.
void QuantizeActivations(const QMatrix& w, const float* x /*[cols]*/, int8_t* q /*[cols]*/);

// Codes per byte of an int channel type or of its x16 layout (x16.h):
// 1 (int8), 2 (int4), 4 (int2); 0 for other types.
inline int CodesPerByte(WType t) {
  switch (t) {
    case WType::kInt8Channel: case WType::kInt8x16: return 1;
    case WType::kInt4Channel: case WType::kInt4x16: return 2;
    case WType::kInt2Channel: case WType::kInt2x16: return 4;
    default: return 0;
  }
}

// Code k of a packed row of an int channel type (two's complement, nibble /
// crumb order of docs/formats/mobile.md).
inline int CodeAt(WType t, const uint8_t* row, int64_t k) {
  switch (t) {
    case WType::kInt8Channel: return static_cast<int8_t>(row[k]);
    case WType::kInt4Channel:
      return static_cast<int8_t>(static_cast<uint8_t>(row[k >> 1] >> ((k & 1) * 4)) << 4) >> 4;
    case WType::kInt2Channel:
      return static_cast<int8_t>(static_cast<uint8_t>(row[k >> 2] >> ((k & 3) * 2)) << 6) >> 6;
    default: return 0;
  }
}

// Reference int32 dot product of int8 activations a[cols] (natural order)
// with one packed weight row.
int32_t DotIntRef(WType t, const uint8_t* w_row, const int8_t* a, int64_t cols);

}  // namespace qatk::inference

#endif  // QATK_INFERENCE_KERNELS_INT_H_
