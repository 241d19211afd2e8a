// qat quantize --method gptq end to end: the GGUF written from its
// checkpoint holds GPTQ's codes and scales bit for bit (also for the
// row-permuted attn_q / attn_k), the --latent-out checkpoint carries the
// rounded weights without a recipe, block reconstruction after GPTQ
// (--recon-steps), and the flag errors.
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "export/gguf_export.h"
#include "export/tensor_plan.h"
#include "formats/gguf/gguf.h"
#include "formats/quant/fp16.h"
#include "formats/quant/types.h"
#include "formats/util/file_io.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "qat/cli/commands.h"
#include "qat/data/token_stream.h"
#include "qat/model/checkpoint.h"
#include "qat/quant/awq.h"
#include "qat/quant/gptq.h"
#include "qat/quant/prepare.h"
#include "qat/quant/qlinear.h"
#include "qat/train/calibrate.h"
#include "tests/export/spm_train_util.h"
#include "tests/export/tiny_checkpoint.h"

namespace qatk::cli {
namespace {

using ::testing::HasSubstr;

const std::string kRecipe = std::string(QATK_SOURCE_DIR) + "/configs/recipes/q4_0.json";

absl::Status Quantize(std::vector<std::string> args) {
  args.insert(args.begin(), "quantize");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  return QuantizeCommand(static_cast<int>(argv.size()), argv.data());
}

class QuantizeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/qatk_quantize_XXXXXX";
    root_ = mkdtemp(tmpl);
    ASSERT_TRUE(WriteFileAtomic(root_ + "/text.txt", testing::SyntheticText(300, 9)).ok());
    ASSERT_TRUE(testing::WriteTinyCheckpoint(root_ + "/base", testing::TinyModelOptions()).ok());
  }
  static void TearDownTestSuite() { std::system(("rm -rf " + root_).c_str()); }
  static std::vector<std::string> Calib() {
    return {"--calib", root_ + "/text.txt", "--calib-batches", "2", "--batch", "2", "--seq", "32"};
  }
  static std::string root_;
};
std::string QuantizeTest::root_;

// GPTQ run in-process on the same model and batches as the CLI (its default
// --seed 1234): module name -> result.
std::map<std::string, qat::GptqResult> ExpectedGptq(const std::string& base, const std::string& text) {
  std::map<std::string, qat::GptqResult> results;
  auto c = qat::LoadCheckpoint(base);
  EXPECT_TRUE(c.ok()) << c.status();
  auto recipe = LoadRecipe(kRecipe);
  EXPECT_TRUE(recipe.ok());
  auto g = qat::WithLearnedQ4_0Scales(*recipe);
  EXPECT_TRUE(g.ok());
  EXPECT_TRUE(qat::ApplyRecipe(*c->model, *g, c->config.head_dim).ok());
  auto tokens = data::LoadTokenStream(text, *c->tokenizer);
  EXPECT_TRUE(tokens.ok());
  const auto h = qat::CollectInputHessians(c->model, qat::GptqModuleNames(*c->model), *tokens, 32, 2, 2, 1234,
                                           c->tokenizer->bos_id());
  qat::GptqOptions o;
  o.verbose = false;
  EXPECT_TRUE(qat::ApplyGptq(*c->model, h, o, &results).ok());
  return results;
}

// The Q4_0 row of GPTQ's codes and scales, packed as ggml does.
std::vector<uint8_t> PackRow(const qat::GptqResult& g, int64_t row) {
  const int64_t cols = g.codes.size(1);
  std::vector<uint8_t> out(RowBytes(GgmlType::kQ4_0, cols));
  auto* blocks = reinterpret_cast<BlockQ4_0*>(out.data());
  for (int64_t b = 0; b < cols / 32; ++b) {
    blocks[b].d = Fp32ToFp16(g.scales[row][b].item<float>());
    for (int j = 0; j < 16; ++j) {
      const int lo = g.codes[row][32 * b + j].item<int>(), hi = g.codes[row][32 * b + j + 16].item<int>();
      blocks[b].qs[j] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
  return out;
}

TEST_F(QuantizeTest, GptqGgufHoldsGptqCodesBitForBit) {
  const std::string out = root_ + "/gptq", latent = root_ + "/gptq-init";
  std::vector<std::string> args = {"--method", "gptq", "--model", root_ + "/base", "--recipe", kRecipe,
                                   "--out", out, "--latent-out", latent};
  for (const std::string& a : Calib()) args.push_back(a);
  const absl::Status s = Quantize(args);
  ASSERT_TRUE(s.ok()) << s;
  const std::map<std::string, qat::GptqResult> want = ExpectedGptq(root_ + "/base", root_ + "/text.txt");
  ASSERT_EQ(want.size(), 14u);  // 2 layers x (q, k, v, o, gate, up, down)
  exporter::GgufExportOptions eo;
  eo.model_dir = out;
  eo.out = out + ".gguf";
  ASSERT_TRUE(exporter::ExportGguf(eo).ok());
  auto f = gguf::GgufFile::Open(out + ".gguf");
  ASSERT_TRUE(f.ok()) << f.status();
  auto ck = qat::LoadCheckpoint(out);
  ASSERT_TRUE(ck.ok()) << ck.status();
  int checked = 0, permuted = 0;
  for (const exporter::GgufTensorSpec& t : exporter::GgufTensorList(ck->config)) {
    auto it = want.find(t.module);
    if (t.is_norm || it == want.end()) continue;
    SCOPED_TRACE(t.gguf_name);
    const gguf::TensorInfo* info = f->FindTensor(t.gguf_name);
    ASSERT_NE(info, nullptr);
    ASSERT_EQ(info->type, GgmlType::kQ4_0);
    const int64_t rows = t.shape[0], cols = t.shape[1];
    // GGUF row g holds HF row hf[g] (llama's q/k permutation, else identity).
    std::vector<float> idx(rows), hf(rows);
    for (int64_t r = 0; r < rows; ++r) idx[r] = static_cast<float>(r);
    if (t.permute_heads > 0) {
      exporter::PermuteRowsForNormRope(idx.data(), hf.data(), t.permute_heads, ck->config.head_dim, 1);
      ++permuted;
    } else {
      hf = idx;
    }
    const uint64_t row_bytes = RowBytes(GgmlType::kQ4_0, cols);
    for (int64_t g = 0; g < rows; ++g) {
      const std::vector<uint8_t> expect = PackRow(it->second, static_cast<int64_t>(hf[g]));
      ASSERT_EQ(std::memcmp(f->TensorData(*info) + g * row_bytes, expect.data(), row_bytes), 0) << "row " << g;
    }
    ++checked;
  }
  EXPECT_EQ(checked, 14);
  EXPECT_EQ(permuted, 4);
  // GPTQ really moved codes away from round-to-nearest.
  const qat::GptqResult& down = want.at("model.layers.1.mlp.down_proj");
  EXPECT_LT(down.error, down.rtn_error);
  // The latent checkpoint: float, no recipe, the rounded weights.
  auto lat = qat::LoadCheckpoint(latent);
  ASSERT_TRUE(lat.ok()) << lat.status();
  EXPECT_FALSE(lat->recipe.has_value());
  auto params = lat->model->named_parameters();
  for (const auto& [name, g] : want) EXPECT_TRUE(torch::equal(params[name + ".weight"], g.dequantized)) << name;
  auto base = qat::LoadCheckpoint(root_ + "/base");
  ASSERT_TRUE(base.ok());
  EXPECT_TRUE(torch::equal(params["model.embed_tokens.weight"], base->model->named_parameters()["model.embed_tokens.weight"]));
}

// --awq: the checkpoints equal ApplyAwq then ApplyGptq run in-process on the
// FP inputs; the latent checkpoint carries the rescaled norms and up_proj rows.
TEST_F(QuantizeTest, AwqRescalesThenRoundsAsInProcess) {
  const std::string out = root_ + "/awq", latent = root_ + "/awq-init";
  std::vector<std::string> args = {"--method", "gptq", "--awq", "--model", root_ + "/base", "--recipe", kRecipe,
                                   "--out", out, "--latent-out", latent};
  for (const std::string& a : Calib()) args.push_back(a);
  const absl::Status s = Quantize(args);
  ASSERT_TRUE(s.ok()) << s;

  auto want = qat::LoadCheckpoint(root_ + "/base");
  ASSERT_TRUE(want.ok());
  auto recipe = LoadRecipe(kRecipe);
  ASSERT_TRUE(recipe.ok());
  auto learned = qat::WithLearnedQ4_0Scales(*recipe);
  ASSERT_TRUE(learned.ok());
  ASSERT_TRUE(qat::ApplyRecipe(*want->model, *learned, want->config.head_dim).ok());
  auto tokens = data::LoadTokenStream(root_ + "/text.txt", *want->tokenizer);
  ASSERT_TRUE(tokens.ok());
  auto h = qat::CollectInputHessians(want->model, qat::GptqModuleNames(*want->model), *tokens, 32, 2, 2, 1234,
                                     want->tokenizer->bos_id());
  qat::AwqOptions ao;
  ao.verbose = false;
  auto groups = qat::ApplyAwq(want->model, h, ao);
  ASSERT_TRUE(groups.ok()) << groups.status();
  int scaled = 0;
  for (const qat::AwqGroup& g : *groups) scaled += g.alpha > 0;
  ASSERT_GT(scaled, 0) << "AWQ left every group of the tiny model alone: the test checks nothing";
  qat::GptqOptions go;
  go.verbose = false;
  ASSERT_TRUE(qat::ApplyGptq(*want->model, h, go).ok());

  auto got = qat::LoadCheckpoint(out);
  ASSERT_TRUE(got.ok()) << got.status();
  auto lat = qat::LoadCheckpoint(latent);
  ASSERT_TRUE(lat.ok()) << lat.status();
  auto base = qat::LoadCheckpoint(root_ + "/base");
  ASSERT_TRUE(base.ok());
  auto want_p = want->model->named_parameters();
  auto base_p = base->model->named_parameters();
  for (const auto& p : got->model->named_parameters()) EXPECT_TRUE(torch::equal(p.value(), want_p[p.key()])) << p.key();
  int moved_norms = 0;
  for (const auto& p : lat->model->named_parameters()) {
    EXPECT_TRUE(torch::equal(p.value(), want_p[p.key()])) << p.key();
    if (p.key().find("layernorm") != std::string::npos) moved_norms += !torch::equal(p.value(), base_p[p.key()]);
  }
  EXPECT_GT(moved_norms, 0);
}

// --gptq-order sequential: the first linear sees the same (FP) inputs as in
// the parallel order, later ones see the outputs of rounded predecessors.
TEST_F(QuantizeTest, SequentialOrderRoundsLaterLinearsOnRoundedInputs) {
  std::map<std::string, torch::Tensor> weights[2];
  const char* orders[2] = {"parallel", "sequential"};
  for (int i = 0; i < 2; ++i) {
    const std::string out = root_ + "/order-" + orders[i];
    std::vector<std::string> args = {"--method", "gptq", "--gptq-order", orders[i], "--model", root_ + "/base",
                                     "--recipe", kRecipe, "--out", out};
    for (const std::string& a : Calib()) args.push_back(a);
    const absl::Status s = Quantize(args);
    ASSERT_TRUE(s.ok()) << s;
    auto c = qat::LoadCheckpoint(out);
    ASSERT_TRUE(c.ok()) << c.status();
    for (const auto& p : c->model->named_parameters()) weights[i][p.key()] = p.value().clone();
  }
  EXPECT_TRUE(torch::equal(weights[0]["model.layers.0.self_attn.q_proj.weight"],
                           weights[1]["model.layers.0.self_attn.q_proj.weight"]));
  EXPECT_TRUE(torch::equal(weights[0]["model.layers.0.self_attn.v_proj.weight"],
                           weights[1]["model.layers.0.self_attn.v_proj.weight"]));  // same input as q
  EXPECT_FALSE(torch::equal(weights[0]["model.layers.0.self_attn.o_proj.weight"],
                            weights[1]["model.layers.0.self_attn.o_proj.weight"]));
  EXPECT_FALSE(torch::equal(weights[0]["model.layers.1.mlp.down_proj.weight"],
                            weights[1]["model.layers.1.mlp.down_proj.weight"]));
}

// --recon-steps: block reconstruction moves the weights, norms and block
// scales GPTQ left, and the latent checkpoint holds the forward's weights,
// (q - 8) * d, of the reconstructed model: what its GGUF holds.
TEST_F(QuantizeTest, BlockReconMovesGptqAndLatentHoldsItsRounding) {
  const std::string gptq = root_ + "/recon0", out = root_ + "/recon", latent = root_ + "/recon-init";
  std::vector<std::string> args = {"--method", "gptq", "--model", root_ + "/base", "--recipe", kRecipe, "--out", gptq};
  for (const std::string& a : Calib()) args.push_back(a);
  ASSERT_TRUE(Quantize(args).ok());
  args = {"--method", "gptq", "--recon-steps", "20", "--recon-batches", "2", "--recon-lr", "1e-3",
          "--model", root_ + "/base", "--recipe", kRecipe, "--out", out, "--latent-out", latent};
  for (const std::string& a : Calib()) args.push_back(a);
  const absl::Status s = Quantize(args);
  ASSERT_TRUE(s.ok()) << s;
  auto g = qat::LoadCheckpoint(gptq);
  auto r = qat::LoadCheckpoint(out);
  auto lat = qat::LoadCheckpoint(latent);
  ASSERT_TRUE(g.ok() && r.ok() && lat.ok());
  EXPECT_FALSE(lat->recipe.has_value());
  auto gp = g->model->named_parameters(), rp = r->model->named_parameters(), lp = lat->model->named_parameters();
  for (const char* name : {"model.layers.0.input_layernorm.weight", "model.layers.1.mlp.down_proj.weight",
                           "model.layers.1.mlp.down_proj.weight_scale"}) {
    EXPECT_FALSE(torch::equal(gp[name], rp[name])) << name << " did not move";
  }
  // Not reconstructed: the embeddings and the head.
  EXPECT_TRUE(torch::equal(gp["model.embed_tokens.weight"], rp["model.embed_tokens.weight"]));
  EXPECT_TRUE(torch::equal(gp["lm_head.weight"], rp["lm_head.weight"]));
  int linears = 0;
  for (const auto& m : r->model->named_modules("", false)) {
    auto* l = m.value()->as<qat::QLinearImpl>();
    if (l == nullptr || l->quant().weight.scheme != QuantScheme::kQ4_0) continue;
    EXPECT_TRUE(torch::equal(lp[m.key() + ".weight"], l->QuantizedWeight())) << m.key();
    ++linears;
  }
  EXPECT_EQ(linears, 14);
  EXPECT_TRUE(torch::equal(lp["model.layers.0.input_layernorm.weight"], rp["model.layers.0.input_layernorm.weight"]));
}

// The Hugging Face tokenizer files of a checkpoint are carried through a
// save unchanged; absent ones stay absent.
TEST_F(QuantizeTest, CarriesTokenizerFiles) {
  const std::string in = root_ + "/with_tok", out = root_ + "/with_tok_q";
  ASSERT_TRUE(testing::WriteTinyCheckpoint(in, testing::TinyModelOptions()).ok());
  const std::map<std::string, std::string> files = {
      {"tokenizer.json", "{\"model\": \"not parsed on save\"}"},
      {"tokenizer_config.json", "{\"chat_template\": \"{{ x }}\\n\"}"},
      {"chat_template.jinja", "{% for m in messages %}{{ m }}{% endfor %}\n"},
      {"generation_config.json", "{\"eos_token_id\": [1, 2]}"}};
  for (const auto& [name, text] : files) ASSERT_TRUE(WriteFileAtomic(in + "/" + name, text).ok());
  auto c = qat::LoadCheckpoint(in);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->tokenizer_files, files);
  std::vector<std::string> a = {"--recipe", kRecipe, "--model", in, "--out", out};
  for (const std::string& x : Calib()) a.push_back(x);
  ASSERT_TRUE(Quantize(a).ok());
  for (const auto& [name, text] : files) {
    auto got = ReadFileToString(out + "/" + name);
    ASSERT_TRUE(got.ok()) << name << ": " << got.status();
    EXPECT_EQ(*got, text) << name;
  }
  EXPECT_NE(access((out + "/special_tokens_map.json").c_str(), F_OK), 0);
}

TEST_F(QuantizeTest, FlagErrors) {
  const std::string base = root_ + "/base";
  auto expect = [](const absl::Status& s, const char* needle) {
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr(needle));
  };
  std::vector<std::string> common = {"--model", base, "--out", root_ + "/err"};
  auto with = [&](std::vector<std::string> a, bool calib) {
    a.insert(a.end(), common.begin(), common.end());
    if (calib) for (const std::string& c : Calib()) a.push_back(c);
    return a;
  };
  expect(Quantize(with({"--method", "awq", "--recipe", kRecipe}, true)), "--method must be rtn or gptq");
  expect(Quantize(with({"--method", "gptq", "--recipe", kRecipe}, false)), "needs --calib");
  expect(Quantize(with({"--method", "gptq", "--recipe", std::string(QATK_SOURCE_DIR) + "/configs/recipes/mobile.json"},
                       true)), "needs q4_0 weights");
  expect(Quantize(with({"--recipe", kRecipe, "--latent-out", root_ + "/x"}, true)), "--latent-out needs --method gptq");
  expect(Quantize(with({"--recipe", kRecipe, "--awq"}, true)), "--awq needs --method gptq");
  expect(Quantize(with({"--recipe", kRecipe, "--recon-steps", "5"}, true)), "--recon-steps needs --method gptq");
  expect(Quantize(with({"--method", "gptq", "--recipe", kRecipe, "--recon-batches", "0"}, true)), "--recon-batches");
  expect(Quantize(with({"--method", "gptq", "--gptq-order", "random", "--recipe", kRecipe}, true)),
         "--gptq-order must be parallel or sequential");
  // NaN activations (a NaN embedding table) make a NaN Hessian: named, not silently rounded.
  auto c = qat::LoadCheckpoint(base);
  ASSERT_TRUE(c.ok());
  {
    torch::NoGradGuard no_grad;
    c->model->named_parameters()["model.embed_tokens.weight"].fill_(NAN);
  }
  qat::CheckpointWrite w;
  w.config = &c->config;
  w.model = c->model.get();
  w.tokenizer_model = &c->tokenizer->serialized();
  ASSERT_TRUE(qat::SaveCheckpoint(root_ + "/nan", w).ok());
  std::vector<std::string> a = {"--method", "gptq", "--recipe", kRecipe, "--model", root_ + "/nan", "--out",
                                root_ + "/err"};
  for (const std::string& x : Calib()) a.push_back(x);
  const absl::Status s = Quantize(a);
  expect(s, "non-finite");
  EXPECT_THAT(std::string(s.message()), HasSubstr("model.layers.0.self_attn.q_proj"));
  EXPECT_NE(access((root_ + "/err").c_str(), F_OK), 0);  // nothing written
}

}  // namespace
}  // namespace qatk::cli
