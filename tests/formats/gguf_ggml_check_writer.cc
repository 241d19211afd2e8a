// Writes a GGUF with every metadata value type and every tensor type we
// support, plus a JSON manifest of what it wrote, for gguf_ggml_check.py to
// compare against llama.cpp's own GGUF loader (libggml-base.so).
//
// Usage: gguf_ggml_check_writer OUT.gguf ALIGNMENT
// Tensor k's byte i is (i*31 + k*7 + (i >> 8)) & 0xFF.
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "formats/gguf/gguf.h"
#include "formats/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace qatk::gguf {
namespace {

struct Spec {
  const char* name;
  GgmlType type;
  std::vector<int64_t> ne;
};

absl::Status Run(const std::string& path, uint32_t alignment) {
  nlohmann::json manifest;
  ASSIGN_OR_RETURN(GgufWriter w, GgufWriter::Create(path, alignment));
  std::vector<std::pair<std::string, Value>> kv = {
      {"general.architecture", Value::Str("llama")},
      {"general.name", Value::Str("qatk ggml check \xc3\xa9")},
      {"t.u8", Value::Scalar(ValueType::kUint8, uint64_t{200})},
      {"t.i8", Value::Scalar(ValueType::kInt8, int64_t{-100})},
      {"t.u16", Value::Scalar(ValueType::kUint16, uint64_t{60000})},
      {"t.i16", Value::Scalar(ValueType::kInt16, int64_t{-30000})},
      {"t.u32", Value::U32(4000000000u)},
      {"t.i32", Value::I32(-2000000000)},
      {"t.f32", Value::F32(0.25f)},
      {"t.bool", Value::Bool(true)},
      {"t.u64", Value::U64(uint64_t{1} << 60)},
      {"t.i64", Value::Scalar(ValueType::kInt64, int64_t{-(int64_t{1} << 50)})},
      {"t.f64", Value::Scalar(ValueType::kFloat64, -0.125)},
      {"tokenizer.ggml.tokens", Value::StrArray({"<unk>", "<s>", "</s>", "\xe2\x96\x81the", ""})},
      {"tokenizer.ggml.scores", Value::F32Array({0.0f, 0.0f, 0.0f, -1.5f, -2.0f})},
      {"tokenizer.ggml.token_type", Value::I32Array({2, 3, 3, 1, 1})},
      {"a.u32", Value::U32Array({7, 8})},
  };
  for (auto& [k, v] : kv) {
    RETURN_IF_ERROR(w.AddKv(k, v));
    nlohmann::json e = {{"key", k}, {"type", static_cast<int>(v.type)}};
    if (v.type == ValueType::kArray) {
      e["elem_type"] = static_cast<int>(v.elem_type);
      e["n"] = v.ArraySize();
      if (v.elem_type == ValueType::kString) e["strings"] = std::get<std::vector<std::string>>(v.v);
    } else if (v.type == ValueType::kString) {
      e["string"] = std::get<std::string>(v.v);
    } else {
      std::visit([&e](const auto& x) { e["value"] = x; }, v.v);
    }
    manifest["kv"].push_back(e);
  }
  if (alignment != 32) manifest["kv"].push_back({{"key", "general.alignment"}, {"type", 4}, {"value", alignment}});
  const std::vector<Spec> specs = {
      {"token_embd.weight", GgmlType::kQ8_0, {64, 5}}, {"blk.0.attn_q.weight", GgmlType::kQ4_0, {96, 3}},
      {"output_norm.weight", GgmlType::kF32, {7}},     {"blk.0.ffn_up.weight", GgmlType::kQ2_0, {128, 2}},
      {"half", GgmlType::kF16, {5, 3, 2}},              {"bhalf", GgmlType::kBF16, {3, 1, 2, 2}},
  };
  for (const Spec& s : specs) RETURN_IF_ERROR(w.AddTensorInfo(s.name, s.type, s.ne));
  uint64_t offset = 0;
  for (size_t k = 0; k < specs.size(); ++k) {
    TensorInfo t{specs[k].name, specs[k].type, specs[k].ne};
    const uint64_t nbytes = t.n_elements() / Traits(t.type).block_size * Traits(t.type).type_size;
    std::vector<uint8_t> b(nbytes);
    for (size_t i = 0; i < nbytes; ++i) b[i] = static_cast<uint8_t>(i * 31 + k * 7 + (i >> 8));
    RETURN_IF_ERROR(w.WriteTensorData(b.data(), b.size()));
    manifest["tensors"].push_back({{"name", t.name}, {"type", static_cast<int>(t.type)}, {"ne", t.ne},
                                   {"offset", offset}, {"nbytes", nbytes}});
    offset += (nbytes + alignment - 1) / alignment * alignment;
  }
  RETURN_IF_ERROR(w.Finish());
  ASSIGN_OR_RETURN(GgufFile f, GgufFile::Open(path));
  manifest["alignment"] = alignment;
  manifest["data_offset"] = f.data_offset();
  std::ofstream(path + ".json") << manifest.dump(1);
  return absl::OkStatus();
}

}  // namespace
}  // namespace qatk::gguf

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s OUT.gguf ALIGNMENT\n", argv[0]);
    return 2;
  }
  const absl::Status s = qatk::gguf::Run(argv[1], static_cast<uint32_t>(std::stoul(argv[2])));
  if (!s.ok()) std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
  return s.ok() ? 0 : 1;
}
