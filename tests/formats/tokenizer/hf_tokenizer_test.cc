// Unit tests of formats/tokenizer: two tiny tokenizer.json files (expected ids
// and decodes from Hugging Face tokenizers 0.23.2, npm), malformed files, the
// regex dialect and match limit, UTF-8 handling.
#include "formats/tokenizer/hf_tokenizer.h"

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "formats/tokenizer/regex.h"
#include "formats/tokenizer/unicode.h"
#include "formats/util/file_io.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/formats/test_util.h"

namespace qatk::tokenizer {
namespace {

using ::qatk::testing::ExpectError;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

const std::string kTestdata = std::string(QATK_SOURCE_DIR) + "/tests/formats/testdata/";

HfTokenizer Load(const std::string& file) {
  auto t = HfTokenizer::FromFile(kTestdata + file);
  EXPECT_TRUE(t.ok()) << t.status();
  return *std::move(t);
}

std::vector<int32_t> Enc(const HfTokenizer& t, const std::string& text, bool special) {
  auto ids = t.Encode(text, special);
  EXPECT_TRUE(ids.ok()) << ids.status();
  return ids.ok() ? *ids : std::vector<int32_t>{};
}

struct Case {
  std::string text;
  std::vector<int32_t> ids;          // add_special_tokens = false
  std::vector<int32_t> ids_special;  // add_special_tokens = true
  std::string decoded;               // decode(ids_special, false)
  std::string decoded_skip;          // decode(ids_special, true)
};

// Prepend + Replace normalizer, byte_fallback, fused unk, a BOS template,
// added tokens with lstrip / rstrip / single_word / normalized.
TEST(HfTokenizerTest, SentencePieceStyleMatchesReference) {
  const HfTokenizer t = Load("tiny_spm_tokenizer.json");
  const std::vector<Case> cases = {
      {"hello abc", {272, 259, 274}, {1, 272, 259, 274}, "<s> hello abc", "hello abc"},
      {" hello", {259, 272}, {1, 259, 272}, "<s>  hello", " hello"},
      {"hey hello hey", {281, 272, 281}, {1, 281, 272, 281}, "<s> hey hello hey", "hey hello hey"},
      {"x[L] a  [L]b",
       {259, 123, 278, 259, 275, 278, 259, 261},
       {1, 259, 123, 278, 259, 275, 278, 259, 261},
       "<s> x[L]  a[L] b",
       "x[L]  a[L] b"},
      {"a[R]  b", {275, 279, 259, 261}, {1, 275, 279, 259, 261}, "<s> a[R] b", "a[R] b"},
      {"a[W]b [W] c[W]",
       {275, 94, 90, 96, 261, 259, 280, 259, 259, 262, 94, 90, 96},
       {1, 275, 94, 90, 96, 261, 259, 280, 259, 259, 262, 94, 90, 96},
       "<s> a[W]b [W]  c[W]",
       "a[W]b [W]  c[W]"},
      {"é ü 漢",
       {259, 277, 259, 198, 191, 259, 233, 191, 165},
       {1, 259, 277, 259, 198, 191, 259, 233, 191, 165},
       "<s> é ü 漢",
       "é ü 漢"},
      {"<s>hello</s>", {1, 272, 2}, {1, 1, 272, 2}, "<s><s> hello</s>", "hello"},
      {"", {}, {1}, "<s>", ""},
      {"abcabc", {259, 274, 274}, {1, 259, 274, 274}, "<s> abcabc", "abcabc"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    EXPECT_THAT(Enc(t, c.text, false), ElementsAreArray(c.ids));
    const std::vector<int32_t> with = Enc(t, c.text, true);
    EXPECT_THAT(with, ElementsAreArray(c.ids_special));
    EXPECT_EQ(t.Decode(with, false), c.decoded);
    EXPECT_EQ(t.Decode(with, true), c.decoded_skip);
  }
  EXPECT_FALSE(t.is_byte_level());
  EXPECT_TRUE(t.is_sentencepiece_style());
  EXPECT_EQ(t.bos_id(), 1);
  EXPECT_EQ(t.unk_id(), 0);
  EXPECT_EQ(t.vocab_size(), 282);
  EXPECT_EQ(t.token_type(0), TokenType::kUnknown);
  EXPECT_EQ(t.token_type(1), TokenType::kControl);
  EXPECT_EQ(t.token_type(3 + 0x41), TokenType::kByte);
  EXPECT_EQ(t.token_type(272), TokenType::kNormal);
  EXPECT_EQ(t.token_type(281), TokenType::kUserDefined);
  EXPECT_EQ(t.token(272), "\xE2\x96\x81hello");
  EXPECT_EQ(t.TokenToId("[W]"), 280);
  EXPECT_THAT(t.special_ids(), ElementsAre(0, 1, 2));
  ASSERT_EQ(t.merges().size(), 9u);
  EXPECT_EQ(t.merges()[4], std::make_pair(std::string("\xE2\x96\x81he"), std::string("llo")));
}

// GPT-2 layout: ByteLevel pre-tokenizer with add_prefix_space and its regex.
TEST(HfTokenizerTest, ByteLevelMatchesReference) {
  const HfTokenizer t = Load("tiny_bytelevel_tokenizer.json");
  const std::vector<Case> cases = {
      {"the world", {258, 264}, {258, 264}, " the world", " the world"},
      {"the  world   the", {258, 32, 264, 265, 258}, {258, 32, 264, 265, 258}, " the  world   the",
       " the  world   the"},
      {"<|x|>the<think>world", {269, 258, 270, 264}, {269, 258, 270, 264}, "<|x|> the<think> world",
       " the<think> world"},
      {"he said 'the'", {32, 259, 32, 115, 97, 105, 100, 32, 39, 116, 259, 39},
       {32, 259, 32, 115, 97, 105, 100, 32, 39, 116, 259, 39}, " he said 'the'", " he said 'the'"},
      {"日本 the", {32, 230, 151, 165, 230, 156, 172, 258}, {32, 230, 151, 165, 230, 156, 172, 258}, " 日本 the",
       " 日本 the"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    EXPECT_THAT(Enc(t, c.text, false), ElementsAreArray(c.ids));
    const std::vector<int32_t> with = Enc(t, c.text, true);
    EXPECT_THAT(with, ElementsAreArray(c.ids_special));
    EXPECT_EQ(t.Decode(with, false), c.decoded);
    EXPECT_EQ(t.Decode(with, true), c.decoded_skip);
  }
  EXPECT_TRUE(t.is_byte_level());
  EXPECT_FALSE(t.is_sentencepiece_style());
  EXPECT_EQ(t.bos_id(), std::nullopt);
  EXPECT_EQ(t.token(258), "\xC4\xA0the");  // "Ġthe"
  EXPECT_EQ(t.token_type(269), TokenType::kControl);
  EXPECT_EQ(t.token_type(270), TokenType::kUserDefined);
}

// continuing_subword_prefix "##" + end_of_word_suffix "</w>", unk without
// fusing, NFD + Lowercase + Strip normalizers, Metaspace "first" both ways.
TEST(HfTokenizerTest, SubwordPrefixSuffixMatchesReference) {
  const HfTokenizer t = Load("tiny_prefix_tokenizer.json");
  const std::vector<Case> cases = {
      {"abc", {11, 3, 4}, {11, 3, 4}, "a##b##c</w>", "a##b##c</w>"},
      {" ABC  ab a", {6, 7, 11, 9, 1, 12}, {6, 7, 11, 9, 1, 12}, "abc</w> </w> a##b</w> ##a</w>",
       "abc</w> </w> a##b</w> ##a</w>"},
      {"aXb", {11, 0, 9}, {11, 0, 9}, "a?##b</w>", "a?##b</w>"},
      {"\xC3\xA9 x", {1, 0, 17, 1, 0}, {1, 0, 17, 1, 0}, "?##\xCC\x81</w> ?", "?##\xCC\x81</w> ?"},
      {"", {}, {}, "", ""},
      {"  ", {}, {}, "", ""},
      {"a b", {1, 12, 1, 9}, {1, 12, 1, 9}, "##a</w> ##b</w>", "##a</w> ##b</w>"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    EXPECT_THAT(Enc(t, c.text, false), ElementsAreArray(c.ids));
    const std::vector<int32_t> with = Enc(t, c.text, true);
    EXPECT_THAT(with, ElementsAreArray(c.ids_special));
    EXPECT_EQ(t.Decode(with, false), c.decoded);
    EXPECT_EQ(t.Decode(with, true), c.decoded_skip);
  }
}

// Digits (SmolLM2 / StarCoder layout: Digits then ByteLevel): one piece per
// numeric char, or one per run of them (expected ids from tokenizers 0.23.2).
TEST(HfTokenizerTest, DigitsMatchReference) {
  auto json = ReadFileToString(kTestdata + "tiny_digits_tokenizer.json");
  ASSERT_TRUE(json.ok()) << json.status();
  const std::string text = "the 2024 world \xD9\xA3\xD9\xA4\xD9\xA5 \xC2\xBDx\xC2\xB2 20242024<think>";
  auto individual = HfTokenizer::FromJson(*json, "digits.json");
  ASSERT_TRUE(individual.ok()) << individual.status();
  EXPECT_THAT(Enc(*individual, text, true),
              ElementsAreArray({116, 259, 32, 50, 48, 50, 52, 264, 32, 217, 163, 217, 164, 217, 165, 32,
                                194, 189, 120, 194, 178, 32, 50, 48, 50, 52, 50, 48, 50, 52, 273}));
  std::string grouped_json = *json;
  grouped_json.replace(grouped_json.find("\"individual_digits\": true"), 25, "\"individual_digits\": false");
  auto grouped = HfTokenizer::FromJson(grouped_json, "digits.json");
  ASSERT_TRUE(grouped.ok()) << grouped.status();
  EXPECT_THAT(Enc(*grouped, text, true),
              ElementsAreArray({116, 259, 32, 271, 264, 32, 217, 163, 217, 164, 217, 165, 32, 194, 189, 120, 194,
                                178, 32, 271, 271, 273}));
  EXPECT_EQ(grouped->Decode(*grouped->Encode(text, false), false), text);
}

TEST(HfTokenizerTest, InvalidUtf8IsReadLossily) {
  const HfTokenizer t = Load("tiny_bytelevel_tokenizer.json");
  // "\xFF" and a truncated 3-byte sequence each become one U+FFFD.
  EXPECT_EQ(Enc(t, "a\xFF" "b\xE2\x82", false), Enc(t, "a\xEF\xBF\xBD" "b\xEF\xBF\xBD", false));
  EXPECT_EQ(Utf8Lossy("a\xFF" "b\xE2\x82"), "a\xEF\xBF\xBD" "b\xEF\xBF\xBD");
  EXPECT_EQ(Utf8Lossy("\xF0\x9F\x98"), "\xEF\xBF\xBD");
  EXPECT_EQ(Utf8Lossy("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_TRUE(IsValidUtf8("h\xC3\xA9llo \xF0\x9F\x98\x80"));
  EXPECT_FALSE(IsValidUtf8("\xC0\xAF"));
  // Byte-level tokens (id == byte here) that do not form UTF-8 decode to U+FFFD.
  EXPECT_EQ(t.Decode({0xC3, 0xA9}, false), "\xC3\xA9");
  EXPECT_EQ(t.Decode({0xFF, 'a'}, false), "\xEF\xBF\xBD" "a");
}

TEST(HfTokenizerTest, ConcurrentEncodesAgree) {
  const HfTokenizer t = Load("tiny_bytelevel_tokenizer.json");
  auto text = ReadFileToString(kTestdata + "tokenizer_torture.txt");
  ASSERT_TRUE(text.ok()) << text.status();
  const std::vector<int32_t> want = Enc(t, *text, true);
  std::vector<std::vector<int32_t>> got(4);
  std::vector<std::thread> threads;
  for (auto& g : got) {
    threads.emplace_back([&t, &text, &g] {
      for (int rep = 0; rep < 5; ++rep) g = *t.Encode(*text, true);
    });
  }
  for (std::thread& th : threads) th.join();
  for (const auto& g : got) EXPECT_EQ(g, want);
}

// ---------------------------------------------------------------------------
// Malformed and unsupported files: errors name the file and the field.

std::string MinimalJson(const std::string& patch_pre_tokenizer = "null", const std::string& model_extra = "",
                        const std::string& merges = R"(["a b"])") {
  return R"({"version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
    "normalizer": null, "pre_tokenizer": )" + patch_pre_tokenizer + R"(,
    "post_processor": null, "decoder": null,
    "model": {"type": "BPE", "dropout": null, "unk_token": null, )" + model_extra + R"(
      "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": )" + merges + "}}";
}

absl::Status LoadError(const std::string& json) {
  auto t = HfTokenizer::FromJson(json, "/x/tokenizer.json");
  return t.ok() ? absl::OkStatus() : t.status();
}

TEST(HfTokenizerErrorsTest, MinimalFileLoads) {
  auto t = HfTokenizer::FromJson(MinimalJson(), "m.json");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_THAT(*t->Encode("ab", false), ElementsAre(2));
  auto arrays = HfTokenizer::FromJson(MinimalJson("null", "", R"([["a", "b"]])"), "m.json");
  ASSERT_TRUE(arrays.ok()) << arrays.status();
  EXPECT_THAT(*arrays->Encode("abab", false), ElementsAre(2, 2));
}

TEST(HfTokenizerErrorsTest, VocabHolesAreUnused) {
  std::string j = MinimalJson();
  j.replace(j.find(R"("vocab": {"a": 0, "b": 1, "ab": 2})"), 34, R"("vocab": {"a": 0, "b": 2, "ab": 3})");
  auto t = HfTokenizer::FromJson(j, "holes.json");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->vocab_size(), 4);
  EXPECT_EQ(t->token(1), "[PAD1]");
  EXPECT_EQ(t->token_type(1), TokenType::kUnused);
  EXPECT_EQ(t->Decode({0, 1, 2}, false), "a b");  // no decoder: tokens joined by spaces
}

TEST(HfTokenizerErrorsTest, BadJson) {
  ExpectError(LoadError("{\"model\": "), absl::StatusCode::kInvalidArgument, {"/x/tokenizer.json", "not valid JSON"});
  ExpectError(LoadError("[1, 2]"), absl::StatusCode::kInvalidArgument, {"/x/tokenizer.json", "expected a JSON object"});
}

TEST(HfTokenizerErrorsTest, MissingOrBadModelFields) {
  ExpectError(LoadError(R"({"model": {"type": "BPE", "vocab": {"a": 0}}})"), absl::StatusCode::kInvalidArgument,
              {"/x/tokenizer.json", "model.merges", "missing"});
  ExpectError(LoadError(R"({"model": {"type": "BPE", "merges": []}})"), absl::StatusCode::kInvalidArgument,
              {"/x/tokenizer.json", "model.vocab", "missing"});
  ExpectError(LoadError(R"({"added_tokens": []})"), absl::StatusCode::kInvalidArgument, {"model", "missing"});
  ExpectError(LoadError(R"({"model": {"type": "BPE", "vocab": {"a": "x"}, "merges": []}})"),
              absl::StatusCode::kInvalidArgument, {"model.vocab[\"a\"]", "integer"});
  ExpectError(LoadError(R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 0}, "merges": []}})"),
              absl::StatusCode::kInvalidArgument, {"model.vocab", "id 0 is used by both"});
}

TEST(HfTokenizerErrorsTest, MergeNamingUnknownToken) {
  ExpectError(LoadError(MinimalJson("null", "", R"(["a b", "ab zz"])")), absl::StatusCode::kInvalidArgument,
              {"/x/tokenizer.json", "model.merges[1]", "'zz' is not in model.vocab"});
  ExpectError(LoadError(MinimalJson("null", "", R"([["b", "a"]])")), absl::StatusCode::kInvalidArgument,
              {"model.merges[0]", "merged token 'ba' is not in model.vocab"});
  ExpectError(LoadError(MinimalJson("null", "", R"(["a b c"])")), absl::StatusCode::kInvalidArgument,
              {"model.merges[0]", "not two tokens"});
  ExpectError(LoadError(MinimalJson("null", "", R"([["a"]])")), absl::StatusCode::kInvalidArgument,
              {"model.merges[0]", "expected"});
}

TEST(HfTokenizerErrorsTest, UnsupportedConstructs) {
  ExpectError(LoadError(MinimalJson(R"({"type": "Whitespace"})")), absl::StatusCode::kInvalidArgument,
              {"/x/tokenizer.json: pre_tokenizer type 'Whitespace' is not supported"});
  ExpectError(LoadError(MinimalJson(R"({"type": "Sequence", "pretokenizers": [{"type": "Punctuation"}]})")),
              absl::StatusCode::kInvalidArgument,
              {"pre_tokenizer type 'Punctuation' is not supported", "pre_tokenizer.pretokenizers[0]"});
  ExpectError(LoadError(MinimalJson("null", R"("dropout": 0.1,)")), absl::StatusCode::kInvalidArgument,
              {"model.dropout", "must be null"});
  ExpectError(LoadError(R"({"model": {"type": "Unigram", "vocab": []}})"), absl::StatusCode::kInvalidArgument,
              {"model type 'Unigram' is not supported"});
  ExpectError(LoadError(R"({"truncation": {"max_length": 5}, "model": {}})"), absl::StatusCode::kInvalidArgument,
              {"truncation", "must be null"});
  std::string j = MinimalJson();
  j.replace(j.find("\"normalizer\": null"), 18, R"("normalizer": {"type": "BertNormalizer"})");
  ExpectError(LoadError(j), absl::StatusCode::kInvalidArgument, {"normalizer type 'BertNormalizer' is not supported"});
  j = MinimalJson();
  j.replace(j.find("\"decoder\": null"), 15, R"("decoder": {"type": "WordPiece"})");
  ExpectError(LoadError(j), absl::StatusCode::kInvalidArgument, {"decoder type 'WordPiece' is not supported"});
  j = MinimalJson();
  j.replace(j.find("\"post_processor\": null"), 22, R"("post_processor": {"type": "BertProcessing"})");
  ExpectError(LoadError(j), absl::StatusCode::kInvalidArgument,
              {"post_processor type 'BertProcessing' is not supported"});
  ExpectError(LoadError(MinimalJson(R"({"type": "Split", "pattern": {"Regex": "(a"}, "behavior": "Isolated",
                                        "invert": false})")),
              absl::StatusCode::kInvalidArgument, {"pre_tokenizer.pattern.Regex", "does not compile"});
  ExpectError(LoadError(MinimalJson(R"({"type": "Split", "pattern": {"Regex": "a"}, "behavior": "Sideways",
                                        "invert": false})")),
              absl::StatusCode::kInvalidArgument, {"pre_tokenizer.behavior", "unknown behavior 'Sideways'"});
  ExpectError(LoadError(MinimalJson("null", R"("continuing_subword_prefix": "##",)")),
              absl::StatusCode::kInvalidArgument, {"model.merges[0]", "lacks the continuing_subword_prefix"});
}

TEST(HfTokenizerErrorsTest, MissingFile) {
  auto t = HfTokenizer::FromFile("/nonexistent/tokenizer.json");
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(std::string(t.status().message()), ::testing::HasSubstr("/nonexistent/tokenizer.json"));
}

// ---------------------------------------------------------------------------
// Regex dialect and match limit.

std::vector<std::pair<size_t, size_t>> Matches(const std::string& pattern, const std::string& text) {
  auto re = Regex::Compile(pattern);
  EXPECT_TRUE(re.ok()) << re.status();
  std::vector<std::pair<size_t, size_t>> out;
  EXPECT_TRUE((*re)->FindAll(text, &out).ok());
  return out;
}

TEST(RegexTest, OnigurumaDialect) {
  // \s covers U+0085 (NEL) as in Oniguruma, and U+3000.
  EXPECT_THAT(Matches(R"(\s+)", "a\xC2\x85\xE3\x80\x80" "b"), ElementsAre(std::make_pair(1, 6)));
  EXPECT_THAT(Matches(R"([^\s\p{L}]+)", "a\xC2\x85" "1,b"), ElementsAre(std::make_pair(3, 5)));
  EXPECT_THAT(Matches(R"(\S+)", "ab\xC2\x85" "cd"), ElementsAre(std::make_pair(0, 2), std::make_pair(4, 6)));
  // Case-insensitive group and lookahead from the Llama 3 pattern.
  EXPECT_THAT(Matches(R"((?i:'s|'t)|\s+(?!\S)|\s+)", "IT'S   x"),
              ElementsAre(std::make_pair(2, 4), std::make_pair(4, 6), std::make_pair(6, 7)));
  // \p{L} / \p{N} are Unicode-wide.
  EXPECT_THAT(Matches(R"(\p{L}+|\p{N}{1,3})", "日本12345"),
              ElementsAre(std::make_pair(0, 6), std::make_pair(6, 9), std::make_pair(9, 11)));
  // Unicode 16 letters and digits PCRE2 10.42 lacks (CJK Ext. I U+2EE06,
  // Ext. H U+31350, Garay digit U+10D40) count as Oniguruma counts them;
  // U+180E is no space for Oniguruma.
  EXPECT_THAT(Matches(R"(\p{L}+)", "\xF0\xAE\xB8\x86\xF0\xB1\x8D\x90"), ElementsAre(std::make_pair(0, 8)));
  EXPECT_THAT(Matches(R"([^\p{L}]+)", "a\xF0\xAE\xB8\x86!"), ElementsAre(std::make_pair(5, 6)));
  EXPECT_THAT(Matches(R"(\p{N})", "\xF0\x90\xB5\x80"), ElementsAre(std::make_pair(0, 4)));
  EXPECT_TRUE(Matches(R"(\s)", "\xE1\xA0\x8E").empty());
  EXPECT_THAT(Matches(R"(\P{L}+)", "ab12"), ElementsAre(std::make_pair(2, 4)));
  EXPECT_FALSE(Regex::Compile(R"([\P{L}])").ok());
  // Empty matches advance by one character.
  EXPECT_EQ(Matches("x*", "\xC3\xA9").size(), 2u);
  EXPECT_FALSE(Regex::Compile(R"(\h)").ok());
  EXPECT_FALSE(Regex::Compile(R"([a-z&&[^b]])").ok());
}

TEST(RegexTest, CatastrophicPatternFailsInsteadOfHanging) {
  auto re = Regex::Compile("(a+)+$", 1'000'000);
  ASSERT_TRUE(re.ok()) << re.status();
  const std::string text = std::string(64, 'a') + "b";
  std::vector<std::pair<size_t, size_t>> out;
  const auto t0 = std::chrono::steady_clock::now();
  absl::Status s = (*re)->FindAll(text, &out);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ExpectError(s, absl::StatusCode::kResourceExhausted, {"(a+)+$", "match limit"});
  EXPECT_LT(secs, 5.0);
}

TEST(RegexTest, TokenizerWithHostilePatternReportsError) {
  const std::string json = MinimalJson(R"({"type": "Split", "pattern": {"Regex": "(a+)+$"},
                                           "behavior": "Isolated", "invert": false})");
  HfTokenizerOptions options;
  options.regex_match_limit = 1'000'000;
  auto t = HfTokenizer::FromJson(json, "hostile.json", options);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_THAT(*t->Encode("aab", false), ElementsAre(0, 2));  // harmless input: fine
  auto ids = t->Encode(std::string(64, 'a') + "b", false);
  ExpectError(ids.status(), absl::StatusCode::kResourceExhausted, {"match limit"});
}

// Split behaviors and invert (expected ids from tokenizers 0.23.2).
TEST(HfTokenizerTest, SplitBehaviors) {
  auto make = [](const std::string& behavior, bool invert) {
    const std::string pre = R"({"type": "Split", "pattern": {"String": "-"}, "behavior": ")" + behavior +
                            R"(", "invert": )" + (invert ? "true" : "false") + "}";
    std::string j = MinimalJson(pre, "", R"(["a -", "- a"])");
    j.replace(j.find(R"("vocab": {"a": 0, "b": 1, "ab": 2})"), 34,
              R"("vocab": {"a": 0, "-": 1, "a-": 2, "-a": 3})");
    auto t = HfTokenizer::FromJson(j, "split.json");
    EXPECT_TRUE(t.ok()) << t.status();
    return *std::move(t);
  };
  // "a-a--a": the merges "a -" and "- a" apply within each split only.
  EXPECT_THAT(*make("Isolated", false).Encode("a-a--a", false), ElementsAre(0, 1, 0, 1, 1, 0));
  EXPECT_THAT(*make("Removed", false).Encode("a-a--a", false), ElementsAre(0, 0, 0));
  EXPECT_THAT(*make("MergedWithPrevious", false).Encode("a-a--a", false), ElementsAre(2, 2, 1, 0));
  EXPECT_THAT(*make("MergedWithNext", false).Encode("a-a--a", false), ElementsAre(0, 3, 1, 3));
  EXPECT_THAT(*make("Contiguous", false).Encode("a-a--a", false), ElementsAre(0, 1, 0, 1, 1, 0));
  // Inverted: the letters are the delimiters.
  EXPECT_THAT(*make("Removed", true).Encode("a-a--a", false), ElementsAre(1, 1, 1));
  EXPECT_THAT(*make("MergedWithPrevious", true).Encode("a-a--a", false), ElementsAre(0, 3, 1, 3));
  EXPECT_THAT(*make("MergedWithNext", true).Encode("a-a--a", false), ElementsAre(2, 2, 1, 0));
}

// A pattern that matches empty strings ("x*"): empty matches follow the onig
// crate's iteration, which decides how MergedWith* group the pieces
// (expected ids from tokenizers 0.23.2).
TEST(HfTokenizerTest, EmptyRegexMatches) {
  auto make = [](const std::string& behavior, bool invert) {
    const std::string pre = R"({"type": "Split", "pattern": {"Regex": "x*"}, "behavior": ")" + behavior +
                            R"(", "invert": )" + (invert ? "true" : "false") + "}";
    std::string j = MinimalJson(pre, "", R"(["a x", "x x", "xx b", "x b", "a b", "x a"])");
    j.replace(j.find(R"("vocab": {"a": 0, "b": 1, "ab": 2})"), 34,
              R"("vocab": {"a": 0, "x": 1, "b": 2, "ax": 3, "xx": 4, "xxb": 5, "xb": 6, "ab": 7, "xa": 8})");
    auto t = HfTokenizer::FromJson(j, "empty.json");
    EXPECT_TRUE(t.ok()) << t.status();
    return *std::move(t);
  };
  const std::string text = "axxbab\nxaxbx\nab";
  EXPECT_THAT(*make("MergedWithNext", false).Encode(text, false), ElementsAre(0, 5, 0, 2, 8, 6, 1, 0, 2));
  EXPECT_THAT(*make("MergedWithNext", true).Encode(text, false), ElementsAre(3, 1, 2, 0, 2, 1, 3, 2, 1, 0, 2));
  EXPECT_THAT(*make("Removed", false).Encode(text, false), ElementsAre(0, 2, 0, 2, 0, 2, 0, 2));
  EXPECT_THAT(*make("Removed", true).Encode(text, false), ElementsAre(4, 1, 1, 1));
  EXPECT_THAT(*make("Isolated", false).Encode(text, false), ElementsAre(0, 4, 2, 0, 2, 1, 0, 1, 2, 1, 0, 2));
}

}  // namespace
}  // namespace qatk::tokenizer
