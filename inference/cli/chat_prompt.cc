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

std::vector<int32_t> EncodeWithSpecialTokens(const inference::Tokenizer& tok, const inference::Vocab& vocab,
                                             const std::string& text) {
  std::vector<std::pair<std::string, int32_t>> specials;
  for (size_t i = 0; i < vocab.tokens.size(); ++i) {
    const int32_t type = i < vocab.types.size() ? vocab.types[i] : inference::kTokNormal;
    if ((type == inference::kTokControl || type == inference::kTokUserDefined ||
         type == inference::kTokUnknown) && !vocab.tokens[i].empty()) {
      specials.emplace_back(vocab.tokens[i], static_cast<int32_t>(i));
    }
  }
  std::stable_sort(specials.begin(), specials.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  std::vector<int32_t> ids;
  std::string plain;
  auto flush = [&] {
    if (plain.empty()) return;
    const std::vector<int32_t> p = tok.Encode(plain, /*add_bos=*/false);
    ids.insert(ids.end(), p.begin(), p.end());
    plain.clear();
  };
  for (size_t i = 0; i < text.size();) {
    const std::pair<std::string, int32_t>* hit = nullptr;
    for (const auto& s : specials) {
      if (text.compare(i, s.first.size(), s.first) == 0) {
        hit = &s;
        break;
      }
    }
    if (hit == nullptr) {
      plain += text[i++];
      continue;
    }
    flush();
    ids.push_back(hit->second);
    i += hit->first.size();
  }
  flush();
  if (vocab.add_bos && (ids.empty() || ids.front() != vocab.bos)) ids.insert(ids.begin(), vocab.bos);
  return ids;
}

}  // namespace qatk::cli
