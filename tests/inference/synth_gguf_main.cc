// Not a test: writes a llama GGUF of any size with random weights, for speed
// measurements where the values do not matter (scripts/gpu_check.sh: a ~1B
// Q4_0 model). Codes are random bytes and block scales small and finite;
// norms are 1. No tokenizer merges: bench feeds random token ids.
//
//   synth_gguf OUT.gguf [--config configs/models/1b.json] [--type q4_0]
//                       [--output-type q8_0] [--layers N]
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "formats/gguf/gguf.h"
#include "formats/model_config.h"
#include "formats/quant/fp16.h"
#include "formats/quant/types.h"

namespace {

using qatk::GgmlType;

int Fail(const std::string& msg) {
  std::fprintf(stderr, "synth_gguf: %s\n", msg.c_str());
  return 1;
}

// rows x cols of `type`: random code bytes; every block's fp16 scale set to d.
std::vector<uint8_t> RandomTensor(std::mt19937_64& rng, GgmlType type, int64_t rows, int64_t cols,
                                  float d) {
  const uint64_t row_bytes = qatk::RowBytes(type, cols);
  std::vector<uint8_t> out(row_bytes * rows);
  for (size_t i = 0; i + 8 <= out.size(); i += 8) {
    const uint64_t v = rng();
    std::memcpy(&out[i], &v, 8);
  }
  const qatk::TypeTraits& t = qatk::Traits(type);
  const uint16_t dh = qatk::Fp32ToFp16(d);
  if (t.is_quantized) {
    for (size_t b = 0; b < out.size(); b += t.type_size) std::memcpy(&out[b], &dh, 2);
  } else if (type == GgmlType::kF16) {
    std::normal_distribution<float> nd(0.0f, d * 4);
    for (size_t i = 0; i < out.size(); i += 2) {
      const uint16_t h = qatk::Fp32ToFp16(nd(rng));
      std::memcpy(&out[i], &h, 2);
    }
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help") {
    std::fprintf(stderr,
                 "usage: synth_gguf OUT.gguf [--config CONFIG.json] [--type q4_0|q8_0|q2_0|f16] "
                 "[--output-type TYPE] [--layers N]\n");
    return argc < 2 ? 2 : 0;
  }
  std::string out = argv[1], config = std::string(QATK_SOURCE_DIR) + "/configs/models/1b.json";
  std::string type_name = "q4_0", out_type_name = "q8_0";
  int layers = -1;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--config") config = v;
    else if (k == "--type") type_name = v;
    else if (k == "--output-type") out_type_name = v;
    else if (k == "--layers") layers = std::stoi(v);
    else return Fail("unknown flag " + k);
  }
  auto c = qatk::LoadModelConfig(config);
  if (!c.ok()) return Fail(std::string(c.status().message()));
  auto type = qatk::TypeFromName(type_name);
  auto out_type = qatk::TypeFromName(out_type_name);
  if (!type.ok() || !out_type.ok()) return Fail("unknown tensor type");
  const int64_t E = c->hidden_size, F = c->intermediate_size, V = c->vocab_size;
  const int64_t H = c->num_attention_heads, Hk = c->num_key_value_heads, D = c->head_dim;
  const int L = layers > 0 ? layers : static_cast<int>(c->num_hidden_layers);
  auto w = qatk::gguf::GgufWriter::Create(out);
  if (!w.ok()) return Fail(std::string(w.status().message()));
  using qatk::gguf::Value;
  std::vector<std::string> tokens;
  for (int64_t i = 0; i < V; ++i) tokens.push_back("t" + std::to_string(i));
  const std::vector<std::pair<std::string, Value>> kvs = {
      {"general.architecture", Value::Str("llama")},
      {"general.name", Value::Str("qatkit synthetic (random weights)")},
      {"llama.context_length", Value::U32(static_cast<uint32_t>(c->max_position_embeddings))},
      {"llama.embedding_length", Value::U32(static_cast<uint32_t>(E))},
      {"llama.block_count", Value::U32(static_cast<uint32_t>(L))},
      {"llama.feed_forward_length", Value::U32(static_cast<uint32_t>(F))},
      {"llama.attention.head_count", Value::U32(static_cast<uint32_t>(H))},
      {"llama.attention.head_count_kv", Value::U32(static_cast<uint32_t>(Hk))},
      {"llama.attention.key_length", Value::U32(static_cast<uint32_t>(D))},
      {"llama.attention.value_length", Value::U32(static_cast<uint32_t>(D))},
      {"llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5f)},
      {"tokenizer.ggml.model", Value::Str("llama")},
      {"tokenizer.ggml.tokens", Value::StrArray(tokens)},
  };
  for (const auto& [k, v] : kvs) {
    if (auto s = w->AddKv(k, v); !s.ok()) return Fail(std::string(s.message()));
  }
  struct T {
    std::string name;
    GgmlType type;
    int64_t rows, cols;
  };
  std::vector<T> ts = {{"token_embd.weight", GgmlType::kQ8_0, V, E},
                       {"output_norm.weight", GgmlType::kF32, 1, E},
                       {"output.weight", *out_type, V, E}};
  for (int il = 0; il < L; ++il) {
    const std::string b = "blk." + std::to_string(il) + ".";
    ts.push_back({b + "attn_norm.weight", GgmlType::kF32, 1, E});
    ts.push_back({b + "attn_q.weight", *type, H * D, E});
    ts.push_back({b + "attn_k.weight", *type, Hk * D, E});
    ts.push_back({b + "attn_v.weight", *type, Hk * D, E});
    ts.push_back({b + "attn_output.weight", *type, E, H * D});
    ts.push_back({b + "ffn_norm.weight", GgmlType::kF32, 1, E});
    ts.push_back({b + "ffn_gate.weight", *type, F, E});
    ts.push_back({b + "ffn_up.weight", *type, F, E});
    ts.push_back({b + "ffn_down.weight", *type, E, F});
  }
  for (const T& t : ts) {
    std::vector<int64_t> ne = t.rows == 1 ? std::vector<int64_t>{t.cols} : std::vector<int64_t>{t.cols, t.rows};
    if (auto s = w->AddTensorInfo(t.name, t.type, ne); !s.ok()) return Fail(std::string(s.message()));
  }
  std::mt19937_64 rng(1);
  uint64_t bytes = 0;
  for (const T& t : ts) {
    std::vector<uint8_t> data;
    if (t.type == GgmlType::kF32) {
      std::vector<float> ones(t.rows * t.cols, 1.0f);
      data.resize(ones.size() * 4);
      std::memcpy(data.data(), ones.data(), data.size());
    } else {
      data = RandomTensor(rng, t.type, t.rows, t.cols, 0.002f);
    }
    bytes += data.size();
    if (auto s = w->WriteTensorData(data.data(), data.size()); !s.ok()) return Fail(std::string(s.message()));
  }
  if (auto s = w->Finish(); !s.ok()) return Fail(std::string(s.message()));
  std::fprintf(stderr, "synth_gguf: wrote %s (%d layers, %.1f MiB of tensors)\n", out.c_str(), L,
               bytes / 1048576.0);
  return 0;
}
