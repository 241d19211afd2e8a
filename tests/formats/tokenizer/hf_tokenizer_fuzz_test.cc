// Robustness of formats/tokenizer: seeded random byte strings (invalid UTF-8,
// lone "▁", partial special tokens, whitespace runs) through every tiny
// testdata tokenizer, and damaged tokenizer.json files, must give ids and a
// decode, or a clean error: never a crash or sanitizer report. Also built
// under ASan+UBSan (QATK_SANITIZE=ON).
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "formats/tokenizer/hf_tokenizer.h"
#include "formats/tokenizer/unicode.h"
#include "formats/util/file_io.h"
#include "gtest/gtest.h"

namespace qatk::tokenizer {
namespace {

const std::string kTestdata = std::string(QATK_SOURCE_DIR) + "/tests/formats/testdata/";
constexpr int kTexts = 2000;
constexpr int kMutations = 1500;

std::string RandomText(std::mt19937& rng) {
  static const std::vector<std::string> pieces = {
      " ", "  ", "\n", "\t", "\r\n", "a", "b", "c", "he", "llo", "the", "world", "'s", "12345",
      "\xE2\x96\x81", "\xE2\x96", "\xC3\xA9", "e\xCC\x81", "\xE6\xBC\xA2", "\xF0\x9F\x98\x80", "\xFF", "\x80",
      "\xED\xA0\x80", "<s>", "</s>", "<|x|>", "<think>", "<|x", "[L]", "[R]", "[W]", "hey", "\xC2\x85",
      "\xE3\x80\x80", "\x00", "_", "##", "</w>", "<0x41>"};
  std::string out;
  const int n = std::uniform_int_distribution<int>(0, 40)(rng);
  for (int i = 0; i < n; ++i) {
    if (std::uniform_int_distribution<int>(0, 4)(rng) == 0) {
      out.push_back(static_cast<char>(std::uniform_int_distribution<int>(0, 255)(rng)));
    } else {
      out += pieces[std::uniform_int_distribution<size_t>(0, pieces.size() - 1)(rng)];
    }
  }
  return out;
}

TEST(HfTokenizerFuzzTest, RandomTexts) {
  for (const char* file : {"tiny_spm_tokenizer.json", "tiny_bytelevel_tokenizer.json", "tiny_prefix_tokenizer.json",
                           "tiny_digits_tokenizer.json"}) {
    SCOPED_TRACE(file);
    auto t = HfTokenizer::FromFile(kTestdata + file);
    ASSERT_TRUE(t.ok()) << t.status();
    std::mt19937 rng(1234);
    for (int i = 0; i < kTexts; ++i) {
      const std::string text = RandomText(rng);
      for (bool special : {false, true}) {
        auto ids = t->Encode(text, special);
        ASSERT_TRUE(ids.ok()) << ids.status();
        for (int32_t id : *ids) ASSERT_TRUE(id >= 0 && id < t->vocab_size()) << id;
        const std::string decoded = t->Decode(*ids, !special);
        EXPECT_TRUE(IsValidUtf8(decoded));
      }
    }
    std::printf("tokenizer text fuzz (%s): %d executions\n", file, 2 * kTexts);
  }
}

// Byte-level BPE loses nothing: decode(encode(x)) is x (read as UTF-8, with
// the prefix space ByteLevel adds) when no added token occurs in x.
TEST(HfTokenizerFuzzTest, ByteLevelRoundTrip) {
  auto t = HfTokenizer::FromFile(kTestdata + "tiny_bytelevel_tokenizer.json");
  ASSERT_TRUE(t.ok()) << t.status();
  std::mt19937 rng(99);
  for (int i = 0; i < kTexts; ++i) {
    const std::string text = RandomText(rng);
    if (text.find("<|x|>") != std::string::npos || text.find("<think>") != std::string::npos) continue;
    auto ids = t->Encode(text, false);
    ASSERT_TRUE(ids.ok()) << ids.status();
    const std::string want = Utf8Lossy(text);
    EXPECT_EQ(t->Decode(*ids, false), text.empty() || text[0] == ' ' ? want : " " + want);
  }
}

TEST(HfTokenizerFuzzTest, DamagedFiles) {
  auto base = ReadFileToString(kTestdata + "tiny_spm_tokenizer.json");
  ASSERT_TRUE(base.ok()) << base.status();
  std::mt19937 rng(7);
  int loaded = 0;
  for (int i = 0; i < kMutations; ++i) {
    std::string s = *base;
    const int kind = i % 3;
    if (kind == 0) {
      s.resize(std::uniform_int_distribution<size_t>(0, s.size())(rng));
    } else {
      const int flips = std::uniform_int_distribution<int>(1, 4)(rng);
      for (int f = 0; f < flips; ++f) {
        const size_t at = std::uniform_int_distribution<size_t>(0, s.size() - 1)(rng);
        static const char kChars[] = "{}[]\":,0123456789 abtrue\\-";
        s[at] = kind == 1 ? kChars[std::uniform_int_distribution<size_t>(0, sizeof(kChars) - 2)(rng)]
                          : static_cast<char>(std::uniform_int_distribution<int>(0, 255)(rng));
      }
    }
    auto t = HfTokenizer::FromJson(s, "damaged.json");
    if (!t.ok()) {
      EXPECT_NE(std::string(t.status().message()).find("damaged.json"), std::string::npos) << t.status();
      continue;
    }
    ++loaded;
    auto ids = t->Encode("hello abc \xC3\xA9 [W] x", true);
    if (ids.ok()) t->Decode(*ids, false);
  }
  std::printf("tokenizer.json fuzz: %d executions (%d loaded)\n", kMutations, loaded);
  EXPECT_GT(loaded, 0);  // some mutations only touch strings
}

}  // namespace
}  // namespace qatk::tokenizer
