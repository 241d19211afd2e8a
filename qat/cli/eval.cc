// qat eval: perplexity of a checkpoint with llama.cpp's chunking.
#include <cstdio>
#include <iostream>

#include "formats/util/cli_flags.h"
#include "formats/util/file_io.h"
#include "formats/util/status_macros.h"
#include "nlohmann/json.hpp"
#include "qat/cli/commands.h"
#include "qat/cli/eval_compare.h"
#include "qat/model/checkpoint.h"
#include "qat/train/evaluate.h"

namespace qatk::cli {

struct EvalOptions {
  std::string model, file, device = "cpu";
  int64_t ctx = 0;  // 0: DefaultEvalContext
  int64_t chunks = 0;
  bool json = false;
};

absl::Status RunEval(const EvalOptions& o) {
  ASSIGN_OR_RETURN(qat::Checkpoint c, qat::LoadCheckpoint(o.model));
  RETURN_IF_ERROR(qat::RequireTokenizer(c));
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(o.file));
  std::vector<int32_t> ids = {c.tokenizer->bos_id()};
  const std::vector<int32_t> body = c.tokenizer->Encode(text);
  ids.insert(ids.end(), body.begin(), body.end());
  const int64_t ctx = o.ctx > 0 ? o.ctx : qat::DefaultEvalContext(c.config);
  if (ctx > c.config.max_position_embeddings) {
    return absl::InvalidArgumentError(absl::StrCat("--ctx ", ctx, " exceeds the model's context ",
                                                   c.config.max_position_embeddings));
  }
  c.model->to(torch::Device(o.device));
  ASSIGN_OR_RETURN(PerplexityResult p,
                   qat::Perplexity(c.model, ids, ctx, c.tokenizer->bos_id(), o.chunks));
  std::fprintf(stderr, "%s on %s: ppl %.4f (%lld scored tokens, %lld chunks of %lld)\n", o.model.c_str(),
               o.file.c_str(), p.ppl, static_cast<long long>(p.tokens), static_cast<long long>(p.chunks),
               static_cast<long long>(p.ctx));
  if (o.json) std::cout << nlohmann::json{{"ppl", p.ppl}, {"tokens", p.tokens}, {"ctx", p.ctx}}.dump() << std::endl;
  return absl::OkStatus();
}

// The flags of qat eval, each declared once.
struct EvalArgs {
  EvalOptions o;
  std::string compare;          // exported file: qat eval --compare
  std::string kv_type = "auto";
  int threads = 0;

  template <typename Visitor>
  void ForEach(Visitor&& v) {
    v(o.model, "model", "checkpoint folder", kRequired);
    v(o.file, "file", "text file", kRequired);
    v(o.ctx, "ctx", "chunk size (default 512, or the model's context if smaller)");
    v(o.chunks, "chunks", "at most N chunks (default all)");
    v(o.device, "device", "cpu or cuda");
    v(o.json, "json", "one JSON object on stdout");
    v(compare, "compare", "exported GGUF / mobile FILE: runtime vs fake-quant perplexity and top-1 agreement");
    v(kv_type, "kv-type", "with --compare: runtime KV cache auto|f32|f16|int8|q8_0", kShowDefault);
    v(threads, "threads", "with --compare: runtime threads", kShowDefault);
  }
};

absl::Status EvalCommand(int argc, char** argv) {
  cxxopts::Options opts("qat eval", "Perplexity of a checkpoint (llama.cpp's chunking)");
  EvalArgs a;
  ASSIGN_OR_RETURN(cxxopts::ParseResult r, ParseArgs(a, opts, argc, argv, "eval"));
  if (r.count("compare")) {
    EvalCompareOptions c;
    c.model = a.o.model;
    c.compare = a.compare;
    c.file = a.o.file;
    c.ctx = a.o.ctx;
    c.chunks = a.o.chunks;
    c.kv_type = a.kv_type;
    c.threads = a.threads;
    c.json = a.o.json;
    return RunEvalCompare(c);
  }
  return RunEval(a.o);
}

}  // namespace qatk::cli
