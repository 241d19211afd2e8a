#include "formats/model_arch.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace qatk {
namespace {

// E 64, F 128, H 4, Hk 2, D 16 (q 64, kv 32), V 320, 2 layers.
ModelConfig Tiny(const std::string& model_type, bool tied) {
  ModelConfig c;
  c.model_type = model_type;
  c.vocab_size = 320;
  c.hidden_size = 64;
  c.intermediate_size = 128;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 16;
  c.max_position_embeddings = 256;
  c.tie_word_embeddings = tied;
  return c;
}

struct Row {
  std::string hf, gguf;
  std::vector<int64_t> shape;
};

std::vector<Row> Rows(const ModelConfig& c) {
  std::vector<Row> out;
  for (const ArchTensor& t : ArchTensors(c)) out.push_back({t.hf_name, t.gguf_name, t.shape});
  return out;
}

void ExpectRow(const Row& got, const std::string& hf, const std::string& gguf,
               std::vector<int64_t> shape) {
  EXPECT_EQ(got.hf, hf);
  EXPECT_EQ(got.gguf, gguf);
  EXPECT_EQ(got.shape, shape) << hf;
}

// The file order is part of the GGUF and mobile formats: pinned here.
TEST(ModelArch, LlamaTensorsInFileOrder) {
  const std::vector<Row> r = Rows(Tiny("llama", false));
  ASSERT_EQ(r.size(), 1 + 2 * 9 + 2u);
  ExpectRow(r[0], "model.embed_tokens.weight", "token_embd.weight", {320, 64});
  ExpectRow(r[1], "model.layers.0.input_layernorm.weight", "blk.0.attn_norm.weight", {64});
  ExpectRow(r[2], "model.layers.0.self_attn.q_proj.weight", "blk.0.attn_q.weight", {64, 64});
  ExpectRow(r[3], "model.layers.0.self_attn.k_proj.weight", "blk.0.attn_k.weight", {32, 64});
  ExpectRow(r[4], "model.layers.0.self_attn.v_proj.weight", "blk.0.attn_v.weight", {32, 64});
  ExpectRow(r[5], "model.layers.0.self_attn.o_proj.weight", "blk.0.attn_output.weight", {64, 64});
  ExpectRow(r[6], "model.layers.0.post_attention_layernorm.weight", "blk.0.ffn_norm.weight", {64});
  ExpectRow(r[7], "model.layers.0.mlp.gate_proj.weight", "blk.0.ffn_gate.weight", {128, 64});
  ExpectRow(r[8], "model.layers.0.mlp.up_proj.weight", "blk.0.ffn_up.weight", {128, 64});
  ExpectRow(r[9], "model.layers.0.mlp.down_proj.weight", "blk.0.ffn_down.weight", {64, 128});
  ExpectRow(r[10], "model.layers.1.input_layernorm.weight", "blk.1.attn_norm.weight", {64});
  ExpectRow(r[19], "model.norm.weight", "output_norm.weight", {64});
  ExpectRow(r[20], "lm_head.weight", "output.weight", {320, 64});
}

TEST(ModelArch, Gemma3TensorsInFileOrder) {
  const std::vector<Row> r = Rows(Tiny("gemma3_text", true));
  ASSERT_EQ(r.size(), 1 + 2 * 13 + 1u);  // tied: no lm_head
  ExpectRow(r[0], "model.embed_tokens.weight", "token_embd.weight", {320, 64});
  const char* hf[] = {"input_layernorm", "self_attn.q_proj", "self_attn.k_proj",
                      "self_attn.v_proj", "self_attn.o_proj", "self_attn.q_norm",
                      "self_attn.k_norm", "post_attention_layernorm",
                      "pre_feedforward_layernorm", "mlp.gate_proj", "mlp.up_proj",
                      "mlp.down_proj", "post_feedforward_layernorm"};
  const char* gguf[] = {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                        "attn_q_norm", "attn_k_norm", "post_attention_norm", "ffn_norm",
                        "ffn_gate", "ffn_up", "ffn_down", "post_ffw_norm"};
  const std::vector<std::vector<int64_t>> shape = {
      {64}, {64, 64}, {32, 64}, {32, 64}, {64, 64}, {16}, {16},
      {64}, {64},     {128, 64}, {128, 64}, {64, 128}, {64}};
  for (int l = 0; l < 2; ++l) {
    for (int i = 0; i < 13; ++i) {
      const std::string n = std::to_string(l);
      ExpectRow(r[1 + 13 * l + i], "model.layers." + n + "." + hf[i] + ".weight",
                "blk." + n + "." + gguf[i] + ".weight", shape[i]);
    }
  }
  ExpectRow(r[27], "model.norm.weight", "output_norm.weight", {64});
}

// Qwen2: q/k/v biases after their weights, owned by the linear; NEOX rope
// in llama.cpp, so no permutation. Qwen3: plain-w q/k norms.
TEST(ModelArch, QwenTensors) {
  std::vector<ArchTensor> t = ArchTensors(Tiny("qwen2", true));
  ASSERT_EQ(t.size(), 1 + 2 * 12 + 1u);
  EXPECT_EQ(t[3].hf_name, "model.layers.0.self_attn.q_proj.bias");
  EXPECT_EQ(t[3].gguf_name, "blk.0.attn_q.bias");
  EXPECT_EQ(t[3].role(), TensorRole::kBias);
  EXPECT_EQ(t[3].module, "model.layers.0.self_attn.q_proj");
  EXPECT_EQ(t[3].shape, (std::vector<int64_t>{64}));
  EXPECT_EQ(t[5].shape, (std::vector<int64_t>{32}));  // k bias: Hk * D
  EXPECT_FALSE(t[3].quantizable());
  for (const ArchTensor& x : t) EXPECT_EQ(x.permute_heads, 0) << x.hf_name;

  t = ArchTensors(Tiny("qwen3", true));
  ASSERT_EQ(t.size(), 1 + 2 * 11 + 1u);
  EXPECT_EQ(t[6].gguf_name, "blk.0.attn_q_norm.weight");
  EXPECT_EQ(t[6].shape, (std::vector<int64_t>{16}));
  EXPECT_FALSE(t[6].add_one);
  for (const ArchTensor& x : t) EXPECT_EQ(x.permute_heads, 0) << x.hf_name;
}

TEST(ModelArch, RolesModulesAndTransforms) {
  for (const ArchTensor& t : ArchTensors(Tiny("llama", false))) {
    const bool matrix = t.shape.size() == 2;
    EXPECT_EQ(t.quantizable(), matrix) << t.hf_name;
    EXPECT_EQ(t.module, matrix ? t.hf_name.substr(0, t.hf_name.size() - 7) : "") << t.hf_name;
    EXPECT_FALSE(t.add_one) << t.hf_name;
    const int64_t heads = t.slot() == TensorSlot::kAttnQ   ? 4
                          : t.slot() == TensorSlot::kAttnK ? 2
                                                           : 0;
    EXPECT_EQ(t.permute_heads, heads) << t.hf_name;
  }
  for (const ArchTensor& t : ArchTensors(Tiny("gemma3_text", false))) {
    EXPECT_EQ(t.add_one, t.role() == TensorRole::kNorm) << t.hf_name;
    EXPECT_EQ(t.permute_heads, 0) << t.hf_name;
  }
  const std::vector<ArchTensor> ts = ArchTensors(Tiny("llama", false));
  EXPECT_EQ(ts.front().role(), TensorRole::kEmbedding);
  EXPECT_EQ(ts.back().role(), TensorRole::kOutputHead);
  EXPECT_TRUE(ts.back().def->tied_to_embedding);
  EXPECT_EQ(ts[2].layer, 0);
  EXPECT_EQ(ts.back().layer, -1);
}

TEST(ModelArch, CachePoints) {
  const std::vector<ArchCache> k = ArchCaches(Tiny("llama", false));
  ASSERT_EQ(k.size(), 4u);
  EXPECT_EQ(k[0].module, "model.layers.0.self_attn.k_cache");
  EXPECT_EQ(k[0].scale_name, "model.layers.0.self_attn.k_scale");
  EXPECT_EQ(k[1].module, "model.layers.0.self_attn.v_cache");
  EXPECT_EQ(k[1].scale_name, "model.layers.0.self_attn.v_scale");
  EXPECT_EQ(k[3].layer, 1);
  EXPECT_EQ(k[3].rows, 2);
  EXPECT_EQ(k[3].cols, 16);
}

TEST(ModelArch, Lookups) {
  EXPECT_EQ(FindArchByModelType("llama"), FindArchByGgufName("llama"));
  EXPECT_EQ(FindArchByModelType("gemma3_text"), FindArchByGgufName("gemma3"));
  EXPECT_EQ(FindArchByModelType("gemma3"), nullptr);
  EXPECT_EQ(FindArchByModelType("qwen2"), FindArchByGgufName("qwen2"));
  EXPECT_EQ(FindArchByModelType("qwen3"), FindArchByGgufName("qwen3"));
  EXPECT_EQ(FindArchByGgufName("phi3"), nullptr);
  EXPECT_EQ(SupportedModelTypes(), "llama, qwen2, qwen3, gemma3_text");
  EXPECT_EQ(SupportedGgufArchs(), "llama, qwen2, qwen3, gemma3");
  EXPECT_EQ(std::string(ArchOf(Tiny("gemma3_text", true)).hf_architecture), "Gemma3ForCausalLM");
}

// num_parameters sums the table.
TEST(ModelArch, ParameterCount) {
  const ModelConfig l = Tiny("llama", false);
  const int64_t E = 64, F = 128, q = 64, kv = 32, V = 320, D = 16;
  const int64_t llama_layer = E * q + 2 * E * kv + q * E + 3 * E * F + 2 * E;
  EXPECT_EQ(l.num_parameters(), 2 * V * E + 2 * llama_layer + E);
  const ModelConfig g = Tiny("gemma3_text", true);
  EXPECT_EQ(g.num_parameters(), V * E + 2 * (llama_layer + 2 * E + 2 * D) + E);
}

}  // namespace
}  // namespace qatk
