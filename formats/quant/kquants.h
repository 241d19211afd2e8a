// Reference codecs of llama.cpp's K-quants Q4_K and Q6_K (super-blocks of
// 256, block layouts in formats/quant/types.h), byte for byte as ggml's
// ggml_quantize_chunk writes them:
//   - without importance weights: quantize_row_q4_K_ref / quantize_row_q6_K_ref
//     (what llama-quantize uses when no imatrix is given);
//   - with per-column importance weights (an imatrix entry, n_per_row
//     floats shared by every row): ggml's weighted search (quantize_q4_K /
//     quantize_q6_K), a different algorithm, not the ref one with weights.
// And Q8_K, the 256-block int8 activation format of llama.cpp's K-quant dot
// products (quantize_row_q8_K_ref, which the x86 CPU backend also uses).
//
// Inputs are assumed finite here (QuantizeRow in codecs.h checks them).
#ifndef QATK_FORMATS_QUANT_KQUANTS_H_
#define QATK_FORMATS_QUANT_KQUANTS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "formats/quant/types.h"

namespace qatk {

struct BlockQ8_K {
  float d;
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];  // sums of 16 consecutive codes
};
static_assert(sizeof(BlockQ8_K) == 292, "Q8_K block must be 292 bytes");

// One row of n values (n % 256 == 0). quant_weights: null, or n importance
// weights for this row's columns.
void QuantizeRowQ4_K(const float* x, BlockQ4_K* y, int64_t n, const float* quant_weights);
void QuantizeRowQ6_K(const float* x, BlockQ6_K* y, int64_t n, const float* quant_weights);
void DequantizeRowQ4_K(const BlockQ4_K* x, float* y, int64_t n);
void DequantizeRowQ6_K(const BlockQ6_K* x, float* y, int64_t n);
void QuantizeRowQ8_K(const float* x, BlockQ8_K* y, int64_t n);

// Q4_K's packed 6-bit scale and min of sub-block j (0..7).
inline void Q4_KScaleMin(const uint8_t* scales, int j, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = scales[j] & 63;
    *m = scales[j + 4] & 63;
  } else {
    *sc = (scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4);
    *m = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
  }
}

// ggml_quantize_chunk for any stored type: nrows rows of n_per_row values
// into dst (nrows * RowBytes(type, n_per_row) bytes). imatrix (n_per_row
// weights) is supported for Q4_K and Q6_K only (kUnimplemented for other
// quantized types, ignored for float types, as ggml does); the input is
// checked as QuantizeRow checks it, and the weights must be finite.
absl::Status QuantizeRows(GgmlType type, const float* x, int64_t nrows, int64_t n_per_row,
                          const float* imatrix, void* dst);

}  // namespace qatk

#endif  // QATK_FORMATS_QUANT_KQUANTS_H_
