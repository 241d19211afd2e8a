// The runtime's view of one weight matrix: a type tag, the shape and a
// zero-copy pointer into the mapped model file. Every linear layer of the
// forward pass is a QMatrix; MatMul (matmul.h) dispatches on `type`.
//
// Layout: `rows` output channels, each a contiguous run of `row_bytes` bytes
// holding `cols` input elements (PyTorch [out, in] = GGUF ne {in, out}).
//   GGUF types (block layouts in formats/quant/types.h):
//     kF32, kF16, kBF16                    one element at a time
//     kQ8_0, kQ4_0 (32 per block), kQ2_0 (64 per block)
//     kQ4_K, kQ6_K (256 per super-block)
//   Mobile per-output-channel types (codes + one scale per row, see
//   docs/formats/mobile.md for the nibble/crumb order):
//     kInt8Channel  int8 codes, 1 per byte        w = q * row_scale[r]
//     kInt4Channel  int4 codes, 2 per byte        w = q * row_scale[r]
//     kInt2Channel  int2 codes, 4 per byte        w = q * row_scale[r]
//   with an optional static per-tensor activation scale `act_scale` (> 0:
//   activations are quantized to int8 as clamp(round(x / act_scale))).
//   Runtime-owned layouts (made at load time by kernels/x16.h, never in a file):
//     kQ4_0x16  Q4_0 with 16 rows interleaved per block column; `data` is
//               the packed buffer (layout in kernels/x16.h), `row_bytes` the Q4_0
//               bytes per row (for byte counts only: Row() is meaningless).
//     kInt8x16, kInt4x16, kInt2x16  the int channel types with a static
//               activation scale, 16 rows interleaved per 4-byte column
//               chunk, codes offset binary (layout in kernels/x16.h); row_scales,
//               act_* and row_bytes as the channel type's (Row() meaningless).
#ifndef QATK_INFERENCE_WEIGHTS_H_
#define QATK_INFERENCE_WEIGHTS_H_

#include <cstddef>
#include <cstdint>

#include "formats/quant/spec.h"
#include "formats/quant/types.h"

namespace qatk::inference {

enum class WType : uint8_t {
  kF32 = 0,
  kF16,
  kBF16,
  kQ8_0,
  kQ4_0,
  kQ2_0,
  kInt8Channel,
  kInt4Channel,
  kInt2Channel,
  kQ4_0x16,
  kInt8x16,
  kInt4x16,
  kInt2x16,
  kQ4_K,
  kQ6_K,
  kCount,  // number of types (table size)
};
constexpr int kNumWTypes = static_cast<int>(WType::kCount);

const char* WTypeName(WType t);
// GGUF tensor types the runtime can multiply with; false for others.
bool WTypeFromGgml(GgmlType g, WType* out);

struct QMatrix {
  WType type = WType::kF32;
  int64_t rows = 0;          // output features
  int64_t cols = 0;          // input features
  const void* data = nullptr;  // rows * row_bytes bytes, not owned
  size_t row_bytes = 0;
  // Per-channel types only: [rows] fp32 scales, not owned (the mobile
  // loader points into the file, or into its own storage if it converts).
  const float* row_scales = nullptr;
  // Per-channel types only: static activation scale; 0 = none (weight-only:
  // fp32 activations times the dequantized codes).
  float act_scale = 0.0f;
  // The activation quantizer act_scale belongs to (int_tensor QuantSpec of
  // formats/quant/spec.h): codes in [-Qn, Qp] for act_bits/act_narrow,
  // rounded per act_rounding. Set by the mobile loader (mobile kernels).
  int act_bits = 8;
  bool act_narrow = false;
  Rounding act_rounding = Rounding::kHalfAwayFromZero;

  const uint8_t* Row(int64_t r) const {
    return static_cast<const uint8_t*>(data) + static_cast<size_t>(r) * row_bytes;
  }
};

// A QMatrix over a GGUF tensor's bytes (rows = ne[1], cols = ne[0]).
// Aborts on a type without a WType; loaders check WTypeFromGgml first.
QMatrix MakeGgufMatrix(GgmlType type, int64_t rows, int64_t cols, const void* data);

}  // namespace qatk::inference

#endif  // QATK_INFERENCE_WEIGHTS_H_
