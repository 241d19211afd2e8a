// Reference quantize/dequantize for every stored type and for the intN
// schemes of QuantSpec (spec.h). These are the oracle:
// each SIMD kernel and the LibTorch fake-quant ops are tested against them,
// and they reproduce llama.cpp's *_ref quantizers byte for byte.
//
// Quantize functions reject non-finite input (kInvalidArgument naming the
// element index) instead of writing garbage. n must be a multiple of the
// type's block size (kInvalidArgument otherwise).
#ifndef QATK_FORMATS_QUANT_CODECS_H_
#define QATK_FORMATS_QUANT_CODECS_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "formats/quant/spec.h"
#include "formats/quant/types.h"

namespace qatk {

// Any type: x[n] -> dst (RowBytes(type, n) bytes). Q4_K/Q6_K use ggml's
// unweighted reference (formats/quant/kquants.h; QuantizeRows there takes an
// importance matrix).
absl::Status QuantizeRow(GgmlType type, const float* x, int64_t n, void* dst);
// Any type: src -> y[n]. Never fails (the bytes are whatever they are).
void DequantizeRow(GgmlType type, const void* src, float* y, int64_t n);

// Unchecked block quantizers (inputs assumed finite), exactly ggml's _ref.
void QuantizeBlockQ4_0(const float* x, BlockQ4_0* out);   // 32 values
void QuantizeBlockQ8_0(const float* x, BlockQ8_0* out);   // 32 values
void QuantizeBlockQ2_0(const float* x, BlockQ2_0* out);   // 64 values
// Q8_0 as llama.cpp's x86 CPU backend quantizes activations (the input of
// every Q4_0/Q8_0/Q2_0 matmul, and F32->Q8_0 KV-cache copies): the same
// d = amax/127 stored as fp16, but id = 127/amax (not 1/d) and round half to
// even (not half away from zero). Differs from QuantizeBlockQ8_0 in a few
// codes per thousand (ties and one-ulp reciprocal differences); the q8_0_act
// scheme, the runtime's activation path and the fake-quant all use this one.
void QuantizeBlockQ8_0Act(const float* x, BlockQ8_0* out);  // 32 values
// QuantizeBlockQ8_0Act over n_blocks consecutive blocks; AVX2 when the CPU
// has it, bit-identical (the runtime's and the fake quant's fast path).
void QuantizeRowQ8_0Act(const float* x, BlockQ8_0* out, int64_t n_blocks);
void DequantizeBlockQ4_0(const BlockQ4_0& b, float* y);
void DequantizeBlockQ8_0(const BlockQ8_0& b, float* y);
void DequantizeBlockQ2_0(const BlockQ2_0& b, float* y);

// Q4_0 codes without packing: q[i] in 0..15 and the fp32 scale d before fp16
// rounding. Used by fake-quant tests and the exporter's bit-exact checks.
void Q4_0Codes(const float* x, uint8_t* q /*32*/, float* d_fp32);

// Q4_0 with a given fp32 scale d instead of the block's extremum (learned
// Q4_0 scales, scale_rule "learned"): id = d ? 1/d : 0 (fp32);
// q = clamp(trunc(x*id + 8.5f), 0, 15), and 0 where x*id + 8.5f is not
// finite; stored d = fp16(d). With the d that Q4_0Codes derives, the codes
// and bytes equal QuantizeBlockQ4_0's exactly (|x*id| <= 8 then, so the clamp
// at 0 never acts). Any finite d is valid: llama.cpp reads the block as it
// reads any Q4_0 block.
void Q4_0CodesWithScale(const float* x, float d, uint8_t* q /*32*/);
void QuantizeBlockQ4_0WithScale(const float* x, float d, BlockQ4_0* out);

// ---- Reference intN codec (per-channel rows, per-tensor, per-token) --------
// All functions take the spec of an int_* scheme (aborts otherwise) and are
// compiled without FMA contraction.

// Store(s): s as the consumer will read it (see spec.h's header comment).
float StoreScale(const QuantSpec& spec, float s);
// Rounds v per spec.rounding (half_away_from_zero or half_even).
float RoundValue(const QuantSpec& spec, float v);
// Scale of x[n] per spec.scale_rule (absmax; mse and learned use the mse
// search), already Store()d. 0 when x is all zeros.
float ChooseScale(const QuantSpec& spec, const float* x, int64_t n);
float ChooseScaleAbsmax(const QuantSpec& spec, const float* x, int64_t n);
float ChooseScaleMse(const QuantSpec& spec, const float* x, int64_t n);
// Codes of x[n] for a given (Store()d) scale: q[i] in [-Qn, Qp].
void QuantizeWithScale(const QuantSpec& spec, const float* x, int64_t n, float s, int8_t* q);
void DequantizeWithScale(const int8_t* q, int64_t n, float s, float* y);
// dequantize(quantize(x; s)) in one go; returns the squared error sum (double).
double FakeQuantizeWithScale(const QuantSpec& spec, const float* x, int64_t n, float s, float* y);

// A weight [rows, cols] quantized per spec: block schemes give ggml rows
// (bytes), int_channel gives int8 codes + one scale per row.
struct QuantizedMatrix {
  QuantSpec spec;
  int64_t rows = 0, cols = 0;
  std::vector<uint8_t> blocks;  // block schemes: rows * RowBytes(type, cols)
  std::vector<int8_t> codes;    // int_channel: rows * cols, row-major
  std::vector<float> scales;    // int_channel: rows (Store()d)
};
// `row_scales` (may be empty) overrides the scale rule with given scales
// (learned/searched weight_scale): int_channel takes one per row, Store()d
// first; q4_0 takes one fp32 d per block ([rows, cols/32] row-major, see
// QuantizeBlockQ4_0WithScale); other block schemes take none.
// kInvalidArgument for non-finite input or cols not a multiple of the block.
absl::StatusOr<QuantizedMatrix> QuantizeMatrix(const QuantSpec& spec, const float* w, int64_t rows,
                                               int64_t cols, const std::vector<float>& row_scales);
// w^[rows*cols] from a QuantizedMatrix.
std::vector<float> DequantizeMatrix(const QuantizedMatrix& m);

}  // namespace qatk

#endif  // QATK_FORMATS_QUANT_CODECS_H_
