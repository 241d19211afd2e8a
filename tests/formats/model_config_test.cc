#include "formats/model_config.h"

#include <gtest/gtest.h>

#include <string>

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

}  // namespace
}  // namespace qatk
