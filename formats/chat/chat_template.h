// Chat templates: the one place that turns a conversation into the prompt
// text a model was trained on, from the chat_template of a Hugging Face
// tokenizer_config.json (or a chat_template.jinja file).
//
// Rendering matches transformers.js apply_chat_template byte for byte: the
// template runs on formats/chat/jinja.h with the context
//   messages, add_generation_prompt, tools = null, documents = null,
//   the special tokens of the config (bos_token, eos_token, unk_token,
//   sep_token, pad_token, cls_token, mask_token; those set and non-empty),
//   then the caller's extra variables (which override the above).
#ifndef QATK_FORMATS_CHAT_CHAT_TEMPLATE_H_
#define QATK_FORMATS_CHAT_CHAT_TEMPLATE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "formats/chat/jinja.h"
#include "nlohmann/json.hpp"

namespace qatk::chat {

struct Message {
  std::string role;
  // Usually a string; a list of parts ({"type": "text", "text": ...}) for
  // multimodal templates; null for a tool-call-only turn.
  nlohmann::ordered_json content = "";
  // Further keys of the message object (tool_calls, reasoning_content,
  // name, ...), placed after role and content.
  nlohmann::ordered_json fields = nlohmann::ordered_json::object();

  nlohmann::ordered_json ToJson() const;
  // role and content taken out of a message object; the rest into fields.
  // A missing content becomes null (JavaScript would see undefined; the
  // templates treat both alike). Use ChatTemplate::RenderJson to pass
  // messages exactly as given.
  static absl::StatusOr<Message> FromJson(const nlohmann::ordered_json& j);
};

class ChatTemplate {
 public:
  // Reads chat_template, and the special tokens, from a
  // tokenizer_config.json. chat_template may be a string or a list of
  // {"name", "template"} (the one named "default" is used). Without a
  // chat_template the chat_template.jinja next to the config is used.
  static absl::StatusOr<ChatTemplate> FromTokenizerConfig(const std::string& path,
                                                          const JinjaLimits& limits = {});
  // A chat_template.jinja file; special tokens from `special_tokens_config`
  // (a tokenizer_config.json) when not empty.
  static absl::StatusOr<ChatTemplate> FromJinjaFile(const std::string& path,
                                                    const std::string& special_tokens_config = "",
                                                    const JinjaLimits& limits = {});
  // Template source plus the config object its special tokens come from.
  static absl::StatusOr<ChatTemplate> FromSource(
      const std::string& source,
      const nlohmann::ordered_json& config = nlohmann::ordered_json::object(),
      const JinjaLimits& limits = {});

  absl::StatusOr<std::string> Render(
      const std::vector<Message>& messages, bool add_generation_prompt,
      const nlohmann::ordered_json& extra = nlohmann::ordered_json::object()) const;
  // The same with the messages as a JSON array (kept as given).
  absl::StatusOr<std::string> RenderJson(
      const nlohmann::ordered_json& messages, bool add_generation_prompt,
      const nlohmann::ordered_json& extra = nlohmann::ordered_json::object()) const;

  const std::string& source() const { return source_; }
  // {"bos_token": ..., "eos_token": ...}: the special tokens passed in.
  const nlohmann::ordered_json& special_tokens() const { return special_tokens_; }

 private:
  std::string source_;
  JinjaTemplate template_;
  nlohmann::ordered_json special_tokens_ = nlohmann::ordered_json::object();
};

}  // namespace qatk::chat

#endif  // QATK_FORMATS_CHAT_CHAT_TEMPLATE_H_
