// qat-run perplexity: llama.cpp's chunked perplexity of a text file.
#include <iostream>

#include "absl/strings/str_format.h"
#include "formats/util/file_io.h"
#include "formats/util/status_macros.h"
#include "inference/cli/commands.h"
#include "inference/cli/run_common.h"
#include "inference/perplexity.h"
#include "formats/tokenizer/gguf_tokenizer.h"
#include "nlohmann/json.hpp"

namespace qatk::cli {

absl::Status PerplexityCommand(int argc, char** argv) {
  cxxopts::Options opts("perplexity", "perplexity of a text file (llama.cpp's chunking)");
  AddModelFlags(opts, kDefaultPerplexityCtx);
  opts.add_options()("file", "text file", cxxopts::value<std::string>())(
      "json", "one JSON object on stdout");
  ASSIGN_OR_RETURN(cxxopts::ParseResult r, ParseRunFlags(opts, argc, argv));
  RETURN_IF_ERROR(RequireFlag(r, "model", "perplexity"));
  RETURN_IF_ERROR(RequireFlag(r, "file", "perplexity"));
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(r["file"].as<std::string>()));
  ASSIGN_OR_RETURN(Loaded l, LoadFromFlags(r));
  ASSIGN_OR_RETURN(const tokenizer::GgufTokenizer tok,
                   tokenizer::GgufTokenizer::Create(l.model->vocab, r["model"].as<std::string>()));
  ASSIGN_OR_RETURN(const std::vector<int32_t> ids,
                   tok.Encode(text, /*add_special=*/true, /*parse_special=*/false));
  ASSIGN_OR_RETURN(auto session, inference::Session::Create(*l.model, l.n_ctx, l.kv_type, *l.pool,
                                                            l.n_ctx, l.backend));
  ASSIGN_OR_RETURN(PerplexityResult p,
                   inference::Perplexity(*session, ids, l.n_ctx, l.model->vocab.add_bos,
                                         l.model->vocab.bos));
  std::cerr << absl::StrFormat("perplexity: %.4f over %d predictions (%d chunks of %d)\n", p.ppl,
                               p.tokens, p.chunks, p.ctx);
  if (r.count("json")) {
    std::cout << nlohmann::json{{"ppl", p.ppl},
                                 {"tokens", p.tokens},
                                 {"ctx", p.ctx},
                                 {"chunks", p.chunks},
                                 {"chunk_nll", p.chunk_nll}}.dump()
              << std::endl;
  }
  return absl::OkStatus();
}

}  // namespace qatk::cli
