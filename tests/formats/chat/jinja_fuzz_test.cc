// Mutated templates and contexts must parse and render to a status, within
// the limits, never crash or hang (also run under ASan/UBSan, see
// scripts/test.sh).
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "formats/chat/jinja.h"
#include "gtest/gtest.h"

namespace qatk::chat {
namespace {

using Json = nlohmann::ordered_json;

std::vector<std::string> Seeds() {
  std::vector<std::string> seeds;
  const std::string dir = std::string(QATK_SOURCE_DIR) + "/tests/formats/testdata/chat/";
  std::ifstream jinja(dir + "tools_template.jinja");
  std::stringstream ss;
  ss << jinja.rdbuf();
  seeds.push_back(ss.str());
  std::ifstream snippets(dir + "snippets.jsonl");
  std::string line;
  while (std::getline(snippets, line)) {
    const Json j = Json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.contains("template"))
      seeds.push_back(j["template"].get<std::string>());
  }
  return seeds;
}

const Json& Context() {
  static const Json ctx = Json::parse(R"({
    "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u é"},
                 {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]},
                 {"role": "tool", "content": "r"}],
    "add_generation_prompt": true, "bos_token": "<s>", "date_string": "d",
    "tools": [{"type": "function", "function": {"name": "f"}}]})");
  return ctx;
}

TEST(JinjaFuzz, MutatedTemplatesNeverCrash) {
  const std::vector<std::string> seeds = Seeds();
  ASSERT_GT(seeds.size(), 100u);
  static const char* kPieces[] = {"{%",     "%}",
                                  "{{",     "}}",
                                  "{#",     "#}",
                                  "-",      "(",
                                  ")",      "[",
                                  "]",      "{",
                                  "}",      "'",
                                  "\"",     "\\",
                                  "|",      ".",
                                  ",",      ":",
                                  "=",      " if ",
                                  " else ", " for ",
                                  " in ",   " not ",
                                  " is ",   "endif",
                                  "endfor", "loop",
                                  "ns",     "\n",
                                  "\xff",   "\xe2\x80\xa8",
                                  "0",      "-1"};
  JinjaLimits limits;
  limits.max_steps = 20000;
  limits.max_string_bytes = 1 << 20;
  std::mt19937 rng(1234);
  int parsed = 0, rendered = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::string t = seeds[rng() % seeds.size()];
    const int edits = 1 + rng() % 4;
    for (int e = 0; e < edits; ++e) {
      const size_t pos = t.empty() ? 0 : rng() % (t.size() + 1);
      switch (rng() % 4) {
        case 0:
          t.insert(pos, kPieces[rng() % (sizeof(kPieces) / sizeof(kPieces[0]))]);
          break;
        case 1:
          if (!t.empty()) t.erase(std::min(pos, t.size() - 1), 1 + rng() % 4);
          break;
        case 2:
          if (!t.empty()) t[std::min(pos, t.size() - 1)] = static_cast<char>(rng());
          break;
        default: {
          const std::string& other = seeds[rng() % seeds.size()];
          if (!other.empty()) t.insert(pos, other.substr(rng() % other.size(), 1 + rng() % 20));
        }
      }
    }
    absl::StatusOr<JinjaTemplate> tmpl = JinjaTemplate::Parse(t, limits);
    if (!tmpl.ok()) continue;
    ++parsed;
    if (tmpl->Render(Context()).ok()) ++rendered;
  }
  std::printf("chat template fuzz: 20000 executions (%d parsed, %d rendered)\n", parsed, rendered);
  EXPECT_GT(parsed, 100);
  EXPECT_GT(rendered, 10);
}

}  // namespace
}  // namespace qatk::chat
