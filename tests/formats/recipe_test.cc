// Recipe parsing, resolution and validation; every shipped recipe loads.
#include "formats/quant/recipe.h"

#include <filesystem>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/formats/test_util.h"

namespace qatk {
namespace {

using testing::ExpectError;
constexpr auto kInv = absl::StatusCode::kInvalidArgument;

// A 2-layer Llama-shaped model: hidden 64, ffn 128, vocab 96, head_dim 32.
std::vector<ModuleShape> TinyModel(bool with_head = true, int64_t hidden = 64) {
  std::vector<ModuleShape> m = {{"model.embed_tokens", ModuleKind::kEmbedding, 96, hidden}};
  for (int l = 0; l < 2; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    for (const char* n : {"q_proj", "k_proj", "v_proj", "o_proj"}) {
      m.push_back({p + "self_attn." + n, ModuleKind::kLinear, hidden, hidden});
    }
    m.push_back({p + "mlp.gate_proj", ModuleKind::kLinear, 128, hidden});
    m.push_back({p + "mlp.up_proj", ModuleKind::kLinear, 128, hidden});
    m.push_back({p + "mlp.down_proj", ModuleKind::kLinear, hidden, 128});
    m.push_back({p + "self_attn.k_cache", ModuleKind::kCache, 0, 32});
    m.push_back({p + "self_attn.v_cache", ModuleKind::kCache, 0, 32});
  }
  if (with_head) m.push_back({"lm_head", ModuleKind::kLinear, 96, hidden});
  return m;
}

TEST(GlobTest, Matches) {
  EXPECT_TRUE(GlobMatch("lm_head", "lm_head"));
  EXPECT_FALSE(GlobMatch("lm_head", "lm_head2"));
  EXPECT_TRUE(GlobMatch("model.layers.*.mlp.*_proj", "model.layers.11.mlp.down_proj"));
  EXPECT_FALSE(GlobMatch("model.layers.*.mlp.*_proj", "model.layers.11.self_attn.q_proj"));
  EXPECT_TRUE(GlobMatch("*.k_cache", "model.layers.0.self_attn.k_cache"));
  EXPECT_TRUE(GlobMatch("layers.*", "layers."));
  EXPECT_TRUE(GlobMatch("*", ""));
  EXPECT_FALSE(GlobMatch("a*b", "acbx"));
  EXPECT_TRUE(GlobMatch("a*b*c", "axxbyyc"));
}

TEST(RecipeTest, EveryShippedRecipeLoadsAndValidates) {
  int seen = 0;
  for (const auto& entry : std::filesystem::directory_iterator(std::string(QATK_SOURCE_DIR) + "/configs/recipes")) {
    if (entry.path().extension() != ".json") continue;
    ++seen;
    const std::string name = entry.path().stem().string();
    const std::string path = entry.path().string();
    auto r = LoadRecipe(path);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->name, name);
    EXPECT_TRUE(r->Validate(TinyModel()).ok()) << name << ": " << r->Validate(TinyModel());
    // Canonical JSON re-parses to the same resolution.
    auto again = ParseRecipe(RecipeToJson(*r), "canonical");
    ASSERT_TRUE(again.ok()) << again.status();
    for (const ModuleShape& m : TinyModel()) {
      EXPECT_EQ(DescribeQuantSpec(r->Resolve(m.name).weight), DescribeQuantSpec(again->Resolve(m.name).weight));
      EXPECT_EQ(DescribeQuantSpec(r->Resolve(m.name).input), DescribeQuantSpec(again->Resolve(m.name).input));
    }
  }
  EXPECT_GE(seen, 5);  // q4_0, q4_0_learned, q4_0_q2head, mobile, w8a8
}

TEST(RecipeTest, ShippedRecipeContents) {
  auto q4 = LoadRecipe(std::string(QATK_SOURCE_DIR) + "/configs/recipes/q4_0.json");
  ASSERT_TRUE(q4.ok());
  EXPECT_EQ(q4->Resolve("model.layers.3.mlp.up_proj").weight.scheme, QuantScheme::kQ4_0);
  EXPECT_EQ(q4->Resolve("lm_head").weight.scheme, QuantScheme::kQ8_0);
  EXPECT_EQ(q4->Resolve("model.embed_tokens").weight.scheme, QuantScheme::kQ4_0);  // as llama-quantize
  // q4_0_learned: the same tensors and types, with trained block scales.
  auto q4l = LoadRecipe(std::string(QATK_SOURCE_DIR) + "/configs/recipes/q4_0_learned.json");
  ASSERT_TRUE(q4l.ok()) << q4l.status();
  for (const char* m : {"model.layers.0.self_attn.q_proj", "model.embed_tokens", "lm_head"}) {
    EXPECT_EQ(q4l->Resolve(m).weight.scheme, q4->Resolve(m).weight.scheme) << m;
    EXPECT_EQ(q4l->Resolve(m).input.scheme, q4->Resolve(m).input.scheme) << m;
  }
  EXPECT_EQ(q4l->Resolve("model.layers.2.mlp.down_proj").weight.scale_rule, ScaleRule::kLearned);
  EXPECT_EQ(q4l->Resolve("model.embed_tokens").weight.scale_rule, ScaleRule::kLearned);
  EXPECT_TRUE(q4->Validate(TinyModel(/*with_head=*/false)).ok());  // tied embeddings
  auto q2 = LoadRecipe(std::string(QATK_SOURCE_DIR) + "/configs/recipes/q4_0_q2head.json");
  ASSERT_TRUE(q2.ok());
  EXPECT_EQ(q2->Resolve("lm_head").weight.scheme, QuantScheme::kQ2_0);
  auto mob = LoadRecipe(std::string(QATK_SOURCE_DIR) + "/configs/recipes/mobile.json");
  ASSERT_TRUE(mob.ok());
  const LayerQuant head = mob->Resolve("lm_head");
  EXPECT_EQ(head.weight.scheme, QuantScheme::kIntChannel);
  EXPECT_EQ(head.weight.bits, 2);
  EXPECT_EQ(head.input.scheme, QuantScheme::kIntTensor);
  EXPECT_EQ(mob->Resolve("model.layers.0.self_attn.o_proj").weight.bits, 4);
  EXPECT_EQ(mob->Resolve("model.layers.0.self_attn.v_cache").cache.scheme, QuantScheme::kIntTensor);
  EXPECT_EQ(mob->Resolve("model.embed_tokens").weight.bits, 8);
}

TEST(RecipeTest, FirstMatchingRulePerSlotWins) {
  auto r = ParseRecipe(R"({"recipe_version": 1, "name": "t", "export_format": "mobile", "rules": [
      {"match": "lm_head", "weight": {"scheme": "int_channel", "bits": 2}},
      {"match": "*", "weight": {"scheme": "int_channel", "bits": 4},
                     "input": {"scheme": "int_token"}}]})");
  ASSERT_TRUE(r.ok()) << r.status();
  const LayerQuant h = r->Resolve("lm_head");
  EXPECT_EQ(h.weight.bits, 2);
  EXPECT_EQ(h.weight_rule, 0);
  EXPECT_EQ(h.input.scheme, QuantScheme::kIntToken);
  EXPECT_EQ(h.input_rule, 1);
  EXPECT_EQ(r->Resolve("x").weight.bits, 4);
  EXPECT_EQ(r->Resolve("x").cache_rule, -1);
}

absl::Status Err(const std::string& body, const std::vector<ModuleShape>& model = TinyModel()) {
  auto r = ParseRecipe(body, "bad.json");
  if (!r.ok()) return r.status();
  return r->Validate(model);
}

std::string WithRules(const std::string& rules, const std::string& fmt = "gguf") {
  return R"({"recipe_version": 1, "name": "t", "export_format": ")" + fmt + R"(", "rules": )" + rules + "}";
}

TEST(RecipeTest, MalformedRecipesGiveClearErrors) {
  ExpectError(Err("{"), kInv, {"bad.json", "not valid JSON"});
  ExpectError(Err(R"({"recipe_version": 2, "name": "t", "export_format": "gguf", "rules": []})"),
              absl::StatusCode::kUnimplemented, {"recipe_version 2"});
  ExpectError(Err(R"({"name": "t", "export_format": "gguf", "rules": []})"), kInv, {"recipe_version"});
  ExpectError(Err(R"({"recipe_version": 1, "nme": "t"})"), kInv, {"unknown key \"nme\"", "did you mean \"name\""});
  ExpectError(Err(R"({"recipe_version": 1, "name": "t", "export_format": "gguff", "rules": []})"), kInv,
              {"did you mean \"gguf\""});
  ExpectError(Err(WithRules("[]")), kInv, {"non-empty"});
  ExpectError(Err(WithRules(R"([{"match": "lm_head", "wieght": {"scheme": "q4_0"}}])")), kInv,
              {"rules[0]", "did you mean \"weight\""});
  ExpectError(Err(WithRules(R"([{"match": "lm_head"}])")), kInv, {"names no slot"});
  ExpectError(Err(WithRules(R"([{"weight": {"scheme": "q4_0"}}])")), kInv, {"missing \"match\""});
  ExpectError(Err(WithRules(R"([{"match": [], "weight": {"scheme": "q4_0"}}])")), kInv, {"match"});
  ExpectError(Err(WithRules(R"([{"match": "lm_head", "weight": {"scheme": "q4_k"}}])")), kInv,
              {"rules[0] (match \"lm_head\").weight", "did you mean \"q4_0\""});
}

TEST(RecipeTest, ValidationNamesTheRule) {
  ExpectError(Err(WithRules(R"([{"match": "model.layers.*.mlp.gate", "weight": {"scheme": "q4_0"}}])")), kInv,
              {"bad.json: rules[0] (match \"model.layers.*.mlp.gate\")", "matches no module"});
  // Optional rules may match nothing.
  EXPECT_TRUE(Err(WithRules(R"([{"match": "lm_head", "weight": {"scheme": "q4_0"}, "optional": true}])"),
                  TinyModel(false)).ok());
  // Q2_0 needs in_features % 64: hidden 96 fails for lm_head.
  ExpectError(Err(WithRules(R"([{"match": "lm_head", "weight": {"scheme": "q2_0"}}])"), TinyModel(true, 96)), kInv,
              {"rules[0]", "lm_head has 96 in_features", "multiple of 64"});
  ExpectError(Err(WithRules(R"([{"match": "*_proj", "weight": {"scheme": "q4_0"}}])"), TinyModel(true, 80)), kInv,
              {"multiple of 32"});
  ExpectError(Err(WithRules(R"([{"match": "*", "weight": {"scheme": "q8_0"}}])")), kInv,
              {"\"weight\" given for KV cache"});
  ExpectError(Err(WithRules(R"([{"match": "lm_head", "cache": {"scheme": "int_tensor"}}])")), kInv,
              {"\"cache\" given for linear lm_head"});
  ExpectError(Err(WithRules(R"([{"match": "model.embed_tokens", "input": {"scheme": "int_token"}}])")), kInv,
              {"\"input\" given for embedding"});
  ExpectError(Err(WithRules(R"([{"match": "lm_head", "weight": {"scheme": "int_channel", "bits": 4}}])")), kInv,
              {"cannot be stored in GGUF"});
  EXPECT_TRUE(Err(WithRules(R"([{"match": "lm_head", "weight": {"scheme": "int_channel", "bits": 4}}])", "mobile"))
                  .ok());
  ExpectError(Err(WithRules(R"([{"match": "*.k_cache", "cache": {"scheme": "q8_0_act"}}])"),
                  std::vector<ModuleShape>{{"a.k_cache", ModuleKind::kCache, 0, 48}}),
              kInv, {"head_dim"});
}

TEST(RecipeTest, LoadMissingFile) {
  EXPECT_FALSE(LoadRecipe("/nonexistent/recipe.json").ok());
}

}  // namespace
}  // namespace qatk
