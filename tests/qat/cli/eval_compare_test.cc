// qat eval --compare end to end: a checkpoint with the mobile recipe and its
// quantizer state (LibTorch fake-quant model) against the runtime on the
// exported mobile file, and a q4_0 weight-only checkpoint against its GGUF
// with the Q8_0 activation path emulated (the fidelity bar:
// perplexity within 0.5%, top-1 agreement >= 99%).
#include "qat/cli/eval_compare.h"

#include <cstdio>
#include <cstdlib>
#include <string>

#include "export/gguf_export.h"
#include "export/mobile_export.h"
#include "formats/util/file_io.h"
#include "gtest/gtest.h"
#include "tests/export/spm_train_util.h"
#include "tests/export/tiny_checkpoint.h"

namespace qatk::cli {
namespace {

class EvalCompareTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/qatk_eval_compare_XXXXXX";
    root_ = mkdtemp(tmpl);
    ASSERT_TRUE(WriteFileAtomic(root_ + "/text.txt", testing::SyntheticText(120, 9)).ok());
  }
  static void TearDownTestSuite() { std::system(("rm -rf " + root_).c_str()); }

  static CompareResult Compare(const std::string& dir, const std::string& file) {
    EvalCompareOptions o;
    o.model = dir;
    o.compare = file;
    o.file = root_ + "/text.txt";
    o.ctx = 32;
    o.threads = 1;
    absl::StatusOr<CompareResult> r = CompareExported(o);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return CompareResult();
    std::fprintf(stderr, "%s: ppl runtime %.6f torch %.6f, top-1 %.4f, max |dlogit| %.3g\n",
                 file.c_str(), r->ppl_runtime, r->ppl_torch, r->top1_agreement,
                 r->max_abs_logit_diff);
    return *r;
  }
  static std::string root_;
};
std::string EvalCompareTest::root_;

TEST_F(EvalCompareTest, MobileFileMatchesFakeQuantModel) {
  testing::TinyModelOptions o;
  auto recipe = ReadFileToString(std::string(QATK_SOURCE_DIR) + "/configs/recipes/mobile.json");
  ASSERT_TRUE(recipe.ok());
  o.recipe_json = *recipe;
  const std::string dir = root_ + "/mobile";
  ASSERT_TRUE(testing::WriteTinyCheckpoint(dir, o).ok());
  ASSERT_TRUE(testing::AddQuantState(dir, 5).ok());
  ASSERT_TRUE(exporter::ExportMobile({dir, dir + ".qmob"}).ok());
  const CompareResult r = Compare(dir, dir + ".qmob");
  EXPECT_EQ(r.format, "mobile");
  EXPECT_EQ(r.kv_type, "int8");
  EXPECT_GT(r.tokens, 100);
  EXPECT_LT(std::abs(r.rel_diff), 0.005) << r.ppl_runtime << " vs " << r.ppl_torch;
  EXPECT_GE(r.top1_agreement, 0.99);
  // Same integer codes on both sides: only float summation order and int8
  // KV rounding ties differ (a missing activation quantizer or a wrong scale
  // moves logits by O(1)).
  EXPECT_LT(r.max_abs_logit_diff, 0.1);
}

TEST_F(EvalCompareTest, Q4_0GgufMatchesFakeQuantModelWithQ8_0Activations) {
  testing::TinyModelOptions o;
  o.recipe_json = testing::RecipeQ4_0();  // weight-only: the input rule is appended
  const std::string dir = root_ + "/q4";
  ASSERT_TRUE(testing::WriteTinyCheckpoint(dir, o).ok());
  exporter::GgufExportOptions g;
  g.model_dir = dir;
  g.out = dir + ".gguf";
  ASSERT_TRUE(exporter::ExportGguf(g).ok());
  const CompareResult r = Compare(dir, g.out);
  EXPECT_EQ(r.format, "gguf");
  EXPECT_EQ(r.q8_0_act_emulated, 2 * 7 + 1);
  EXPECT_LT(std::abs(r.rel_diff), 0.005) << r.ppl_runtime << " vs " << r.ppl_torch;
  // Random weights give near-tied logits, and the embedding is F16 in the
  // GGUF but F32 in the model: a couple of argmax flips in ~260 are expected.
  EXPECT_GE(r.top1_agreement, 0.98);
  EXPECT_LT(r.max_abs_logit_diff, 0.1);
}

}  // namespace
}  // namespace qatk::cli
