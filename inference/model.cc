// Weight helpers of the runtime Model (loading: model_loader.h).
#include "inference/model.h"

#include "formats/quant/codecs.h"
#include "formats/util/status_macros.h"

namespace qatk::inference {

void DequantizeMatrixRow(const QMatrix& m, int64_t r, float* out) {
  const uint8_t* row = m.Row(r);
  switch (m.type) {
    case WType::kF32: DequantizeRow(GgmlType::kF32, row, out, m.cols); return;
    case WType::kF16: DequantizeRow(GgmlType::kF16, row, out, m.cols); return;
    case WType::kBF16: DequantizeRow(GgmlType::kBF16, row, out, m.cols); return;
    case WType::kQ8_0: DequantizeRow(GgmlType::kQ8_0, row, out, m.cols); return;
    case WType::kQ4_0: DequantizeRow(GgmlType::kQ4_0, row, out, m.cols); return;
    case WType::kQ2_0: DequantizeRow(GgmlType::kQ2_0, row, out, m.cols); return;
    case WType::kQ4_K: DequantizeRow(GgmlType::kQ4_K, row, out, m.cols); return;
    case WType::kQ6_K: DequantizeRow(GgmlType::kQ6_K, row, out, m.cols); return;
    case WType::kInt8Channel: {
      const float s = m.row_scales[r];
      for (int64_t i = 0; i < m.cols; ++i) out[i] = static_cast<int8_t>(row[i]) * s;
      return;
    }
    default:
      QATK_CHECK(false, "embedding rows of this weight type are not supported");
  }
}

}  // namespace qatk::inference
