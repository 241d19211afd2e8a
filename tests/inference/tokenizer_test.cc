// The runtime tokenizer against libsentencepiece on a BPE model trained in
// the test with docs/formats/gguf.md, "Tokenizer metadata" settings.
#include "inference/tokenizer.h"

#include <cstdio>
#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "spm_oracle.h"

namespace qatk::inference {
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
  const Tokenizer tok(vocab);
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
    std::vector<int32_t> got = tok.Encode(t, /*add_bos=*/false);
    EXPECT_EQ(std::vector<int32_t>(ref.begin(), ref.end()), got) << "text: " << t;
    std::vector<int32_t> with_bos = tok.Encode(t, /*add_bos=*/true);
    ASSERT_FALSE(with_bos.empty());
    EXPECT_EQ(with_bos[0], 1);
    // Decoding drops the leading space the encoder added.
    EXPECT_EQ(tok.Decode(got), std::string(" ") + t) << "text: " << t;
  }
}

}  // namespace
}  // namespace qatk::inference
