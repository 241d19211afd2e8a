// Block reconstruction (qat/train/block_recon.h) on a tiny random model:
// each layer's loss falls, the chain and the targets are what the header
// says, the teacher and the untouched parts stay, and bad input is named.
#include "qat/train/block_recon.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "formats/quant/recipe.h"
#include "gmock/gmock.h"
#include "qat/data/token_stream.h"
#include "qat/quant/prepare.h"

namespace qatk::qat {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

ModelConfig TinyConfig(const std::string& model_type = "llama") {
  ModelConfig c;
  c.model_type = model_type;
  c.vocab_size = 64;
  c.hidden_size = 64;
  c.intermediate_size = 128;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 16;
  c.max_position_embeddings = 32;
  return c;
}

Recipe Q4_0Recipe() {
  auto r = ParseRecipe(R"({"recipe_version": 1, "name": "t", "export_format": "gguf", "rules": [
    {"match": ["model.layers.*.self_attn.*_proj", "model.layers.*.mlp.*_proj"],
     "weight": {"scheme": "q4_0", "scale_rule": "learned"}, "input": {"scheme": "q8_0_act"}}]})", "test");
  EXPECT_TRUE(r.ok()) << r.status();
  return *r;
}

// A teacher and a quantized copy of it.
struct Pair {
  CausalLM teacher{nullptr}, student{nullptr};
};
Pair MakePair(const std::string& model_type = "llama") {
  Pair p;
  p.teacher = CausalLM(TinyConfig(model_type));
  p.teacher->InitWeights(7);
  p.student = CausalLM(TinyConfig(model_type));
  torch::NoGradGuard no_grad;
  auto src = p.teacher->named_parameters();
  for (auto& q : p.student->named_parameters()) q.value().copy_(src[q.key()]);
  EXPECT_TRUE(ApplyRecipe(*p.student, Q4_0Recipe(), 16).ok());
  return p;
}

std::vector<int32_t> Tokens(int n) {
  std::vector<int32_t> t(n);
  for (int i = 0; i < n; ++i) t[i] = 3 + (i * 37 + i / 7) % 61;
  return t;
}

BlockReconOptions Options() {
  BlockReconOptions o;
  o.steps = 40;
  o.batches = 3;
  o.batch = 2;
  o.seq = 16;
  o.lr = 1e-3;
  o.scale_lr = 1e-4;
  o.verbose = false;
  return o;
}

TEST(BlockReconTest, EveryLayerLossFallsAndTheChainIsTheStudents) {
  torch::manual_seed(0);
  Pair p = MakePair();
  std::map<std::string, torch::Tensor> before;
  for (const auto& q : p.student->named_parameters()) before[q.key()] = q.value().clone();
  std::map<std::string, torch::Tensor> teacher_before;
  for (const auto& q : p.teacher->named_parameters()) teacher_before[q.key()] = q.value().clone();
  const std::vector<int32_t> tokens = Tokens(400);
  auto r = BlockReconstruct(p.student, p.teacher, tokens, 1, Options());
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 2u);
  for (const BlockReconLayer& l : *r) {
    EXPECT_GT(l.mse_before, 0);
    EXPECT_LT(l.mse_after, 0.9 * l.mse_before);
  }
  for (const auto& q : p.teacher->named_parameters()) EXPECT_TRUE(torch::equal(q.value(), teacher_before[q.key()]));
  auto after = p.student->named_parameters();
  EXPECT_TRUE(torch::equal(after["model.embed_tokens.weight"], before["model.embed_tokens.weight"]));
  EXPECT_TRUE(torch::equal(after["lm_head.weight"], before["lm_head.weight"]));
  EXPECT_TRUE(torch::equal(after["model.norm.weight"], before["model.norm.weight"]));
  for (const char* n : {"model.layers.0.mlp.up_proj.weight", "model.layers.1.post_attention_layernorm.weight",
                        "model.layers.1.self_attn.o_proj.weight_scale"}) {
    EXPECT_FALSE(torch::equal(after[n], before[n])) << n;
  }
  // Layer 1's final loss: the reconstructed student's own layer-0 output as
  // input, the teacher's layer-1 output (on the teacher's chain) as target,
  // over the same windows (BatchSampler, seed 1234).
  data::BatchSampler sampler(&tokens, 16, 1234, 1);
  std::vector<int64_t> in, tg;
  double sum = 0;
  torch::NoGradGuard no_grad;
  for (int i = 0; i < 3; ++i) {
    sampler.Next(2, &in, &tg);
    const torch::Tensor ids = torch::from_blob(in.data(), {2, 16}, torch::kInt64).clone();
    auto s0 = p.student->model->layers[0]->as<DecoderLayer>();
    auto s1 = p.student->model->layers[1]->as<DecoderLayer>();
    auto t0 = p.teacher->model->layers[0]->as<DecoderLayer>();
    auto t1 = p.teacher->model->layers[1]->as<DecoderLayer>();
    const torch::Tensor x = s0->forward(p.student->model->EmbedInput(ids));
    const torch::Tensor y = t1->forward(t0->forward(p.teacher->model->EmbedInput(ids)));
    sum += torch::mse_loss(s1->forward(x), y).item<double>();
  }
  EXPECT_NEAR(sum / 3, (*r)[1].mse_after, 1e-6 * (*r)[1].mse_after);
}

// Qwen2's q/k/v biases and Qwen3's q/k norms are layer parameters like the
// weights: they train, and the loss falls.
TEST(BlockReconTest, QwenBiasesAndQkNormsTrain) {
  for (const char* type : {"qwen2", "qwen3"}) {
    torch::manual_seed(0);
    Pair p = MakePair(type);
    std::map<std::string, torch::Tensor> before;
    for (const auto& q : p.student->named_parameters()) before[q.key()] = q.value().clone();
    auto r = BlockReconstruct(p.student, p.teacher, Tokens(400), 1, Options());
    ASSERT_TRUE(r.ok()) << r.status();
    for (const BlockReconLayer& l : *r) EXPECT_LT(l.mse_after, 0.9 * l.mse_before) << type;
    auto after = p.student->named_parameters();
    const std::vector<std::string> names =
        std::string(type) == "qwen2"
            ? std::vector<std::string>{"model.layers.0.self_attn.q_proj.bias", "model.layers.1.self_attn.v_proj.bias"}
            : std::vector<std::string>{"model.layers.0.self_attn.q_norm.weight", "model.layers.1.self_attn.k_norm.weight"};
    for (const std::string& n : names) {
      ASSERT_TRUE(after.contains(n)) << n;
      EXPECT_FALSE(torch::equal(after[n], before[n])) << n;
    }
  }
}

TEST(BlockReconTest, ZeroStepsChangesNothing) {
  Pair p = MakePair();
  std::map<std::string, torch::Tensor> before;
  for (const auto& q : p.student->named_parameters()) before[q.key()] = q.value().clone();
  BlockReconOptions o = Options();
  o.steps = 0;
  auto r = BlockReconstruct(p.student, p.teacher, Tokens(400), 1, o);
  ASSERT_TRUE(r.ok()) << r.status();
  for (const BlockReconLayer& l : *r) EXPECT_EQ(l.mse_before, l.mse_after);
  for (const auto& q : p.student->named_parameters()) EXPECT_TRUE(torch::equal(q.value(), before[q.key()])) << q.key();
}

TEST(BlockReconTest, ProgressBarOnlyWhenAsked) {
  BlockReconOptions o = Options();
  o.steps = 25;
  for (bool progress : {false, true}) {
    Pair p = MakePair();
    o.progress = progress;
    testing::internal::CaptureStderr();
    ASSERT_TRUE(BlockReconstruct(p.student, p.teacher, Tokens(400), 1, o).ok());
    const std::string err = testing::internal::GetCapturedStderr();
    if (!progress) {
      EXPECT_EQ(err, "");
      continue;
    }
    // Drawn every 10 steps and at the last, for each layer (redrawn in
    // place on a terminal; captured here, so as lines: qat/train/progress.h).
    for (const char* s : {"block recon: layer 1/2 [#########...............] 10/25 mse ",
                          "block recon: layer 1/2 [########################] 25/25 mse ",
                          "block recon: layer 2/2 [###################.....] 20/25 mse ", "ETA 0m00s"}) {
      EXPECT_THAT(err, HasSubstr(s));
    }
    EXPECT_THAT(err, Not(HasSubstr("nan")));
  }
}

TEST(BlockReconTest, ActivationBytesAreTwoF32Sets) {
  BlockReconOptions o;  // the defaults: 40 batches of 8 x 256
  EXPECT_EQ(BlockReconActivationBytes(o, 128), int64_t{2} * 40 * 8 * 256 * 128 * 4);  // 80 MiB
  o.batches = 3;
  o.batch = 2;
  o.seq = 5;
  EXPECT_EQ(BlockReconActivationBytes(o, 2048), int64_t{2} * 3 * 2 * 5 * 2048 * 4);
}

TEST(BlockReconTest, BadInputIsNamed) {
  Pair p = MakePair();
  ModelConfig wide = TinyConfig();
  wide.intermediate_size = 192;
  CausalLM other(wide);
  auto r = BlockReconstruct(p.student, other, Tokens(400), 1, Options());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("config"));
  r = BlockReconstruct(p.student, p.teacher, Tokens(10), 1, Options());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("fewer than one window"));
  {
    torch::NoGradGuard no_grad;
    p.teacher->named_parameters()["model.layers.1.mlp.down_proj.weight"].fill_(NAN);
  }
  r = BlockReconstruct(p.student, p.teacher, Tokens(400), 1, Options());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("layer 1, step 0"));
}

}  // namespace
}  // namespace qatk::qat
