// qat tokenizer: trains a SentencePiece BPE model with byte fallback.
#include <cstdio>
#include <thread>

#include "formats/util/status_macros.h"
#include "qat/cli/commands.h"
#include "formats/util/cli_flags.h"
#include "qat/data/tokenizer.h"

namespace qatk::cli {

struct TokenizerOptions {
  std::string data;
  int vocab = 4096;
  std::string out;
};

absl::Status RunTokenizer(const TokenizerOptions& o) {
  const int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  ASSIGN_OR_RETURN(data::Tokenizer tok, data::Tokenizer::Train(o.data, o.vocab, threads));
  RETURN_IF_ERROR(tok.Save(o.out));
  std::fprintf(stderr, "wrote %s (%d pieces)\n", o.out.c_str(), tok.vocab_size());
  return absl::OkStatus();
}

absl::Status TokenizerCommand(int argc, char** argv) {
  cxxopts::Options opts("qat tokenizer", "Train a SentencePiece BPE tokenizer (byte fallback)");
  opts.add_options()("data", "training text (one paragraph per line)", cxxopts::value<std::string>())(
      "vocab", "vocabulary size", cxxopts::value<int>())(
      "out", "output tokenizer.model", cxxopts::value<std::string>());
  ASSIGN_OR_RETURN(cxxopts::ParseResult r, ParseFlags(opts, argc, argv));
  for (const char* f : {"data", "vocab", "out"}) RETURN_IF_ERROR(Require(r, f, "tokenizer"));
  TokenizerOptions o;
  o.data = r["data"].as<std::string>();
  o.vocab = r["vocab"].as<int>();
  o.out = r["out"].as<std::string>();
  return RunTokenizer(o);
}

}  // namespace qatk::cli
