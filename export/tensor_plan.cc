#include "export/tensor_plan.h"

#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "formats/util/status_macros.h"

namespace qatk::exporter {

const char* GgufArchName(const ModelConfig& c) { return ArchOf(c).gguf_arch; }

std::vector<GgufTensorSpec> GgufTensorList(const ModelConfig& c) {
  std::vector<GgufTensorSpec> out;
  for (const ArchTensor& a : ArchTensors(c)) {
    GgufTensorSpec t;
    t.hf_name = a.hf_name;
    t.gguf_name = a.gguf_name;
    t.module = a.quantizable() ? a.module : "";
    t.shape = a.shape;
    t.is_norm = !a.quantizable();
    t.permute_heads = a.permute_heads;
    t.add_one = a.add_one;
    out.push_back(std::move(t));
  }
  return out;
}

void PermuteRowsForNormRope(const float* src, float* dst, int64_t n_heads, int64_t d,
                            int64_t cols) {
  QATK_CHECK(d % 2 == 0, "head_dim must be even for rope");
  const int64_t half = d / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        const float* s = src + (h * d + j * half + i) * cols;
        float* t = dst + (h * d + 2 * i + j) * cols;
        std::memcpy(t, s, sizeof(float) * cols);
      }
    }
  }
}

void UnpermuteRowsForNormRope(const float* src, float* dst, int64_t n_heads, int64_t d,
                              int64_t cols) {
  QATK_CHECK(d % 2 == 0, "head_dim must be even for rope");
  const int64_t half = d / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        const float* s = src + (h * d + 2 * i + j) * cols;
        float* t = dst + (h * d + j * half + i) * cols;
        std::memcpy(t, s, sizeof(float) * cols);
      }
    }
  }
}

bool IsQuantizerState(const std::string& hf_name) {
  return absl::EndsWith(hf_name, ".weight_scale") || absl::EndsWith(hf_name, ".input_scale") ||
         absl::EndsWith(hf_name, ".k_scale") || absl::EndsWith(hf_name, ".v_scale");
}

}  // namespace qatk::exporter
