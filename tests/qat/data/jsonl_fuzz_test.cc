// JSONL lines of `qat data --jsonl`: mutated and random lines never crash,
// and every accepted line gives one mask byte per id and ends with EOS.
#include <gtest/gtest.h>

#include <random>

#include "qat/data/jsonl.h"
#include "tests/qat/data/byte_encoder.h"

namespace qatk::data {
namespace {

const char* const kSeeds[] = {
    R"({"text": "hello world"})",
    R"({"prompt": "Q: 2+2?\nA:", "completion": " 4"})",
    R"({"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]})",
    R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}, {"role": "assistant", "content": "d\u00e9"}]})",
};

void Check(const std::string& line, const TextEncoder& enc, const JsonlOptions& o) {
  absl::StatusOr<TokenizedDoc> d = TokenizeJsonlLine(line, enc, o);
  if (!d.ok()) {
    EXPECT_FALSE(d.status().message().empty());
    return;
  }
  ASSERT_EQ(d->ids.size(), d->mask.size()) << line;
  ASSERT_FALSE(d->ids.empty()) << line;
  EXPECT_EQ(d->ids.back(), ByteEncoder::kEos) << line;
  for (uint8_t m : d->mask) ASSERT_LE(m, 1);
  if (o.max_tokens > 0 && !line.empty() && line.find("\"text\"") == std::string::npos) {
    EXPECT_LE(static_cast<int64_t>(d->ids.size()), o.max_tokens) << line;
  }
}

TEST(JsonlFuzzTest, MutatedLinesNeverCrash) {
  ByteEncoder enc;
  auto tmpl = chat::ChatTemplate::FromSource(
      "{% for m in messages %}{% if m.role == 'tool' %}{{ raise_exception('no tools') }}{% endif %}"
      "<{{ m.role }}>{{ m.content | trim }}</>{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}");
  ASSERT_TRUE(tmpl.ok()) << tmpl.status();
  JsonlOptions opts[3];
  opts[0].chat_template = &*tmpl;
  opts[1].chat_template = &*tmpl;
  opts[1].loss_on = LossOn::kAll;
  opts[1].max_tokens = 64;
  opts[2].no_template_reason = "none";
  std::mt19937 rng(20261208);
  const std::string alphabet = "{}[]\":,\\ntextpromptcompletionmessagesroleuserassistanttoolcontent \x80\xff\x01";
  for (int iter = 0; iter < 4000; ++iter) {
    std::string s = kSeeds[iter % 4];
    const int edits = 1 + rng() % 4;
    for (int e = 0; e < edits && !s.empty(); ++e) {
      const size_t at = rng() % s.size();
      switch (rng() % 4) {
        case 0: s.erase(at, 1 + rng() % 3); break;
        case 1: s.insert(at, 1, alphabet[rng() % alphabet.size()]); break;
        case 2: s[at] = static_cast<char>(rng()); break;
        default: s = s.substr(0, at); break;
      }
    }
    Check(s, enc, opts[iter % 3]);
  }
  for (const char* line : {"", "null", "{}", "[]", "{\"messages\": {}}", "{\"messages\": [null]}",
                           "{\"messages\": [{\"role\": 1, \"content\": 2}]}", "{\"text\": null}",
                           "{\"prompt\": 1, \"completion\": []}", "\"text\""}) {
    Check(line, enc, opts[0]);
  }
}

}  // namespace
}  // namespace qatk::data
