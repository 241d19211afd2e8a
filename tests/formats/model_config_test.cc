#include "formats/model_config.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

namespace qatk {
namespace {

using json = nlohmann::json;

json TinyLlama() {
  return json::parse(R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama",
    "vocab_size": 4096, "hidden_size": 256, "intermediate_size": 768, "num_hidden_layers": 4,
    "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256,
    "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": false,
    "hidden_act": "silu", "bos_token_id": 1, "eos_token_id": 2})");
}

TEST(ModelConfig, ParsesLlamaAndDerivesHeadDim) {
  auto c = ModelConfig::FromJson(TinyLlama(), "t.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->head_dim, 64);
  EXPECT_FALSE(c->is_gemma());
  EXPECT_EQ(c->kv_dim(), 128);
  EXPECT_DOUBLE_EQ(c->attention_scale(), 1.0 / 8.0);
}

TEST(ModelConfig, RoundTripsThroughJson) {
  json j = TinyLlama();
  j["model_type"] = "gemma3_text";
  j["architectures"] = {"Gemma3ForCausalLM"};
  j["final_logit_softcapping"] = 30.0;
  j["query_pre_attn_scalar"] = 64;
  j["sliding_window"] = 16;
  auto c = ModelConfig::FromJson(j, "g.json");
  ASSERT_TRUE(c.ok()) << c.status();
  auto back = ModelConfig::FromJson(c->ToJson(), "back");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->ToJson(), c->ToJson());
  EXPECT_TRUE(back->is_gemma());
  ASSERT_TRUE(back->final_logit_softcapping.has_value());
  EXPECT_DOUBLE_EQ(*back->final_logit_softcapping, 30.0);
  EXPECT_TRUE(back->is_sliding_layer(0));
  EXPECT_FALSE(back->is_sliding_layer(5));
}

TEST(ModelConfig, ErrorsNameTheKey) {
  json j = TinyLlama();
  j.erase("hidden_size");
  auto c = ModelConfig::FromJson(j, "t.json");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(std::string(c.status().message()).find("hidden_size"), std::string::npos);

  j = TinyLlama();
  j["num_key_value_heads"] = 3;
  c = ModelConfig::FromJson(j, "t.json");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(std::string(c.status().message()).find("num_key_value_heads"), std::string::npos);

  j = TinyLlama();
  j["rope_scaling"] = {{"type", "linear"}};
  c = ModelConfig::FromJson(j, "t.json");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(std::string(c.status().message()).find("rope_scaling"), std::string::npos);

  j = TinyLlama();
  j["hidden_act"] = "relu";
  EXPECT_FALSE(ModelConfig::FromJson(j, "t.json").ok());
}

TEST(ModelConfig, ShippedConfigsLoad) {
  for (const char* name : {"tiny", "tiny-4l", "tiny-256", "tiny-gemma", "small", "1b"}) {
    auto c = LoadModelConfig(std::string(QATK_SOURCE_DIR) + "/configs/models/" + name + ".json");
    ASSERT_TRUE(c.ok()) << name << ": " << c.status();
    for (int64_t d : {c->hidden_size, c->intermediate_size, c->q_dim(), c->kv_dim(), c->vocab_size}) {
      EXPECT_EQ(d % 64, 0) << name;
    }
  }
  auto tiny = LoadModelConfig(std::string(QATK_SOURCE_DIR) + "/configs/models/tiny.json");
  ASSERT_TRUE(tiny.ok());
  EXPECT_EQ(tiny->num_parameters(), 1'344'128);  // the quickstart default: 2 layers, FFN 256
  auto big = LoadModelConfig(std::string(QATK_SOURCE_DIR) + "/configs/models/1b.json");
  ASSERT_TRUE(big.ok());
  EXPECT_GT(big->num_parameters(), 900'000'000);
}

std::string HfConfig(const char* name) {
  return std::string(QATK_SOURCE_DIR) + "/tests/testdata/hf_configs/" + name + ".json";
}

// The hub's config.json files, key for key (tests/testdata/hf_configs).
TEST(ModelConfig, HubConfigsParseKeyForKey) {
  auto llama = LoadModelConfig(HfConfig("llama-3.2-1b-instruct"));
  ASSERT_TRUE(llama.ok()) << llama.status();
  EXPECT_EQ(llama->eos_token_id, 128001);
  EXPECT_EQ(llama->eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
  ASSERT_TRUE(llama->rope_scaling.has_value());
  EXPECT_DOUBLE_EQ(llama->rope_scaling->factor, 32.0);
  EXPECT_EQ(llama->rope_scaling->original_max_position_embeddings, 8192);
  EXPECT_TRUE(llama->tie_word_embeddings);
  EXPECT_EQ(llama->num_parameters(), 1'235'814'400);  // Llama-3.2-1B's published count

  auto smol = LoadModelConfig(HfConfig("smollm2-135m"));
  ASSERT_TRUE(smol.ok()) << smol.status();
  EXPECT_EQ(smol->head_dim, 64);
  EXPECT_FALSE(smol->rope_scaling.has_value());
  EXPECT_EQ(smol->num_parameters(), 134'515'008);

  auto qwen2 = LoadModelConfig(HfConfig("qwen2.5-0.5b"));
  ASSERT_TRUE(qwen2.ok()) << qwen2.status();
  EXPECT_TRUE(qwen2->has_qkv_bias());
  EXPECT_FALSE(qwen2->has_qk_norm());
  EXPECT_EQ(qwen2->sliding_window, 0);  // use_sliding_window false: unused
  EXPECT_EQ(qwen2->num_parameters(), 494'032'768);

  auto qwen3 = LoadModelConfig(HfConfig("qwen3-0.6b"));
  ASSERT_TRUE(qwen3.ok()) << qwen3.status();
  EXPECT_EQ(qwen3->head_dim, 128);  // not hidden / heads (64)
  EXPECT_EQ(qwen3->q_dim(), 2048);
  EXPECT_TRUE(qwen3->has_qk_norm());
  EXPECT_EQ(qwen3->num_parameters(), 596'049'920);

  auto gemma = LoadModelConfig(HfConfig("gemma-3-1b-it"));
  ASSERT_TRUE(gemma.ok()) << gemma.status();
  EXPECT_EQ(gemma->hidden_act, "gelu_pytorch_tanh");
  EXPECT_EQ(gemma->eos_token_ids, (std::vector<int64_t>{1, 106}));
  EXPECT_EQ(gemma->sliding_window, 512);
  EXPECT_TRUE(gemma->is_sliding_layer(0));
  EXPECT_FALSE(gemma->is_sliding_layer(5));
  EXPECT_DOUBLE_EQ(gemma->attention_scale(), 1.0 / 16.0);

  auto g270 = LoadModelConfig(HfConfig("gemma-3-270m"));
  ASSERT_TRUE(g270.ok()) << g270.status();
  EXPECT_EQ(g270->sliding_window_pattern, 6);  // from layer_types
  EXPECT_FALSE(g270->is_sliding_layer(11));
  EXPECT_TRUE(g270->is_sliding_layer(12));
}

// A config read from the hub is saved with every original key and value.
TEST(ModelConfig, KeepsEveryOriginalKey) {
  for (const char* name : {"llama-3.2-1b-instruct", "smollm2-135m", "qwen2.5-0.5b", "qwen3-0.6b",
                           "gemma-3-1b-it", "gemma-3-270m"}) {
    auto c = LoadModelConfig(HfConfig(name));
    ASSERT_TRUE(c.ok()) << name << ": " << c.status();
    std::ifstream in(HfConfig(name));
    const auto original = nlohmann::ordered_json::parse(in);
    EXPECT_EQ(c->ToJson(), original) << name;
    EXPECT_EQ(c->ToJson().dump(2) + "\n", original.dump(2) + "\n") << name;  // key order too
  }
  // A changed field is written over the original key; the other keys stay.
  auto c = LoadModelConfig(HfConfig("qwen3-0.6b"));
  ASSERT_TRUE(c.ok());
  c->num_hidden_layers = 2;
  const auto j = c->ToJson();
  EXPECT_EQ(j["num_hidden_layers"], 2);
  EXPECT_EQ(j["max_window_layers"], 28);
  auto back = ModelConfig::FromJson(j, "back");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->num_hidden_layers, 2);
}

// llama.cpp's rope_freqs for Llama 3.2 (factor 32, 1 / 4, 8192, theta 5e5,
// D 64): high frequencies unscaled, low ones divided by the factor, a smooth
// ramp between.
TEST(ModelConfig, Llama3RopeFreqFactors) {
  auto c = LoadModelConfig(HfConfig("llama-3.2-1b-instruct"));
  ASSERT_TRUE(c.ok());
  const std::vector<float> f = c->RopeFreqFactors();
  ASSERT_EQ(f.size(), 32u);
  for (size_t i = 0; i < f.size(); ++i) {
    const double freq = std::pow(500000.0, -2.0 * static_cast<double>(i) / 64.0);
    const double wavelen = 2 * M_PI / freq;
    if (wavelen < 8192.0 / 4.0) {
      EXPECT_EQ(f[i], 1.0f) << i;
    } else if (wavelen > 8192.0) {
      EXPECT_EQ(f[i], 32.0f) << i;
    } else {
      EXPECT_GT(f[i], 1.0f) << i;
      EXPECT_LT(f[i], 32.0f) << i;
      EXPECT_GE(f[i], f[i - 1]) << i;
    }
  }
  EXPECT_EQ(f.front(), 1.0f);
  EXPECT_EQ(f.back(), 32.0f);
  c->rope_scaling.reset();
  for (float v : c->RopeFreqFactors()) EXPECT_EQ(v, 1.0f);
}

// Keys that would change the math and are not implemented are errors naming
// the key; keys that do not are accepted.
TEST(ModelConfig, UnsupportedMathIsAnErrorNamingTheKey) {
  struct Case {
    const char* file;
    const char* key;
    nlohmann::json value;
  };
  const Case cases[] = {
      {"llama-3.2-1b-instruct", "rope_scaling", {{"rope_type", "yarn"}, {"factor", 4.0}}},
      {"llama-3.2-1b-instruct", "attention_bias", true},
      {"llama-3.2-1b-instruct", "mlp_bias", true},
      {"llama-3.2-1b-instruct", "rope_parameters", {{"rope_type", "default"}, {"rope_theta", 1e4}}},
      {"llama-3.2-1b-instruct", "partial_rotary_factor", 0.5},
      {"qwen2.5-0.5b", "use_sliding_window", true},
      {"qwen3-0.6b", "attention_bias", true},
      {"qwen3-0.6b", "rope_scaling", {{"rope_type", "llama3"}, {"factor", 8.0}}},
      {"gemma-3-1b-it", "rope_scaling", {{"rope_type", "linear"}, {"factor", 8.0}}},
      {"gemma-3-1b-it", "attn_logit_softcapping", 50.0},
      {"gemma-3-270m", "use_bidirectional_attention", true},
      {"gemma-3-270m", "layer_types", nlohmann::json::array({"full_attention"})},
  };
  for (const Case& k : cases) {
    std::ifstream in(HfConfig(k.file));
    auto j = nlohmann::ordered_json::parse(in);
    j[k.key] = k.value;
    auto c = ModelConfig::FromJson(j, k.file);
    ASSERT_FALSE(c.ok()) << k.file << " " << k.key;
    EXPECT_NE(std::string(c.status().message()).find(k.key), std::string::npos) << c.status();
  }
  // An irregular layer layout.
  std::ifstream in(HfConfig("gemma-3-270m"));
  auto j = nlohmann::ordered_json::parse(in);
  j["layer_types"][3] = "full_attention";
  auto c = ModelConfig::FromJson(j, "g");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(std::string(c.status().message()).find("layer_types"), std::string::npos);
  // Ignored keys: SmolLM2's rope_interleaved, any unknown key.
  std::ifstream in2(HfConfig("smollm2-135m"));
  j = nlohmann::ordered_json::parse(in2);
  j["some_new_key"] = 3;
  EXPECT_TRUE(ModelConfig::FromJson(j, "s").ok());
}

}  // namespace
}  // namespace qatk
