// The LibTorch model against a reference written here with plain tensor ops
// (per-head loops, RoPE by explicit pair rotation, GQA by index arithmetic).
#include "qat/model/transformer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "formats/quant/recipe.h"
#include "qat/quant/prepare.h"

namespace qatk::qat {
namespace {

ModelConfig TinyConfig(bool gemma) {
  ModelConfig c;
  c.model_type = gemma ? "gemma3_text" : "llama";
  c.vocab_size = 32;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 6;
  c.max_position_embeddings = 16;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 100.0;
  c.tie_word_embeddings = gemma;
  c.hidden_act = gemma ? "gelu_pytorch_tanh" : "silu";
  if (gemma) {
    c.query_pre_attn_scalar = 8;
    c.final_logit_softcapping = 5.0;
  }
  EXPECT_TRUE(c.Validate().ok());
  return c;
}

// The other families on the same dimensions: "qwen2" (q/k/v biases),
// "qwen3" (plain q/k norms), "llama3" (llama with rope_scaling whose
// original context makes the D/2 = 3 frequencies unscaled, smoothed and
// divided by the factor).
ModelConfig TinyConfigOf(const std::string& family) {
  ModelConfig c = TinyConfig(false);
  if (family == "llama3") {
    c.rope_scaling = RopeScaling{8.0, 1.0, 4.0, 32};
  } else {
    c.model_type = family;
  }
  EXPECT_TRUE(c.Validate().ok()) << family;
  return c;
}

using Sd = std::map<std::string, torch::Tensor>;

torch::Tensor RefNorm(const torch::Tensor& x, const torch::Tensor& w, bool gemma) {
  torch::Tensor y = x / torch::sqrt(x.pow(2).mean(-1, true) + 1e-6);
  return y * (gemma ? w + 1 : w);
}

// x [T, D] for one head: rotates pairs (i, i + D/2) by pos * theta^(-2i/D)
// (divided by Llama 3's factor for frequency i when scaled).
torch::Tensor RefRope(const ModelConfig& c, const torch::Tensor& x, double theta) {
  const int64_t T = x.size(0), D = x.size(1);
  const std::vector<float> div = c.RopeFreqFactors();
  torch::Tensor out = x.clone();
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t i = 0; i < D / 2; ++i) {
      const double a = t * std::pow(theta, -2.0 * i / D) / div[i];
      const double x1 = x[t][i].item<double>(), x2 = x[t][i + D / 2].item<double>();
      out[t][i] = x1 * std::cos(a) - x2 * std::sin(a);
      out[t][i + D / 2] = x2 * std::cos(a) + x1 * std::sin(a);
    }
  }
  return out;
}

torch::Tensor RefAttention(const ModelConfig& c, Sd& sd, const std::string& p, const torch::Tensor& x) {
  const int64_t T = x.size(0), H = c.num_attention_heads, Hkv = c.num_key_value_heads, D = c.head_dim;
  torch::Tensor q = x.matmul(sd[p + "q_proj.weight"].t()), k = x.matmul(sd[p + "k_proj.weight"].t());
  torch::Tensor v = x.matmul(sd[p + "v_proj.weight"].t());
  if (c.has_qkv_bias()) {
    q = q + sd[p + "q_proj.bias"];
    k = k + sd[p + "k_proj.bias"];
    v = v + sd[p + "v_proj.bias"];
  }
  std::vector<torch::Tensor> heads;
  for (int64_t h = 0; h < H; ++h) {
    const int64_t g = h / (H / Hkv);  // kv head of query head h
    torch::Tensor qh = q.slice(1, h * D, (h + 1) * D), kh = k.slice(1, g * D, (g + 1) * D);
    if (c.has_qk_norm()) {
      qh = RefNorm(qh, sd[p + "q_norm.weight"], c.is_gemma());
      kh = RefNorm(kh, sd[p + "k_norm.weight"], c.is_gemma());
    }
    qh = RefRope(c, qh, c.rope_theta);
    kh = RefRope(c, kh, c.rope_theta);
    torch::Tensor s = qh.matmul(kh.t()) * c.attention_scale();  // [T, T]
    for (int64_t i = 0; i < T; ++i) {
      for (int64_t j = i + 1; j < T; ++j) s[i][j] = -1e30;
    }
    heads.push_back(torch::softmax(s, -1).matmul(v.slice(1, g * D, (g + 1) * D)));
  }
  return torch::cat(heads, 1).matmul(sd[p + "o_proj.weight"].t());
}

torch::Tensor RefForward(const ModelConfig& c, Sd& sd, const torch::Tensor& ids) {
  const bool g = c.is_gemma();
  torch::Tensor x = sd["model.embed_tokens.weight"].index_select(0, ids);  // [T, E]
  if (g) x = x * std::sqrt(static_cast<double>(c.hidden_size));
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    torch::Tensor a = RefAttention(c, sd, p + "self_attn.", RefNorm(x, sd[p + "input_layernorm.weight"], g));
    if (g) a = RefNorm(a, sd[p + "post_attention_layernorm.weight"], true);
    x = x + a;
    torch::Tensor n = RefNorm(x, sd[p + (g ? "pre_feedforward_layernorm.weight" : "post_attention_layernorm.weight")], g);
    torch::Tensor gate = n.matmul(sd[p + "mlp.gate_proj.weight"].t());
    gate = g ? 0.5 * gate * (1 + torch::tanh(std::sqrt(2 / M_PI) * (gate + 0.044715 * gate.pow(3))))
             : gate * torch::sigmoid(gate);
    torch::Tensor m = (gate * n.matmul(sd[p + "mlp.up_proj.weight"].t())).matmul(sd[p + "mlp.down_proj.weight"].t());
    if (g) m = RefNorm(m, sd[p + "post_feedforward_layernorm.weight"], true);
    x = x + m;
  }
  x = RefNorm(x, sd["model.norm.weight"], g);
  torch::Tensor logits = x.matmul((g ? sd["model.embed_tokens.weight"] : sd["lm_head.weight"]).t());
  if (c.final_logit_softcapping) logits = torch::tanh(logits / *c.final_logit_softcapping) * *c.final_logit_softcapping;
  return logits;
}

Sd StateDict(torch::nn::Module& m) {
  Sd sd;
  for (const auto& p : m.named_parameters()) sd[p.key()] = p.value().detach().to(torch::kFloat64);
  return sd;
}

void CheckAgainstReference(const ModelConfig& c) {
  CausalLM model(c);
  model->InitWeights(7);
  torch::NoGradGuard ng;
  torch::manual_seed(3);
  for (auto& p : model->parameters()) p.add_(torch::randn_like(p) * 0.3);  // non-trivial norms too
  torch::Tensor ids = torch::randint(0, c.vocab_size, {2, 9}, torch::kInt64);
  torch::Tensor got = model->forward(ids);  // [2, 9, V]
  Sd sd = StateDict(*model);
  for (int64_t b = 0; b < 2; ++b) {
    torch::Tensor want = RefForward(c, sd, ids[b]);
    EXPECT_TRUE(torch::allclose(got[b].to(torch::kFloat64), want, 1e-4, 1e-4))
        << "batch " << b << " max diff " << (got[b].to(torch::kFloat64) - want).abs().max().item<double>();
  }
}

TEST(Transformer, LlamaMatchesReference) { CheckAgainstReference(TinyConfig(false)); }
TEST(Transformer, GemmaMatchesReference) { CheckAgainstReference(TinyConfig(true)); }
TEST(Transformer, Qwen2MatchesReference) { CheckAgainstReference(TinyConfigOf("qwen2")); }
TEST(Transformer, Qwen3MatchesReference) { CheckAgainstReference(TinyConfigOf("qwen3")); }
TEST(Transformer, Llama3RopeScalingMatchesReference) { CheckAgainstReference(TinyConfigOf("llama3")); }

// The scaled rotary angles are pos * inv_freq / factor_i, and the fixture's
// factors are 1, in between, and `factor` (so the test above sees each case).
TEST(Transformer, RotaryDivisorsScaleTheAngles) {
  const ModelConfig c = TinyConfigOf("llama3");
  const std::vector<float> div = c.RopeFreqFactors();
  ASSERT_EQ(div.size(), 3u);
  EXPECT_EQ(div[0], 1.0f);
  EXPECT_GT(div[1], 1.0f);
  EXPECT_LT(div[1], 8.0f);
  EXPECT_EQ(div[2], 8.0f);
  auto [cos, sin] = RotaryCosSin(5, 6, c.rope_theta, torch::kCPU, div);
  for (int64_t t = 0; t < 5; ++t) {
    for (int64_t i = 0; i < 3; ++i) {
      const double a = t * std::pow(c.rope_theta, -2.0 * i / 6) / div[i];
      EXPECT_NEAR(cos[t][i].item<double>(), std::cos(a), 1e-6);
      EXPECT_NEAR(sin[t][i + 3].item<double>(), std::sin(a), 1e-6);
    }
  }
}

// Fake quant applies to the weight only: a quantized qwen2 model is the
// reference run on the quantized weights and the float biases.
TEST(Transformer, Qwen2BiasIsNotQuantized) {
  const ModelConfig c = TinyConfigOf("qwen2");
  CausalLM model(c);
  model->InitWeights(7);
  auto recipe = ParseRecipe(R"({"recipe_version": 1, "name": "t", "export_format": "mobile", "rules": [
    {"match": ["model.layers.*.self_attn.*_proj", "model.layers.*.mlp.*_proj", "lm_head"],
     "weight": {"scheme": "int_channel", "bits": 4}}]})");
  ASSERT_TRUE(recipe.ok()) << recipe.status();
  ASSERT_TRUE(ApplyRecipe(*model, *recipe, c.head_dim).ok());
  SetQuantMode(*model, QuantMode::kQuant);
  torch::NoGradGuard ng;
  torch::manual_seed(4);
  for (const auto& p : model->named_parameters()) {
    if (p.key().find(".bias") != std::string::npos) p.value().copy_(torch::randn_like(p.value()));
  }
  Sd sd = StateDict(*model);
  for (const auto& m : model->named_modules("", false)) {
    if (auto* l = m.value()->as<QLinearImpl>()) sd[m.key() + ".weight"] = l->QuantizedWeight().to(torch::kFloat64);
  }
  EXPECT_GT((sd["model.layers.0.self_attn.q_proj.weight"] -
             model->model->layers[0]->as<DecoderLayer>()->self_attn->q_proj->weight.to(torch::kFloat64))
                .abs().max().item<double>(), 1e-3);  // the weights did quantize
  torch::Tensor ids = torch::randint(0, c.vocab_size, {1, 7}, torch::kInt64);
  torch::Tensor got = model->forward(ids)[0].to(torch::kFloat64);
  torch::Tensor want = RefForward(c, sd, ids[0]);
  EXPECT_TRUE(torch::allclose(got, want, 1e-4, 1e-4)) << (got - want).abs().max().item<double>();
}

TEST(Transformer, InitWeightsZeroesBiasesAndSetsPlainQkNorms) {
  CausalLM qwen2(TinyConfigOf("qwen2"));
  qwen2->InitWeights(1);
  for (const auto& p : qwen2->named_parameters()) {
    if (p.key().find(".bias") != std::string::npos) {
      EXPECT_EQ(p.value().abs().max().item<float>(), 0.0f) << p.key();
    }
  }
  CausalLM qwen3(TinyConfigOf("qwen3"));
  qwen3->InitWeights(1);
  auto* attn = qwen3->model->layers[1]->as<DecoderLayer>()->self_attn.get();
  EXPECT_TRUE(torch::equal(attn->q_norm->weight, torch::ones({6})));
  EXPECT_TRUE(torch::equal(attn->k_norm->weight, torch::ones({6})));
}

TEST(Transformer, StateDictUsesHuggingFaceNames) {
  CausalLM llama(TinyConfig(false));
  std::set<std::string> names;
  for (const auto& p : llama->named_parameters()) names.insert(p.key());
  for (const char* n : {"model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
                        "model.layers.1.self_attn.v_proj.weight", "model.layers.0.mlp.down_proj.weight",
                        "model.layers.0.input_layernorm.weight", "model.layers.0.post_attention_layernorm.weight",
                        "model.norm.weight", "lm_head.weight"}) {
    EXPECT_TRUE(names.count(n)) << n;
  }
  EXPECT_EQ(names.size(), 3u + 2u * 9u);
  CausalLM gemma(TinyConfig(true));
  names.clear();
  for (const auto& p : gemma->named_parameters()) names.insert(p.key());
  EXPECT_FALSE(names.count("lm_head.weight"));  // tied
  EXPECT_TRUE(names.count("model.layers.1.self_attn.k_norm.weight"));
  EXPECT_TRUE(names.count("model.layers.1.post_feedforward_layernorm.weight"));
}

TEST(Transformer, CausalPrefixIsIndependentOfLaterTokens) {
  CausalLM model(TinyConfig(false));
  model->InitWeights(1);
  torch::NoGradGuard ng;
  torch::Tensor a = torch::tensor({{1, 2, 3, 4, 5}}, torch::kInt64), b = torch::tensor({{1, 2, 3, 9, 9}}, torch::kInt64);
  EXPECT_TRUE(torch::allclose(model->forward(a).slice(1, 0, 3), model->forward(b).slice(1, 0, 3)));
}

TEST(Transformer, GradientsFlowThroughEveryFakeQuantPoint) {
  const ModelConfig c = TinyConfig(false);
  CausalLM model(c);
  model->InitWeights(5);
  auto recipe = ParseRecipe(R"({"recipe_version": 1, "name": "t", "export_format": "mobile", "rules": [
    {"match": ["model.layers.*.self_attn.*_proj", "model.layers.*.mlp.*_proj", "lm_head"],
     "weight": {"scheme": "int_channel", "bits": 4, "scale_rule": "learned"},
     "input": {"scheme": "int_tensor", "bits": 8, "scale_rule": "learned"}},
    {"match": "model.embed_tokens", "weight": {"scheme": "int_channel", "bits": 8, "scale_rule": "learned"}},
    {"match": ["model.layers.*.self_attn.k_cache", "model.layers.*.self_attn.v_cache"],
     "cache": {"scheme": "int_tensor", "bits": 8, "scale_rule": "learned"}}]})");
  ASSERT_TRUE(recipe.ok()) << recipe.status();
  ASSERT_TRUE(ApplyRecipe(*model, *recipe, c.head_dim).ok());
  torch::Tensor ids = torch::randint(0, c.vocab_size, {2, 8}, torch::kInt64);
  torch::Tensor loss = torch::cross_entropy_loss(model->forward(ids).view({16, -1}), ids.view({16}));
  loss.backward();
  int scales = 0;
  for (const auto& p : model->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key() << " got no gradient";
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key() << " has a zero gradient";
    if (p.key().find("_scale") != std::string::npos) ++scales;
  }
  // weight_scale + input_scale per linear (7 per layer + lm_head), embedding scale, k/v scales.
  EXPECT_EQ(scales, 2 * (7 * 2 + 1) + 1 + 2 * 2);
}

}  // namespace
}  // namespace qatk::qat
