// QLinear / QEmbedding / KvQuant and prepare / calibrate / freeze / convert on
// a tiny Llama-named module tree.
#include "qat/quant/prepare.h"

#include <cstring>

#include "formats/quant/recipe.h"
#include "gtest/gtest.h"
#include "qat/quant/fake_quant.h"
#include "qat/quant/qlinear.h"

namespace qatk::qat {
namespace {

constexpr int64_t kE = 64, kF = 128, kV = 96, kHeadDim = 32;

struct AttnImpl : torch::nn::Module {
  AttnImpl() {
    q_proj = register_module("q_proj", QLinear(kE, kE));
    k_proj = register_module("k_proj", QLinear(kE, kE));
    v_proj = register_module("v_proj", QLinear(kE, kE));
    o_proj = register_module("o_proj", QLinear(kE, kE));
    k_cache = register_module("k_cache", KvQuant());
    v_cache = register_module("v_cache", KvQuant());
  }
  // Not attention: just every module in use. x [B, T, E].
  torch::Tensor forward(const torch::Tensor& x) {
    const torch::Tensor k = k_cache(k_proj(x).reshape({x.size(0), x.size(1), -1, kHeadDim}));
    const torch::Tensor v = v_cache(v_proj(x).reshape({x.size(0), x.size(1), -1, kHeadDim}));
    return o_proj(q_proj(x) + (k * v).reshape(x.sizes()));
  }
  QLinear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  KvQuant k_cache{nullptr}, v_cache{nullptr};
};
TORCH_MODULE(Attn);

struct MlpImpl : torch::nn::Module {
  MlpImpl() {
    gate_proj = register_module("gate_proj", QLinear(kE, kF));
    up_proj = register_module("up_proj", QLinear(kE, kF));
    down_proj = register_module("down_proj", QLinear(kF, kE));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return down_proj(torch::silu(gate_proj(x)) * up_proj(x));
  }
  QLinear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(Mlp);

struct LayerImpl : torch::nn::Module {
  LayerImpl() {
    self_attn = register_module("self_attn", Attn());
    mlp = register_module("mlp", Mlp());
  }
  torch::Tensor forward(const torch::Tensor& x) {
    const torch::Tensor h = x + self_attn(x);
    return h + mlp(h);
  }
  Attn self_attn{nullptr};
  Mlp mlp{nullptr};
};
TORCH_MODULE(Layer);

struct InnerImpl : torch::nn::Module {
  InnerImpl() {
    embed_tokens = register_module("embed_tokens", QEmbedding(kV, kE));
    layers = register_module("layers", torch::nn::ModuleList(Layer(), Layer()));
  }
  QEmbedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
};
TORCH_MODULE(Inner);

struct TinyLmImpl : torch::nn::Module {
  TinyLmImpl() {
    model = register_module("model", Inner());
    lm_head = register_module("lm_head", QLinear(kE, kV));
  }
  torch::Tensor forward(const torch::Tensor& ids) {  // [B, T] -> [B, T, V]
    torch::Tensor h = model->embed_tokens(ids) * 0.1;
    for (const auto& l : *model->layers) h = l->as<LayerImpl>()->forward(h);
    return lm_head(h);
  }
  Inner model{nullptr};
  QLinear lm_head{nullptr};
};
TORCH_MODULE(TinyLm);

Recipe Load(const std::string& name) {
  auto r = LoadRecipe(std::string(QATK_SOURCE_DIR) + "/configs/recipes/" + name + ".json");
  EXPECT_TRUE(r.ok()) << r.status();
  return *r;
}

class PrepareTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::set_num_threads(1);
    torch::manual_seed(0);
  }
  torch::Tensor Ids() { return torch::randint(0, kV, {2, 5}); }
};

bool BitEqual(const torch::Tensor& a, const torch::Tensor& b) {
  const torch::Tensor ac = a.detach().contiguous(), bc = b.detach().contiguous();
  return ac.sizes() == bc.sizes() && std::memcmp(ac.data_ptr(), bc.data_ptr(), ac.nbytes()) == 0;
}

TEST_F(PrepareTest, UnconfiguredQLinearIsPlainLinear) {
  QLinear l(kE, 8, /*bias=*/true);
  const torch::Tensor x = torch::randn({3, kE});
  EXPECT_TRUE(torch::equal(l(x), torch::linear(x, l->weight, l->bias)));
  auto params = l->named_parameters();
  EXPECT_TRUE(params.contains("weight"));
  EXPECT_TRUE(params.contains("bias"));
  EXPECT_EQ(params["weight"].sizes(), (std::vector<int64_t>{8, kE}));
}

TEST_F(PrepareTest, QuantizableModulesNamesMatchArchitecture) {
  TinyLm m;
  const auto mods = QuantizableModules(*m, kHeadDim);
  std::vector<std::string> names;
  for (const auto& s : mods) names.push_back(s.name);
  for (const char* n : {"model.embed_tokens", "model.layers.0.self_attn.q_proj", "model.layers.1.mlp.down_proj",
                        "model.layers.1.self_attn.v_cache", "lm_head"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n;
  }
  EXPECT_EQ(mods.size(), 1 + 2 * (4 + 3 + 2) + 1u);
}

TEST_F(PrepareTest, Q4_0RecipeForwardIsTheCodecNumerics) {
  TinyLm m;
  ASSERT_TRUE(ApplyRecipe(*m, Load("q4_0"), kHeadDim).ok());
  auto& q = *m->model->layers[0]->as<LayerImpl>()->self_attn->q_proj;
  EXPECT_EQ(q.quant().weight.scheme, QuantScheme::kQ4_0);
  const torch::Tensor x = torch::randn({2, 3, kE});
  const torch::Tensor want = torch::linear(Q8_0ActDequantized(x), Q4_0Dequantized(q.weight));
  EXPECT_TRUE(BitEqual(q.forward(x), want));
  // Converted codes dequantize to exactly the weight the forward used.
  auto conv = ConvertWeights(*m);
  ASSERT_TRUE(conv.ok()) << conv.status();
  const QuantizedMatrix& qm = conv->at("model.layers.0.self_attn.q_proj");
  EXPECT_EQ(qm.spec.scheme, QuantScheme::kQ4_0);
  const std::vector<float> dq = DequantizeMatrix(qm);
  EXPECT_TRUE(BitEqual(torch::from_blob(const_cast<float*>(dq.data()), {kE, kE}), q.QuantizedWeight()));
  EXPECT_EQ(conv->at("lm_head").spec.scheme, QuantScheme::kQ8_0);
  EXPECT_EQ(conv->at("model.embed_tokens").spec.scheme, QuantScheme::kQ4_0);
  // No quantizer state for block formats.
  for (const auto& p : m->named_parameters()) EXPECT_EQ(p.key().find("_scale"), std::string::npos) << p.key();
}

// Learned q4_0 scales: one parameter per block, initialised so that the
// first forward is the plain q4_0 forward bit for bit; they train, and the
// converted blocks (what the GGUF holds) dequantize to the forward's weight.
TEST_F(PrepareTest, LearnedQ4_0ScalesStartAtTheReferenceAndTrain) {
  auto recipe = ParseRecipe(R"json({"recipe_version": 1, "name": "q4l", "description": "test",
    "export_format": "gguf", "rules": [
    {"match": ["model.layers.*.self_attn.*_proj", "model.layers.*.mlp.*_proj"],
     "weight": {"scheme": "q4_0", "scale_rule": "learned"}, "input": {"scheme": "q8_0_act"}},
    {"match": "model.embed_tokens", "weight": {"scheme": "q4_0", "scale_rule": "learned"}}]})json");
  ASSERT_TRUE(recipe.ok()) << recipe.status();
  TinyLm plain, m;
  ASSERT_TRUE(ApplyRecipe(*plain, Load("q4_0"), kHeadDim).ok());
  {  // the same weights in both
    torch::NoGradGuard g;
    auto src = plain->named_parameters();
    for (auto& p : m->named_parameters()) p.value().copy_(src[p.key()]);
  }
  const absl::Status applied = ApplyRecipe(*m, *recipe, kHeadDim);
  ASSERT_TRUE(applied.ok()) << applied;
  auto params = m->named_parameters();
  ASSERT_TRUE(params.contains("model.layers.0.mlp.down_proj.weight_scale"));
  EXPECT_EQ(params["model.layers.0.mlp.down_proj.weight_scale"].sizes(), (std::vector<int64_t>{kE, kF / 32}));
  EXPECT_EQ(params["model.embed_tokens.weight_scale"].sizes(), (std::vector<int64_t>{kV, kE / 32}));
  // lm_head matches no rule here; make the plain model's head float too.
  plain->lm_head->SetMode(QuantMode::kOff);
  const torch::Tensor ids = Ids();
  EXPECT_TRUE(BitEqual(m->forward(ids), plain->forward(ids)));
  m->forward(ids).square().mean().backward();
  const torch::Tensor& ds = params["model.layers.1.self_attn.q_proj.weight_scale"];
  EXPECT_GT(ds.grad().abs().sum().item<float>(), 0.0f);
  EXPECT_GT(params["model.embed_tokens.weight_scale"].grad().abs().sum().item<float>(), 0.0f);
  {
    torch::NoGradGuard g;
    ds.mul_(0.8);
  }
  auto& q = *m->model->layers[1]->as<LayerImpl>()->self_attn->q_proj;
  auto conv = ConvertWeights(*m);
  ASSERT_TRUE(conv.ok()) << conv.status();
  const std::vector<float> dq = DequantizeMatrix(conv->at("model.layers.1.self_attn.q_proj"));
  EXPECT_TRUE(BitEqual(torch::from_blob(const_cast<float*>(dq.data()), {kE, kE}), q.QuantizedWeight()));
  EXPECT_FALSE(BitEqual(q.QuantizedWeight(), Q4_0Dequantized(q.weight)));
  const torch::Tensor table = m->model->embed_tokens->QuantizedWeight();
  EXPECT_TRUE(BitEqual(m->model->embed_tokens(ids), torch::embedding(table, ids)));
}

// q/k/v (and gate/up) share one input quantization only when it is the
// same stateless quantizer: q8_0_act yes, per-linear static scales no.
TEST_F(PrepareTest, SharedInputQuantizationOnlyForDynamicSpecs) {
  TinyLm q4, mob;
  ASSERT_TRUE(ApplyRecipe(*q4, Load("q4_0"), kHeadDim).ok());
  ASSERT_TRUE(ApplyRecipe(*mob, Load("mobile"), kHeadDim).ok());
  auto& a = *q4->model->layers[0]->as<LayerImpl>()->self_attn;
  auto& b = *mob->model->layers[0]->as<LayerImpl>()->self_attn;
  EXPECT_TRUE(a.q_proj->SharesInputQuantizer(*a.k_proj));
  EXPECT_FALSE(b.q_proj->SharesInputQuantizer(*b.k_proj));
  a.k_proj->SetMode(QuantMode::kOff);  // a different mode: no sharing
  EXPECT_FALSE(a.q_proj->SharesInputQuantizer(*a.k_proj));
  const torch::Tensor x = torch::randn({2, 3, kE});
  EXPECT_TRUE(BitEqual(a.q_proj->ForwardQuantized(a.q_proj->QuantizeInput(x)), a.q_proj->forward(x)));
}

TEST_F(PrepareTest, MobileRecipeStateNamesAndTraining) {
  TinyLm m;
  ASSERT_TRUE(ApplyRecipe(*m, Load("mobile"), kHeadDim).ok());
  auto params = m->named_parameters();
  auto buffers = m->named_buffers();
  ASSERT_TRUE(params.contains("model.layers.0.self_attn.q_proj.weight_scale"));
  EXPECT_EQ(params["model.layers.0.self_attn.q_proj.weight_scale"].sizes(), (std::vector<int64_t>{kE, 1}));
  ASSERT_TRUE(params.contains("lm_head.weight_scale"));
  EXPECT_TRUE(buffers.contains("model.layers.1.mlp.up_proj.input_scale"));
  EXPECT_TRUE(buffers.contains("model.layers.0.self_attn.k_scale"));
  EXPECT_TRUE(buffers.contains("model.layers.1.self_attn.v_scale"));
  EXPECT_FALSE(params.contains("model.embed_tokens.weight_scale"));  // absmax: no state
  // Calibrate: float outputs, scales set.
  const torch::Tensor ids = Ids();
  SetQuantMode(*m, QuantMode::kOff);
  const torch::Tensor ref = m->forward(ids);
  SetQuantMode(*m, QuantMode::kCalibrate);
  EXPECT_TRUE(torch::equal(m->forward(ids), ref));
  EXPECT_GT(buffers["model.layers.0.self_attn.k_scale"].item<float>(), 0.0f);
  EXPECT_GT(buffers["lm_head.input_scale"].item<float>(), 0.0f);
  // Quant: a training step reaches weights and learned scales.
  SetQuantMode(*m, QuantMode::kQuant);
  const torch::Tensor out = m->forward(ids);
  EXPECT_FALSE(torch::equal(out, ref));
  out.square().mean().backward();
  EXPECT_GT(params["lm_head.weight_scale"].grad().abs().sum().item<float>(), 0.0f);
  EXPECT_GT(params["model.layers.0.mlp.gate_proj.weight"].grad().abs().sum().item<float>(), 0.0f);
  // Converted int codes reproduce the forward's weights bit for bit.
  auto conv = ConvertWeights(*m);
  ASSERT_TRUE(conv.ok()) << conv.status();
  const QuantizedMatrix& head = conv->at("lm_head");
  EXPECT_EQ(head.spec.bits, 2);
  for (int8_t c : head.codes) EXPECT_TRUE(c >= -2 && c <= 1);
  const std::vector<float> dq = DequantizeMatrix(head);
  EXPECT_TRUE(BitEqual(torch::from_blob(const_cast<float*>(dq.data()), {kV, kE}), m->lm_head->QuantizedWeight()));
  // Freeze stops learned scales.
  FreezeQuantizers(*m);
  EXPECT_FALSE(params["lm_head.weight_scale"].requires_grad());
}

TEST_F(PrepareTest, EmbeddingLookupEqualsRowsOfQuantizedTable) {
  TinyLm m;
  ASSERT_TRUE(ApplyRecipe(*m, Load("mobile"), kHeadDim).ok());
  const torch::Tensor ids = Ids();
  const torch::Tensor table = m->model->embed_tokens->QuantizedWeight();
  EXPECT_TRUE(BitEqual(m->model->embed_tokens(ids), torch::embedding(table, ids)));
  EXPECT_FALSE(BitEqual(table, m->model->embed_tokens->weight));
}

TEST_F(PrepareTest, UncalibratedStaticScaleInitialisesFromFirstBatch) {
  TinyLm m;
  ASSERT_TRUE(ApplyRecipe(*m, Load("w8a8"), kHeadDim).ok());
  auto buffers = m->named_buffers();
  EXPECT_EQ(buffers["lm_head.input_scale"].item<float>(), 0.0f);
  m->forward(Ids());
  EXPECT_GT(buffers["lm_head.input_scale"].item<float>(), 0.0f);
}

TEST_F(PrepareTest, InvalidRecipeLeavesModelUntouched) {
  TinyLm m;
  auto r = ParseRecipe(R"({"recipe_version": 1, "name": "t", "export_format": "gguf", "rules": [
      {"match": "model.layers.*.mlp.down_proj", "weight": {"scheme": "q2_0"}},
      {"match": "lm_head", "weight": {"scheme": "q2_0"}}]})", "t.json");
  ASSERT_TRUE(r.ok());
  // down_proj in_features 128 is fine; lm_head in 64 is fine: use a bad pattern.
  EXPECT_TRUE(ApplyRecipe(*m, *r, kHeadDim).ok());
  auto bad = ParseRecipe(R"({"recipe_version": 1, "name": "t", "export_format": "gguf", "rules": [
      {"match": "model.layers.*.attn.*", "weight": {"scheme": "q4_0"}}]})", "t.json");
  ASSERT_TRUE(bad.ok());
  TinyLm m2;
  const absl::Status s = ApplyRecipe(*m2, *bad, kHeadDim);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(s.message()).find("matches no module"), std::string::npos) << s;
  EXPECT_FALSE(m2->lm_head->quant().weight.enabled());
  auto kv = ParseRecipe(R"({"recipe_version": 1, "name": "t", "export_format": "mobile", "rules": [
      {"match": "*.k_cache", "cache": {"scheme": "q8_0_act"}}]})", "t.json");
  ASSERT_TRUE(kv.ok());
  EXPECT_FALSE(ApplyRecipe(*m2, *kv, /*head_dim=*/48).ok());
}

}  // namespace
}  // namespace qatk::qat
