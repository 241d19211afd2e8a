#include "inference/cli/chat_prompt.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "formats/chat/chat_template.h"
#include "formats/gguf/gguf.h"
#include "formats/util/status_macros.h"

namespace qatk::cli {

absl::StatusOr<std::string> RenderChatPrompt(const std::string& path, const inference::Vocab& vocab,
                                             const std::string& system, const std::string& user) {
  absl::StatusOr<gguf::GgufFile> f = gguf::GgufFile::Open(path);
  const gguf::Value* source = f.ok() ? f->Find("tokenizer.chat_template") : nullptr;
  if (source == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--chat: ", path, " has no tokenizer.chat_template", f.ok() ? "" : " (not a GGUF file)",
        "; without --chat the prompt is continued as plain text"));
  }
  absl::StatusOr<std::string> text = source->AsString();
  if (!text.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": tokenizer.chat_template is not a string"));
  nlohmann::ordered_json config = nlohmann::ordered_json::object();
  const int n = static_cast<int>(vocab.tokens.size());
  if (vocab.bos >= 0 && vocab.bos < n) config["bos_token"] = vocab.tokens[vocab.bos];
  if (vocab.eos >= 0 && vocab.eos < n) config["eos_token"] = vocab.tokens[vocab.eos];
  absl::StatusOr<chat::ChatTemplate> t = chat::ChatTemplate::FromSource(*text, config);
  if (!t.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": tokenizer.chat_template: ", t.status().message()));
  }
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  if (!system.empty()) messages.push_back({{"role", "system"}, {"content", system}});
  messages.push_back({{"role", "user"}, {"content", user}});
  absl::StatusOr<std::string> out = t->RenderJson(messages, /*add_generation_prompt=*/true);
  if (!out.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": rendering tokenizer.chat_template failed: ",
                                                   out.status().message()));
  }
  return out;
}


}  // namespace qatk::cli
