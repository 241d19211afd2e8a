// qatk_render_chat: renders conversations with a chat template, one JSON
// line per conversation (the rendered string, or null when the template
// fails), for byte comparison with tests/interop/chat_ref.mjs.
//
//   qatk_render_chat (--config tokenizer_config.json |
//                     --template chat_template.jinja [--tokens tokenizer_config.json])
//                    conversations.jsonl
//   qatk_render_chat --snippets snippets.jsonl
//
// A snippet line is {"name": ..., "template": ..., "context": {...}}: the
// template rendered on its own with that context (engine-level checks).
//
// Each input line: {"name": ..., "messages": [...], "add_generation_prompt":
// bool, "extra": {...}}; errors go to stderr with the conversation name.
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "formats/chat/chat_template.h"
#include "formats/chat/jinja.h"
#include "formats/chat/jinja_value.h"
#include "nlohmann/json.hpp"

namespace {

using Json = nlohmann::ordered_json;

int Usage() {
  std::cerr << "usage: qatk_render_chat (--config CONFIG | --template FILE [--tokens CONFIG]) "
               "conversations.jsonl\n";
  return 2;
}

int RenderSnippets(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    std::cerr << "cannot open " << path << "\n";
    return 1;
  }
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const Json snippet = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (snippet.is_discarded() || !snippet.contains("template") ||
        !snippet["template"].is_string()) {
      std::cerr << "bad snippet line: " << line << "\n";
      return 1;
    }
    absl::StatusOr<std::string> out;
    absl::StatusOr<qatk::chat::JinjaTemplate> t =
        qatk::chat::JinjaTemplate::Parse(snippet["template"].get<std::string>());
    if (t.ok()) {
      out = t->Render(snippet.value("context", Json::object()));
    } else {
      out = t.status();
    }
    if (out.ok()) {
      std::cout << qatk::chat::jinja::JsonQuote(*out) << "\n";
    } else {
      std::cerr << snippet.value("name", "?") << ": " << out.status() << "\n";
      std::cout << "null\n";
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config, jinja_file, tokens, input;
  if (argc == 3 && std::string(argv[1]) == "--snippets") return RenderSnippets(argv[2]);
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if ((arg == "--config" || arg == "--template" || arg == "--tokens") && i + 1 < argc) {
      (arg == "--config" ? config : arg == "--template" ? jinja_file : tokens) = argv[++i];
    } else if (input.empty() && arg.rfind("--", 0) != 0) {
      input = arg;
    } else {
      return Usage();
    }
  }
  if (input.empty() || config.empty() == jinja_file.empty()) return Usage();
  absl::StatusOr<qatk::chat::ChatTemplate> tmpl =
      config.empty() ? qatk::chat::ChatTemplate::FromJinjaFile(jinja_file, tokens)
                     : qatk::chat::ChatTemplate::FromTokenizerConfig(config);
  if (!tmpl.ok()) {
    std::cerr << tmpl.status() << "\n";
    return 1;
  }
  std::ifstream in(input);
  if (!in) {
    std::cerr << "cannot open " << input << "\n";
    return 1;
  }
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const Json conv = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (conv.is_discarded() || !conv.is_object() || !conv.contains("messages")) {
      std::cerr << "bad conversation line: " << line << "\n";
      return 1;
    }
    std::vector<qatk::chat::Message> messages;
    for (const Json& m : conv["messages"]) {
      absl::StatusOr<qatk::chat::Message> msg = qatk::chat::Message::FromJson(m);
      if (!msg.ok()) {
        std::cerr << msg.status() << "\n";
        return 1;
      }
      messages.push_back(*std::move(msg));
    }
    const absl::StatusOr<std::string> out = tmpl->Render(
        messages, conv.value("add_generation_prompt", false), conv.value("extra", Json::object()));
    if (out.ok()) {
      std::cout << qatk::chat::jinja::JsonQuote(*out) << "\n";
    } else {
      std::cerr << conv.value("name", "?") << ": " << out.status() << "\n";
      std::cout << "null\n";
    }
  }
  return 0;
}
