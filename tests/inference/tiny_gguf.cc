#include "tests/inference/tiny_gguf.h"

#include <random>
#include <vector>

#include "formats/gguf/gguf.h"
#include "formats/quant/codecs.h"
#include "gtest/gtest.h"

namespace qatk::inference::testing {

constexpr int E = kTinyE, H = kTinyH, Hk = kTinyHk, D = kTinyD, F = kTinyF, L = kTinyL,
              V = kTinyV;

namespace {

void AddTensor(gguf::GgufWriter& w, std::vector<std::vector<uint8_t>>& data, std::mt19937& rng,
               const std::string& name, GgmlType type, int64_t rows, int64_t cols, float mean) {
  std::normal_distribution<float> dist(mean, 0.3f);
  std::vector<float> x(rows * cols);
  for (float& v : x) v = dist(rng);
  std::vector<uint8_t> q(RowBytes(type, cols) * rows);
  ASSERT_TRUE(QuantizeRow(type, x.data(), rows * cols, q.data()).ok());
  std::vector<int64_t> ne = rows == 1 ? std::vector<int64_t>{cols} : std::vector<int64_t>{cols, rows};
  ASSERT_TRUE(w.AddTensorInfo(name, type, ne).ok()) << name;
  data.push_back(std::move(q));
}

}  // namespace

void AddModelKvs(gguf::GgufWriter& w, const std::string& arch, const TinyDims& d, int V) {
  std::vector<std::string> tokens;
  for (int i = 0; i < V; ++i) tokens.push_back("t" + std::to_string(i));
  const std::string p = arch + ".";
  EXPECT_TRUE(w.AddKv("general.architecture", gguf::Value::Str(arch)).ok());
  EXPECT_TRUE(w.AddKv(p + "context_length", gguf::Value::U32(d.ctx)).ok());
  EXPECT_TRUE(w.AddKv(p + "embedding_length", gguf::Value::U32(d.E)).ok());
  EXPECT_TRUE(w.AddKv(p + "block_count", gguf::Value::U32(d.L)).ok());
  EXPECT_TRUE(w.AddKv(p + "feed_forward_length", gguf::Value::U32(d.F)).ok());
  EXPECT_TRUE(w.AddKv(p + "attention.head_count", gguf::Value::U32(d.H)).ok());
  EXPECT_TRUE(w.AddKv(p + "attention.head_count_kv", gguf::Value::U32(d.Hk)).ok());
  EXPECT_TRUE(w.AddKv(p + "attention.key_length", gguf::Value::U32(d.D)).ok());
  EXPECT_TRUE(w.AddKv(p + "attention.value_length", gguf::Value::U32(d.D)).ok());
  EXPECT_TRUE(w.AddKv(p + "attention.layer_norm_rms_epsilon", gguf::Value::F32(d.eps)).ok());
  EXPECT_TRUE(w.AddKv("tokenizer.ggml.model", gguf::Value::Str("llama")).ok());
  EXPECT_TRUE(w.AddKv("tokenizer.ggml.tokens", gguf::Value::StrArray(tokens)).ok());
}

std::string WriteTinyModel(const std::string& arch) {
  const std::string path = ::testing::TempDir() + "/tiny_" + arch + ".gguf";
  auto w = gguf::GgufWriter::Create(path);
  EXPECT_TRUE(w.ok());
  TinyDims d;
  d.E = E, d.L = L, d.F = F, d.H = H, d.Hk = Hk, d.D = D;
  AddModelKvs(*w, arch, d, V);
  const std::string p = arch + ".";
  if (arch == "gemma3") {
    EXPECT_TRUE(w->AddKv(p + "attention.sliding_window", gguf::Value::U32(5)).ok());
    EXPECT_TRUE(w->AddKv(p + "final_logit_softcapping", gguf::Value::F32(30.0f)).ok());
  }
  std::mt19937 rng(42);
  std::vector<std::vector<uint8_t>> data;
  AddTensor(*w, data, rng, "token_embd.weight", GgmlType::kQ8_0, V, E, 0);
  AddTensor(*w, data, rng, "output_norm.weight", GgmlType::kF32, 1, E, 1);
  for (int il = 0; il < L; ++il) {
    const std::string b = "blk." + std::to_string(il) + ".";
    AddTensor(*w, data, rng, b + "attn_norm.weight", GgmlType::kF32, 1, E, 1);
    AddTensor(*w, data, rng, b + "attn_q.weight", GgmlType::kQ4_0, H * D, E, 0);
    AddTensor(*w, data, rng, b + "attn_k.weight", GgmlType::kQ4_0, Hk * D, E, 0);
    AddTensor(*w, data, rng, b + "attn_v.weight", GgmlType::kF16, Hk * D, E, 0);
    AddTensor(*w, data, rng, b + "attn_output.weight", GgmlType::kQ8_0, E, H * D, 0);
    AddTensor(*w, data, rng, b + "ffn_norm.weight", GgmlType::kF32, 1, E, 1);
    AddTensor(*w, data, rng, b + "ffn_gate.weight", GgmlType::kQ2_0, F, E, 0);
    AddTensor(*w, data, rng, b + "ffn_up.weight", GgmlType::kBF16, F, E, 0);
    AddTensor(*w, data, rng, b + "ffn_down.weight", GgmlType::kQ4_0, E, F, 0);
    if (arch == "gemma3") {
      AddTensor(*w, data, rng, b + "post_attention_norm.weight", GgmlType::kF32, 1, E, 1);
      AddTensor(*w, data, rng, b + "post_ffw_norm.weight", GgmlType::kF32, 1, E, 1);
      AddTensor(*w, data, rng, b + "attn_q_norm.weight", GgmlType::kF32, 1, D, 1);
      AddTensor(*w, data, rng, b + "attn_k_norm.weight", GgmlType::kF32, 1, D, 1);
    }
  }
  for (const auto& d : data) EXPECT_TRUE(w->WriteTensorData(d.data(), d.size()).ok());
  EXPECT_TRUE(w->Finish().ok());
  return path;
}

}  // namespace qatk::inference::testing
