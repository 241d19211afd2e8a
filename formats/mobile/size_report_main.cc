// qatk-size-report CONFIG.json...: bytes of the tensor data of one model
// shape stored as F16 GGUF, Q4_0 GGUF and the mobile format (mobile recipe),
// computed from the formats' byte rules (formats/quant/types.h RowBytes with
// GGUF's 32-byte alignment; mobile::LayoutData). Prints a Markdown table.
//
//   F16 GGUF   2-D weights F16, norms F32
//   Q4_0 GGUF  2-D weights Q4_0 (embedding and head included), norms F32
//   mobile     int4 per-channel linears, int2 head, int8 per-row embeddings,
//              f16 row scales, F32 norms, F32 k/v cache scales per layer
// Metadata and tokenizer (the same content in every format) are excluded.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "formats/mobile/mobile_format.h"
#include "formats/model_arch.h"
#include "formats/model_config.h"
#include "formats/quant/types.h"
#include "formats/util/file_io.h"
#include "formats/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace qatk {
namespace {

struct Tensor {
  std::string name;
  std::vector<uint64_t> dims;  // PyTorch order
  TensorRole role;
};

std::vector<Tensor> HfTensors(const ModelConfig& c) {
  std::vector<Tensor> t;
  for (const ArchTensor& a : ArchTensors(c)) {
    t.push_back({a.hf_name, std::vector<uint64_t>(a.shape.begin(), a.shape.end()), a.role()});
  }
  return t;
}

uint64_t GgufDataBytes(const std::vector<Tensor>& ts, GgmlType matrix_type) {
  uint64_t total = 0;
  for (const Tensor& t : ts) {
    const bool matrix = t.dims.size() == 2;
    const uint64_t rows = matrix ? t.dims[0] : 1;
    const int64_t ne0 = static_cast<int64_t>(t.dims.back());
    const uint64_t bytes = rows * RowBytes(matrix ? matrix_type : GgmlType::kF32, ne0);
    total += (bytes + 31) / 32 * 32;
  }
  return total;
}

uint64_t MobileDataBytes(const std::vector<Tensor>& ts, const ModelConfig& c) {
  std::vector<mobile::TensorInfo> infos;
  for (const Tensor& t : ts) {
    mobile::TensorInfo i{t.name, mobile::DType::kF32, t.dims};
    if (t.dims.size() == 2) {
      i.scale_type = mobile::ScaleType::kF16;
      i.dtype = t.role == TensorRole::kEmbedding    ? mobile::DType::kInt8Channel
                : t.role == TensorRole::kOutputHead ? mobile::DType::kInt2Channel
                                                    : mobile::DType::kInt4Channel;
    }
    infos.push_back(i);
  }
  for (const ArchCache& k : ArchCaches(c)) {
    infos.push_back({k.scale_name, mobile::DType::kF32, {1}});
  }
  return mobile::LayoutData(&infos);
}

std::string Human(uint64_t b) { return absl::StrFormat("%.2f MiB", b / 1048576.0); }

absl::Status Run(int argc, char** argv) {
  if (argc < 2) return absl::InvalidArgumentError("usage: qatk-size-report CONFIG.json...");
  std::printf("| config | params | F16 GGUF | Q4_0 GGUF | mobile | mobile / Q4_0 | mobile / F16 |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  for (int i = 1; i < argc; ++i) {
    ASSIGN_OR_RETURN(std::string text, ReadFileToString(argv[i]));
    const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
    ASSIGN_OR_RETURN(ModelConfig c, ModelConfig::FromJson(j, argv[i]));
    RETURN_IF_ERROR(c.Validate());
    const auto ts = HfTensors(c);
    const uint64_t f16 = GgufDataBytes(ts, GgmlType::kF16);
    const uint64_t q4 = GgufDataBytes(ts, GgmlType::kQ4_0);
    const uint64_t mob = MobileDataBytes(ts, c);
    std::printf("| %s | %lld | %llu B (%s) | %llu B (%s) | %llu B (%s) | %.3f | %.3f |\n", argv[i],
                static_cast<long long>(c.num_parameters()), static_cast<unsigned long long>(f16),
                Human(f16).c_str(), static_cast<unsigned long long>(q4), Human(q4).c_str(),
                static_cast<unsigned long long>(mob), Human(mob).c_str(),
                static_cast<double>(mob) / q4, static_cast<double>(mob) / f16);
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace qatk

int main(int argc, char** argv) {
  const absl::Status s = qatk::Run(argc, argv);
  if (!s.ok()) {
    std::fprintf(stderr, "qatk-size-report: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}
