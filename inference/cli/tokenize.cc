// qat-run tokenize: the token ids of a text file under the tokenizer of a
// GGUF or mobile file, as llama.cpp tokenizes it (tokenize(text,
// add_special, parse_special = true)).
#include <cstdio>
#include <iostream>

#include "formats/tokenizer/gguf_tokenizer.h"
#include "formats/util/cli_flags.h"
#include "formats/util/file_io.h"
#include "formats/util/status_macros.h"
#include "inference/cli/commands.h"
#include "inference/model_loader.h"

namespace qatk::cli {

// The flags of qat-run tokenize, each declared once.
struct RunTokenizeArgs {
  std::string model, file;
  bool add_special = false;
  bool json = false;

  template <typename Visitor>
  void ForEach(Visitor&& v) {
    v(model, "model", "FILE.gguf or FILE.qmob", kRequired);
    v(file, "file", "text file (UTF-8)", kRequired);
    v(add_special, "add-special", "add BOS / EOS as the file's add_bos_token / add_eos_token ask");
    v(json, "json", "one JSON object on stdout: {\"ids\": [...]}");
  }
};

void PrintTokenIds(const std::vector<int32_t>& ids, bool json) {
  if (json) {
    std::cout << nlohmann::json{{"ids", ids}}.dump() << std::endl;
    return;
  }
  std::string line;
  for (size_t i = 0; i < ids.size(); ++i) absl::StrAppend(&line, i ? " " : "", ids[i]);
  std::cout << line << std::endl;
  std::fprintf(stderr, "%zu tokens\n", ids.size());
}

absl::Status TokenizeCommand(int argc, char** argv) {
  cxxopts::Options opts("qat-run tokenize", "Token ids of a text file under a model file's tokenizer");
  RunTokenizeArgs a;
  RETURN_IF_ERROR(ParseArgs(a, opts, argc, argv, "tokenize", "qat-run").status());
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(a.file));
  ASSIGN_OR_RETURN(tokenizer::Vocab vocab, inference::LoadVocab(a.model));
  ASSIGN_OR_RETURN(tokenizer::GgufTokenizer tok,
                   tokenizer::GgufTokenizer::Create(std::move(vocab), a.model));
  ASSIGN_OR_RETURN(std::vector<int32_t> ids, tok.Encode(text, a.add_special, /*parse_special=*/true));
  PrintTokenIds(ids, a.json);
  return absl::OkStatus();
}

}  // namespace qatk::cli
