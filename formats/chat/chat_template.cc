#include "formats/chat/chat_template.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace qatk::chat {
namespace {

using Json = nlohmann::ordered_json;

absl::StatusOr<std::string> ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("cannot read ", path));
  return ss.str();
}

absl::StatusOr<Json> ReadJson(const std::string& path) {
  absl::StatusOr<std::string> text = ReadText(path);
  if (!text.ok()) return text.status();
  Json j = Json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(path, ": not valid JSON"));
  if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat(path, ": not a JSON object"));
  return j;
}

// transformers.js getToken(): a string, or an AddedToken object's content;
// unset and empty tokens are left out.
Json SpecialTokens(const Json& config) {
  Json out = Json::object();
  for (const char* key : {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token",
                          "cls_token", "mask_token"}) {
    auto it = config.find(key);
    if (it == config.end()) continue;
    if (it->is_string() && !it->get<std::string>().empty()) {
      out[key] = *it;
    } else if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
      out[key] = (*it)["content"];
    }
  }
  return out;
}

}  // namespace

Json Message::ToJson() const {
  Json j = Json::object();
  j["role"] = role;
  j["content"] = content;
  for (const auto& [key, value] : fields.items()) {
    if (key != "role" && key != "content") j[key] = value;
  }
  return j;
}

absl::StatusOr<Message> Message::FromJson(const Json& j) {
  if (!j.is_object()) return absl::InvalidArgumentError("a message must be a JSON object");
  Message m;
  auto role = j.find("role");
  if (role == j.end() || !role->is_string())
    return absl::InvalidArgumentError("a message needs a string role");
  m.role = role->get<std::string>();
  auto content = j.find("content");
  m.content = content == j.end() ? Json() : *content;
  for (const auto& [key, value] : j.items()) {
    if (key != "role" && key != "content") m.fields[key] = value;
  }
  return m;
}

absl::StatusOr<ChatTemplate> ChatTemplate::FromSource(const std::string& source, const Json& config,
                                                      const JinjaLimits& limits) {
  absl::StatusOr<JinjaTemplate> parsed = JinjaTemplate::Parse(source, limits);
  if (!parsed.ok()) {
    return absl::Status(parsed.status().code(),
                        absl::StrCat("chat template: ", parsed.status().message()));
  }
  ChatTemplate t;
  t.source_ = source;
  t.template_ = *std::move(parsed);
  t.special_tokens_ = SpecialTokens(config);
  return t;
}

absl::StatusOr<ChatTemplate> ChatTemplate::FromTokenizerConfig(const std::string& path,
                                                               const JinjaLimits& limits) {
  absl::StatusOr<Json> config = ReadJson(path);
  if (!config.ok()) return config.status();
  auto it = config->find("chat_template");
  if (it == config->end() || it->is_null()) {
    const std::string jinja =
        (std::filesystem::path(path).parent_path() / "chat_template.jinja").string();
    if (std::filesystem::exists(jinja)) return FromJinjaFile(jinja, path, limits);
    return absl::NotFoundError(absl::StrCat(path, ": no chat_template"));
  }
  if (it->is_string()) return FromSource(it->get<std::string>(), *config, limits);
  if (it->is_array()) {
    // transformers.js keeps the last entry of a name; "default" is used when
    // no template is asked for by name.
    const Json* chosen = nullptr;
    for (const Json& entry : *it) {
      if (entry.is_object() && entry.value("name", "") == "default" && entry.contains("template") &&
          entry["template"].is_string()) {
        chosen = &entry["template"];
      }
    }
    if (chosen == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": chat_template list has no \"default\" template"));
    }
    return FromSource(chosen->get<std::string>(), *config, limits);
  }
  return absl::InvalidArgumentError(
      absl::StrCat(path, ": chat_template must be a string or a list"));
}

absl::StatusOr<ChatTemplate> ChatTemplate::FromJinjaFile(const std::string& path,
                                                         const std::string& special_tokens_config,
                                                         const JinjaLimits& limits) {
  absl::StatusOr<std::string> source = ReadText(path);
  if (!source.ok()) return source.status();
  Json config = Json::object();
  if (!special_tokens_config.empty()) {
    absl::StatusOr<Json> c = ReadJson(special_tokens_config);
    if (!c.ok()) return c.status();
    config = *std::move(c);
  }
  return FromSource(*source, config, limits);
}

absl::StatusOr<std::string> ChatTemplate::RenderJson(const Json& messages,
                                                     bool add_generation_prompt,
                                                     const Json& extra) const {
  if (!messages.is_array()) return absl::InvalidArgumentError("messages must be a JSON array");
  if (!extra.is_object()) return absl::InvalidArgumentError("extra context must be a JSON object");
  Json context = Json::object();
  context["messages"] = messages;
  context["add_generation_prompt"] = add_generation_prompt;
  context["tools"] = nullptr;
  context["documents"] = nullptr;
  for (const auto& [key, value] : special_tokens_.items()) context[key] = value;
  for (const auto& [key, value] : extra.items()) context[key] = value;
  return template_.Render(context);
}

absl::StatusOr<std::string> ChatTemplate::Render(const std::vector<Message>& messages,
                                                 bool add_generation_prompt,
                                                 const Json& extra) const {
  Json array = Json::array();
  for (const Message& m : messages) array.push_back(m.ToJson());
  return RenderJson(array, add_generation_prompt, extra);
}

}  // namespace qatk::chat
