// qat template: renders conversations with a model's chat template
// (formats/chat), one {"text": ...} line per input line.
//
// An input line is a JSON object with "messages" (the conversation, as
// given to the template) and optionally "add_generation_prompt" (overrides
// the flag for that line), "tools" and "documents" (passed to the template)
// and "chat_template_kwargs" (further template variables, e.g.
// {"enable_thinking": false}); other keys are ignored. Empty lines are
// skipped. Lines are rendered and printed one at a time; the first bad
// line stops the command with an error naming the file and line.
#include <fstream>
#include <iostream>
#include <string>

#include "absl/strings/str_cat.h"
#include "formats/chat/chat_template.h"
#include "formats/chat/jinja_value.h"
#include "formats/util/cli_flags.h"
#include "formats/util/file_io.h"
#include "formats/util/status_macros.h"
#include "qat/cli/commands.h"

namespace qatk::cli {
namespace {

using Json = nlohmann::ordered_json;

struct TemplateArgs {
  std::string model, file;
  bool add_generation_prompt = false;

  template <typename Visitor>
  void ForEach(Visitor&& v) {
    v(model, "model", "Hugging Face model folder (tokenizer_config.json and/or chat_template.jinja), "
                      "or a tokenizer_config.json", kRequired);
    v(file, "file", "conversations, one JSON object with \"messages\" per line", kRequired);
    v(add_generation_prompt, "add-generation-prompt",
      "end with the assistant's turn header (a line's own \"add_generation_prompt\" wins)");
  }
};

// The template of a folder or a tokenizer_config.json: chat_template from
// tokenizer_config.json, else the folder's chat_template.jinja (special
// tokens from tokenizer_config.json when there is one).
absl::StatusOr<chat::ChatTemplate> LoadTemplate(const std::string& model) {
  if (!IsDirectory(model)) return chat::ChatTemplate::FromTokenizerConfig(model);
  const std::string config = model + "/tokenizer_config.json", jinja = model + "/chat_template.jinja";
  if (PathExists(config)) return chat::ChatTemplate::FromTokenizerConfig(config);
  if (PathExists(jinja)) return chat::ChatTemplate::FromJinjaFile(jinja);
  return absl::InvalidArgumentError(
      absl::StrCat(model, " has neither tokenizer_config.json nor chat_template.jinja"));
}

// The rendered text of one input line.
absl::StatusOr<std::string> RenderLine(const chat::ChatTemplate& t, const std::string& line, bool add_gen) {
  const Json conv = Json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (conv.is_discarded()) return absl::InvalidArgumentError("not valid JSON");
  if (!conv.is_object()) return absl::InvalidArgumentError("not a JSON object");
  auto messages = conv.find("messages");
  if (messages == conv.end()) return absl::InvalidArgumentError("no \"messages\"");
  if (!messages->is_array()) return absl::InvalidArgumentError("\"messages\" is not an array");
  for (size_t i = 0; i < messages->size(); ++i) {
    const Json& m = (*messages)[i];
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
      return absl::InvalidArgumentError(absl::StrCat("messages[", i, "] needs a string \"role\""));
    }
  }
  if (auto a = conv.find("add_generation_prompt"); a != conv.end()) {
    if (!a->is_boolean()) return absl::InvalidArgumentError("\"add_generation_prompt\" is not true/false");
    add_gen = a->get<bool>();
  }
  Json extra = Json::object();
  for (const char* key : {"tools", "documents"}) {
    if (auto v = conv.find(key); v != conv.end()) extra[key] = *v;
  }
  if (auto kw = conv.find("chat_template_kwargs"); kw != conv.end()) {
    if (!kw->is_object()) return absl::InvalidArgumentError("\"chat_template_kwargs\" is not an object");
    for (const auto& [k, v] : kw->items()) extra[k] = v;
  }
  absl::StatusOr<std::string> text = t.RenderJson(*messages, add_gen, extra);
  if (!text.ok()) return absl::InvalidArgumentError(absl::StrCat("the template failed: ", text.status().message()));
  return text;
}

}  // namespace

absl::Status TemplateCommand(int argc, char** argv) {
  cxxopts::Options opts("qat template", "Render conversations with a model's chat template");
  TemplateArgs a;
  RETURN_IF_ERROR(ParseArgs(a, opts, argc, argv, "template").status());
  absl::StatusOr<chat::ChatTemplate> t = LoadTemplate(a.model);
  if (!t.ok()) return absl::Status(t.status().code(), absl::StrCat("--model ", a.model, ": ", t.status().message()));
  std::ifstream in(a.file, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", a.file));
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    absl::StatusOr<std::string> text = RenderLine(*t, line, a.add_generation_prompt);
    if (!text.ok()) return absl::InvalidArgumentError(absl::StrCat(a.file, ":", n, ": ", text.status().message()));
    std::cout << "{\"text\":" << chat::jinja::JsonQuote(*text) << "}\n";
  }
  if (in.bad()) return absl::DataLossError(absl::StrCat("reading ", a.file, " failed"));
  std::cout.flush();
  return absl::OkStatus();
}

}  // namespace qatk::cli
