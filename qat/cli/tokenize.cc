// qat tokenize: the token ids of a text file under a model's tokenizer: a
// Hugging Face folder or tokenizer.json (Hugging Face tokenizers' encode), a
// SentencePiece tokenizer.model, or a GGUF / mobile file (as qat-run
// tokenize and llama.cpp tokenize it).
#include <sys/stat.h>

#include <cstdio>
#include <iostream>

#include "absl/strings/match.h"
#include "formats/tokenizer/gguf_tokenizer.h"
#include "formats/util/cli_flags.h"
#include "formats/util/file_io.h"
#include "formats/util/status_macros.h"
#include "inference/model_loader.h"
#include "qat/cli/commands.h"
#include "qat/data/tokenizer.h"
#ifdef QATK_HAVE_HF_TOKENIZER
#include "formats/tokenizer/hf_tokenizer.h"
#endif

namespace qatk::cli {
namespace {

// The flags of qat tokenize, each declared once.
struct TokenizeArgs {
  std::string model, file;
  bool add_special = false;
  bool json = false;

  template <typename Visitor>
  void ForEach(Visitor&& v) {
    v(model, "model", "HF folder, tokenizer.json, tokenizer.model, FILE.gguf or FILE.qmob", kRequired);
    v(file, "file", "text file (UTF-8)", kRequired);
    v(add_special, "add-special", "add the special tokens the tokenizer adds (BOS / EOS)");
    v(json, "json", "one JSON object on stdout: {\"ids\": [...]}");
  }
};

bool IsDir(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

absl::StatusOr<std::vector<int32_t>> Tokenize(const TokenizeArgs& a, const std::string& text) {
  std::string path = a.model;
  if (IsDir(path)) {
    if (PathExists(path + "/tokenizer.json")) {
      path += "/tokenizer.json";
    } else if (PathExists(path + "/tokenizer.model")) {
      path += "/tokenizer.model";
    } else {
      return absl::NotFoundError(absl::StrCat(a.model, ": no tokenizer.json or tokenizer.model"));
    }
  }
  if (absl::EndsWith(path, ".json")) {
#ifdef QATK_HAVE_HF_TOKENIZER
    ASSIGN_OR_RETURN(tokenizer::HfTokenizer tok, tokenizer::HfTokenizer::FromFile(path));
    return tok.Encode(text, a.add_special);
#else
    return absl::UnimplementedError(absl::StrCat(path, ": this build has no tokenizer.json support"));
#endif
  }
  if (absl::EndsWith(path, ".model")) {
    ASSIGN_OR_RETURN(data::Tokenizer tok, data::Tokenizer::Load(path));
    std::vector<int32_t> ids;
    if (a.add_special) ids.push_back(tok.bos_id());
    const std::vector<int32_t> body = tok.Encode(text);
    ids.insert(ids.end(), body.begin(), body.end());
    return ids;
  }
  ASSIGN_OR_RETURN(tokenizer::Vocab vocab, inference::LoadVocab(path));
  ASSIGN_OR_RETURN(tokenizer::GgufTokenizer tok,
                   tokenizer::GgufTokenizer::Create(std::move(vocab), path));
  return tok.Encode(text, a.add_special, /*parse_special=*/true);
}

}  // namespace

absl::Status TokenizeCommand(int argc, char** argv) {
  cxxopts::Options opts("qat tokenize", "Token ids of a text file under a model's tokenizer");
  TokenizeArgs a;
  RETURN_IF_ERROR(ParseArgs(a, opts, argc, argv, "tokenize").status());
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(a.file));
  ASSIGN_OR_RETURN(std::vector<int32_t> ids, Tokenize(a, text));
  if (a.json) {
    std::cout << nlohmann::json{{"ids", ids}}.dump() << std::endl;
  } else {
    std::string line;
    for (size_t i = 0; i < ids.size(); ++i) absl::StrAppend(&line, i ? " " : "", ids[i]);
    std::cout << line << std::endl;
    std::fprintf(stderr, "%zu tokens\n", ids.size());
  }
  return absl::OkStatus();
}

}  // namespace qatk::cli
