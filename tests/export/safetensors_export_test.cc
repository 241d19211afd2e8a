#include "export/safetensors_export.h"

#include <cstring>
#include <string>
#include <vector>

#include "export/checkpoint.h"
#include "export/gguf_export.h"
#include "export/tensor_plan.h"
#include "formats/gguf/gguf.h"
#include "formats/quant/codecs.h"
#include "formats/safetensors/safetensors.h"
#include "formats/util/file_io.h"
#include "gtest/gtest.h"
#include "tests/export/tiny_checkpoint.h"

namespace qatk::exporter {
namespace {

using gguf::GgufFile;

class SafetensorsExportTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/qatk_st_export_XXXXXX";
    root_ = mkdtemp(tmpl);
    testing::TinyModelOptions o;
    o.recipe_json = testing::RecipeQ4_0Q2Head();
    const absl::Status s = testing::WriteTinyCheckpoint(root_ + "/qat", o);
    ASSERT_TRUE(s.ok()) << s;
  }
  static void TearDownTestSuite() { std::system(("rm -rf " + root_).c_str()); }
  static std::string root_;
};
std::string SafetensorsExportTest::root_;

std::string ExportGgufOrDie(const std::string& dir, const std::string& out,
                            const std::string& outtype) {
  GgufExportOptions e;
  e.model_dir = dir;
  e.out = out;
  e.outtype = outtype;
  const absl::Status s = ExportGguf(e);
  EXPECT_TRUE(s.ok()) << s;
  return out;
}

TEST_F(SafetensorsExportTest, WritesFakeQuantizedWeightsAndDropsQuantizerState) {
  SafetensorsExportOptions o;
  o.model_dir = root_ + "/qat";
  o.out = root_ + "/hf";
  ASSERT_TRUE(ExportSafetensors(o).ok());
  auto src = OpenCheckpoint(o.model_dir);
  auto dst = OpenCheckpoint(o.out);
  ASSERT_TRUE(src.ok() && dst.ok());
  EXPECT_FALSE(dst->recipe.has_value());
  for (const GgufTensorSpec& t : GgufTensorList(src->config)) {
    SCOPED_TRACE(t.hf_name);
    auto w = src->ReadTensor(t.hf_name, t.shape);
    auto got = dst->ReadTensor(t.hf_name, t.shape);
    ASSERT_TRUE(w.ok() && got.ok());
    std::vector<float> want = *w;
    const QuantSpec spec = t.module.empty() ? QuantSpec() : src->WeightSpec(t.module);
    if (spec.enabled()) {
      auto qm = QuantizeMatrix(spec, w->data(), t.shape[0], t.shape[1], {});
      ASSERT_TRUE(qm.ok());
      want = DequantizeMatrix(*qm);
      EXPECT_NE(want, *w);
    }
    EXPECT_EQ(std::memcmp(got->data(), want.data(), want.size() * sizeof(float)), 0);
  }
  EXPECT_EQ(dst->weights.tensors().size(), GgufTensorList(src->config).size());
}

// Learned q4_0 block scales: the float weights are the blocks the GGUF holds.
TEST_F(SafetensorsExportTest, LearnedQ4_0ScalesAreApplied) {
  testing::TinyModelOptions t;
  t.recipe_json = testing::RecipeQ4_0Learned();
  t.tokenizer_model = root_ + "/qat/tokenizer.model";
  const std::string dir = root_ + "/q4l";
  ASSERT_TRUE(testing::WriteTinyCheckpoint(dir, t).ok());
  ASSERT_TRUE(testing::AddQuantState(dir, 4).ok());
  SafetensorsExportOptions o;
  o.model_dir = dir;
  o.out = root_ + "/q4l-hf";
  const absl::Status s = ExportSafetensors(o);
  ASSERT_TRUE(s.ok()) << s;
  const std::string g = ExportGgufOrDie(dir, root_ + "/q4l.gguf", "auto");
  auto dst = OpenCheckpoint(o.out);
  auto f = GgufFile::Open(g);
  ASSERT_TRUE(dst.ok() && f.ok());
  for (const char* name : {"model.layers.1.mlp.down_proj.weight", "model.embed_tokens.weight"}) {
    SCOPED_TRACE(name);
    const gguf::TensorInfo* ti =
        f->FindTensor(std::string(name) == "model.embed_tokens.weight" ? "token_embd.weight" : "blk.1.ffn_down.weight");
    ASSERT_NE(ti, nullptr);
    ASSERT_EQ(ti->type, GgmlType::kQ4_0);
    auto got = dst->weights.ReadFloat(name);
    ASSERT_TRUE(got.ok());
    std::vector<float> want(got->size());
    DequantizeRow(GgmlType::kQ4_0, f->TensorData(*ti), want.data(), static_cast<int64_t>(want.size()));
    EXPECT_EQ(std::memcmp(got->data(), want.data(), want.size() * sizeof(float)), 0);
  }
}

// The block rules are idempotent: re-quantizing the fake-quantized F32
// checkpoint gives the same GGUF blocks, with the recipe and with a plain
// llama.cpp-style --outtype q4_0.
TEST_F(SafetensorsExportTest, RequantizingFakeQuantizedWeightsReproducesGgufBytes) {
  SafetensorsExportOptions o;
  o.model_dir = root_ + "/qat";
  o.out = root_ + "/hf2";
  ASSERT_TRUE(ExportSafetensors(o).ok());
  auto recipe = ReadFileToString(root_ + "/qat/recipe.json");
  ASSERT_TRUE(recipe.ok());
  const std::string a = ExportGgufOrDie(root_ + "/qat", root_ + "/a.gguf", "auto");
  ASSERT_TRUE(WriteFileAtomic(root_ + "/hf2/recipe.json", *recipe).ok());
  const std::string b = ExportGgufOrDie(root_ + "/hf2", root_ + "/b.gguf", "auto");
  std::remove((root_ + "/hf2/recipe.json").c_str());
  const std::string c = ExportGgufOrDie(root_ + "/hf2", root_ + "/c.gguf", "q4_0");
  auto fa = GgufFile::Open(a), fb = GgufFile::Open(b), fc = GgufFile::Open(c);
  ASSERT_TRUE(fa.ok() && fb.ok() && fc.ok());
  int n_q4 = 0;
  for (const gguf::TensorInfo& ta : fa->tensors()) {
    SCOPED_TRACE(ta.name);
    const gguf::TensorInfo* tb = fb->FindTensor(ta.name);
    ASSERT_NE(tb, nullptr);
    ASSERT_EQ(tb->type, ta.type);
    ASSERT_EQ(tb->nbytes, ta.nbytes);
    EXPECT_EQ(std::memcmp(fa->TensorData(ta), fb->TensorData(*tb), ta.nbytes), 0);
    if (ta.type != GgmlType::kQ4_0) continue;
    ++n_q4;
    const gguf::TensorInfo* tc = fc->FindTensor(ta.name);
    ASSERT_NE(tc, nullptr);
    ASSERT_EQ(tc->type, GgmlType::kQ4_0);
    EXPECT_EQ(std::memcmp(fa->TensorData(ta), fc->TensorData(*tc), ta.nbytes), 0);
  }
  EXPECT_EQ(n_q4, 14);  // 2 layers x 7 linears
}

TEST_F(SafetensorsExportTest, Bf16OutputAndSingleFile) {
  SafetensorsExportOptions o;
  o.model_dir = root_ + "/qat";
  o.out = root_ + "/one.safetensors";
  o.dtype = "bf16";
  ASSERT_TRUE(ExportSafetensors(o).ok());
  auto f = safetensors::SafetensorsFile::Open(o.out);
  ASSERT_TRUE(f.ok());
  for (const auto& t : f->tensors()) EXPECT_EQ(t.dtype, safetensors::DType::kBF16) << t.name;
  EXPECT_EQ(f->metadata().count("qatkit.recipe"), 1u);
  o.dtype = "f64";
  EXPECT_EQ(ExportSafetensors(o).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace qatk::exporter
