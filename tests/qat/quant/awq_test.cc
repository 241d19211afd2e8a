// AWQ input scaling for Q4_0 (qat/quant/awq.h): the float model is unchanged
// (Llama and Gemma norms, Qwen2 biases, Qwen3 q/k norms), the rescaled Hessians equal those recollected from
// the rescaled model, the reported errors are the definition's, and the
// search never does worse than round to nearest.
#include "qat/quant/awq.h"

#include <map>
#include <string>
#include <vector>

#include "formats/quant/recipe.h"
#include "gtest/gtest.h"
#include "qat/quant/fake_quant.h"
#include "qat/quant/prepare.h"
#include "qat/quant/qlinear.h"
#include "qat/train/calibrate.h"

namespace qatk::qat {
namespace {

constexpr char kQ4_0[] = R"({"recipe_version": 1, "name": "t", "export_format": "gguf", "rules": [
  {"match": ["model.layers.*.self_attn.*_proj", "model.layers.*.mlp.*_proj"], "weight": {"scheme": "q4_0"}}]})";

ModelConfig Config(const std::string& model_type) {
  ModelConfig c;
  c.model_type = model_type;
  const bool gemma = c.is_gemma();
  c.vocab_size = 64;
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 16;
  c.max_position_embeddings = 32;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 100.0;
  c.hidden_act = gemma ? "gelu_pytorch_tanh" : "silu";
  if (gemma) c.query_pre_attn_scalar = 16;
  EXPECT_TRUE(c.Validate().ok());
  return c;
}

// A random model with unequal input channels (norm weights spread over a
// decade, a few large up_proj rows), so that scaling has something to gain;
// Qwen's biases and q/k norms random too.
CausalLM Model(const std::string& model_type) {
  CausalLM m(Config(model_type));
  const bool gemma = m->config().is_gemma();
  m->InitWeights(3);
  torch::NoGradGuard ng;
  torch::manual_seed(4);
  for (auto& p : m->named_parameters()) {
    const std::string& n = p.key();
    const bool norm = n.find("layernorm.weight") != std::string::npos;
    if (norm) {
      const torch::Tensor g = torch::exp(torch::randn(p.value().sizes()) * 0.8);
      p.value().copy_(gemma ? g - 1.0 : g);
    }
    if (n.find("up_proj.weight") != std::string::npos) p.value().slice(0, 0, 8).mul_(6.0);
    const bool qwen = model_type == "qwen2" || model_type == "qwen3";
    if (qwen && (n.find(".bias") != std::string::npos || n.find("_norm.weight") != std::string::npos)) {
      p.value().add_(torch::randn(p.value().sizes()) * 0.5);
    }
  }
  auto recipe = ParseRecipe(kQ4_0);
  EXPECT_TRUE(recipe.ok()) << recipe.status();
  EXPECT_TRUE(ApplyRecipe(*m, *recipe, m->config().head_dim).ok());
  return m;
}

std::vector<int32_t> Tokens() {
  torch::manual_seed(5);
  const torch::Tensor t = torch::randint(3, 64, {4000}, torch::kInt);
  return std::vector<int32_t>(t.data_ptr<int32_t>(), t.data_ptr<int32_t>() + t.numel());
}

std::map<std::string, torch::Tensor> Hessians(CausalLM& m, const std::vector<int32_t>& tokens) {
  std::vector<std::string> names;
  for (const auto& item : m->named_modules("", false)) {
    if (item.value()->as<QLinearImpl>()) names.push_back(item.key());
  }
  return CollectInputHessians(m, names, tokens, 32, 4, 4, 7, 1);
}

torch::Tensor FloatLogits(CausalLM& m) {
  SetQuantMode(*m, QuantMode::kOff);
  torch::NoGradGuard ng;
  torch::manual_seed(6);
  const torch::Tensor ids = torch::randint(3, 64, {2, 32}, torch::kLong);
  const torch::Tensor y = m->forward(ids);
  SetQuantMode(*m, QuantMode::kQuant);
  return y;
}

class AwqTest : public ::testing::TestWithParam<std::string> {};

TEST_P(AwqTest, KeepsTheFloatModelAndRescalesTheHessians) {
  CausalLM m = Model(GetParam());
  const std::vector<int32_t> tokens = Tokens();
  const torch::Tensor before = FloatLogits(m);
  std::map<std::string, torch::Tensor> h = Hessians(m, tokens);
  const std::map<std::string, torch::Tensor> original = h;
  std::map<std::string, torch::Tensor> weights;
  for (const auto& p : m->named_parameters()) weights[p.key()] = p.value().detach().clone();

  AwqOptions o;
  o.verbose = false;
  auto groups = ApplyAwq(m, h, o);
  ASSERT_TRUE(groups.ok()) << groups.status();
  ASSERT_EQ(groups->size(), 6u);  // 2 layers x (q/k/v, gate/up, down)
  int scaled = 0;
  for (const AwqGroup& g : *groups) {
    EXPECT_LE(g.error, g.rtn_error) << g.name;
    if (g.alpha > 0) {
      ++scaled;
      EXPECT_LT(g.error, g.rtn_error) << g.name;
    }
  }
  ASSERT_GE(scaled, 2) << "the search should rescale some groups of this model";

  // The same function in float (fp32 rounding of the folded weights only).
  const torch::Tensor after = FloatLogits(m);
  EXPECT_TRUE(torch::allclose(after, before, 1e-4, 1e-4))
      << "max |diff| " << (after - before).abs().max().item<double>();

  // The returned Hessians are those of the rescaled model's inputs.
  const std::map<std::string, torch::Tensor> again = Hessians(m, tokens);
  for (const auto& [name, t] : again) {
    const torch::Tensor got = h.at(name).to(torch::kDouble), want = t.to(torch::kDouble);
    EXPECT_TRUE(torch::allclose(got, want, 1e-4, 1e-6 * want.abs().max().item<double>())) << name;
  }

  // The reported error of each group is tr(E H E^T) of its linears at the
  // chosen alpha, E = W - Q4_0(W diag(s)) / s, on the original weights.
  for (const AwqGroup& g : *groups) {
    const torch::Tensor h0 = original.at(g.name).to(torch::kDouble);
    const torch::Tensor s = g.alpha > 0 ? AwqScales(h0, g.alpha) : torch::ones({h0.size(0)}, torch::kDouble);
    std::vector<std::string> members = {g.name};
    const std::string layer = g.name.substr(0, g.name.rfind('.') + 1);
    if (g.name.find("q_proj") != std::string::npos) members = {layer + "q_proj", layer + "k_proj", layer + "v_proj"};
    if (g.name.find("gate_proj") != std::string::npos) members = {layer + "gate_proj", layer + "up_proj"};
    double want = 0;
    for (const std::string& n : members) {
      const torch::Tensor w = weights.at(n + ".weight").to(torch::kDouble);
      const torch::Tensor e = w - Q4_0Dequantized((w * s).to(torch::kFloat)).to(torch::kDouble) / s;
      want += (e.matmul(h0) * e).sum().item<double>();
    }
    EXPECT_NEAR(g.error, want, 1e-9 * want) << g.name;
  }
}

INSTANTIATE_TEST_SUITE_P(LlamaAndGemma, AwqTest, ::testing::Values("llama", "gemma3_text"),
                         [](const auto& info) { return info.param == "llama" ? "Llama" : "Gemma"; });
INSTANTIATE_TEST_SUITE_P(Qwen, AwqTest, ::testing::Values("qwen2", "qwen3"),
                         [](const auto& info) { return info.param == "qwen2" ? "Qwen2" : "Qwen3"; });

TEST(AwqScalesTest, PowersOfTheInputRmsCentredOnOne) {
  const torch::Tensor h = torch::diag(torch::tensor({4.0, 1.0, 0.25, 0.0}, torch::kDouble));
  const torch::Tensor s = AwqScales(h, 0.5);  // a = (2, 1, 0.5, 2e-6) -> a^0.5
  const torch::Tensor a = torch::tensor({2.0, 1.0, 0.5, 2e-6}, torch::kDouble).sqrt();
  const torch::Tensor want = a / std::sqrt(a.max().item<double>() * a.min().item<double>());
  EXPECT_TRUE(torch::allclose(s, want, 1e-12, 0));
  EXPECT_TRUE(torch::allclose(AwqScales(h, 0.0), torch::ones({4}, torch::kDouble)));
}

TEST(AwqErrorsTest, BadHessianNamesTheGroup) {
  CausalLM m = Model("llama");
  std::map<std::string, torch::Tensor> h = Hessians(m, Tokens());
  h["model.layers.1.mlp.down_proj"] = torch::eye(5, torch::kDouble);
  AwqOptions o;
  o.verbose = false;
  auto r = ApplyAwq(m, h, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.status().message()).find("model.layers.1.mlp.down_proj"), std::string::npos)
      << r.status();
}

}  // namespace
}  // namespace qatk::qat
