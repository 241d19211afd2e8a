// The runtime tokenizer: "llama" vocabularies against libsentencepiece on a
// BPE model trained in the test with docs/formats/gguf.md, "Tokenizer
// metadata" settings; "gpt2" vocabularies on a hand-made byte-level BPE.
#include "formats/tokenizer/gguf_tokenizer.h"

#include <cstdio>
#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "tests/inference/spm_oracle.h"

namespace qatk::tokenizer {
namespace {

TEST(TokenizerTest, MatchesSentencePieceBpe) {
  const std::string dir = ::testing::TempDir();
  const std::string corpus = dir + "/tok_corpus.txt";
  {
    std::ofstream out(corpus);
    for (int i = 0; i < 200; ++i) {
      out << "The quick brown fox jumps over the lazy dog " << i << ".\n"
          << "Numbers 12345 and  double  spaces, tabs\tand caf\xC3\xA9 na\xC3\xAFve.\n"
          << "In the beginning was the word, and the word was with the model " << i * 7 << "\n";
    }
  }
  const std::string prefix = dir + "/tok_bpe";
  ASSERT_EQ(qatk::testing::TrainSpmBpe(corpus, prefix, 400), "");
  const std::string model = prefix + ".model";
  Vocab vocab;
  for (const auto& p : qatk::testing::SpmPieces(model)) {
    vocab.tokens.push_back(p.text);
    vocab.scores.push_back(p.score);
    vocab.types.push_back(p.type);
  }
  ASSERT_EQ(vocab.tokens.size(), 400u);
  auto created = GgufTokenizer::Create(vocab, "test");
  ASSERT_TRUE(created.ok()) << created.status();
  const GgufTokenizer& tok = *created;
  const char* texts[] = {
      "The quick brown fox",
      "  leading spaces and trailing  ",
      "line one\nline two\n\nthree",
      "digits 0123456789 and 3.14159",
      "unicode: caf\xC3\xA9, \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E, emoji \xF0\x9F\x98\x80!",
      "tabs\tand\tmore   multiple    spaces",
      "x",
  };
  for (const char* t : texts) {
    const std::vector<int> ref = qatk::testing::SpmEncode(model, t);
    ASSERT_FALSE(ref.empty()) << t;
    std::vector<int32_t> got = tok.Encode(t, false, false).value();
    EXPECT_EQ(std::vector<int32_t>(ref.begin(), ref.end()), got) << "text: " << t;
    std::vector<int32_t> with_bos = tok.Encode(t, true, false).value();
    ASSERT_FALSE(with_bos.empty());
    EXPECT_EQ(with_bos[0], 1);
    // Decoding drops the leading space the encoder added.
    EXPECT_EQ(tok.Decode(got), std::string(" ") + t) << "text: " << t;
  }
}

#ifdef QATK_HAVE_HF_TOKENIZER
// GPT-2's byte -> code point map, as UTF-8.
std::string ByteChar(int b) {
  int n = 0;
  for (int x = 0; x < b; ++x) {
    const bool direct = (x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE;
    if (!direct) ++n;
  }
  const bool direct = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
  const uint32_t cp = direct ? b : 256 + n;
  std::string s;
  if (cp < 0x80) {
    s.push_back(static_cast<char>(cp));
  } else {
    s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  return s;
}

// 256 byte tokens, merges making "Ġthe" and "Ġcat", a control token and a
// user-defined one.
Vocab ByteLevelVocab() {
  Vocab v;
  v.model = "gpt2";
  v.pre = "gpt-2";
  for (int b = 0; b < 256; ++b) v.tokens.push_back(ByteChar(b));
  v.types.assign(256, kTokNormal);
  const std::string sp = ByteChar(' ');  // "Ġ"
  const std::vector<std::string> merged = {sp + "t", "he", sp + "the", sp + "c", sp + "ca", sp + "cat"};
  for (const std::string& t : merged) {
    v.tokens.push_back(t);
    v.types.push_back(kTokNormal);
  }
  v.merges = {sp + " t", "h e", sp + "t he", sp + " c", sp + "c a", sp + "ca t"};
  v.tokens.push_back("<|eot|>");
  v.types.push_back(kTokControl);
  v.tokens.push_back("<x>");
  v.types.push_back(kTokUserDefined);
  v.scores.assign(v.tokens.size(), 0.0f);
  v.bos = v.eos = 262;
  v.add_bos = true;
  v.add_space_prefix = false;
  return v;
}

TEST(GgufTokenizerTest, ByteLevelBpe) {
  auto t = GgufTokenizer::Create(ByteLevelVocab(), "v.gguf");
  ASSERT_TRUE(t.ok()) << t.status();
  auto enc = [&](const std::string& text, bool add_special, bool parse_special) {
    auto ids = t->Encode(text, add_special, parse_special);
    EXPECT_TRUE(ids.ok()) << ids.status();
    return ids.ok() ? *ids : std::vector<int32_t>{};
  };
  const int32_t the = 258, cat = 261, eot = 262, x = 263;
  EXPECT_EQ(enc("a the cat", false, true), (std::vector<int32_t>{'a', the, cat}));
  // Control tokens only with parse_special; user-defined ones always.
  EXPECT_EQ(enc("a<|eot|> the<x>", false, true), (std::vector<int32_t>{'a', eot, the, x}));
  const std::vector<int32_t> plain = enc("<|eot|><x>", false, false);
  EXPECT_EQ(plain.size(), 8u);
  EXPECT_EQ(plain.back(), x);
  EXPECT_EQ(enc(" cat", true, true), (std::vector<int32_t>{eot, cat}));  // BOS = 262 here
  // Bytes outside ASCII go through the byte-level alphabet.
  EXPECT_EQ(enc("\xC3\xA9", false, true), (std::vector<int32_t>{0xC3, 0xA9}));
  EXPECT_EQ(t->Piece(the), " the");
  EXPECT_EQ(t->Piece(0xC3), "\xC3");
  EXPECT_EQ(t->Piece(eot), "");
  EXPECT_EQ(t->Decode({'a', the, cat, x}), "a the cat<x>");
}

TEST(GgufTokenizerTest, UnknownPreTokenizerNamesTheFile) {
  Vocab v = ByteLevelVocab();
  v.pre = "no-such-pre";
  auto t = GgufTokenizer::Create(v, "v.gguf");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(t.status().message().find("v.gguf"), std::string::npos) << t.status();
  EXPECT_NE(t.status().message().find("no-such-pre"), std::string::npos) << t.status();
  v = ByteLevelVocab();
  v.merges.push_back("nospace");
  t = GgufTokenizer::Create(v, "v.gguf");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("tokenizer.ggml.merges[6]"), std::string::npos) << t.status();
}
#endif  // QATK_HAVE_HF_TOKENIZER

}  // namespace
}  // namespace qatk::tokenizer
