// qat tokenizer: trains a SentencePiece BPE model with byte fallback.
#include <cstdio>
#include <thread>

#include "formats/util/cli_flags.h"
#include "formats/util/status_macros.h"
#include "qat/cli/commands.h"
#include "qat/data/tokenizer.h"

namespace qatk::cli {

// The flags of qat tokenizer, each declared once.
struct TokenizerOptions {
  std::string data;
  int vocab = 4096;
  std::string out;

  template <typename Visitor>
  void ForEach(Visitor&& v) {
    v(data, "data", "training text (one paragraph per line)", kRequired);
    v(vocab, "vocab", "vocabulary size", kRequired);
    v(out, "out", "output tokenizer.model", kRequired);
  }
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
  TokenizerOptions o;
  RETURN_IF_ERROR(ParseArgs(o, opts, argc, argv, "tokenizer").status());
  return RunTokenizer(o);
}

}  // namespace qatk::cli
