// qat eval: perplexity of a checkpoint with llama.cpp's chunking.
#include <cstdio>
#include <iostream>

#include "formats/util/file_io.h"
#include "formats/util/status_macros.h"
#include "nlohmann/json.hpp"
#include "qat/cli/commands.h"
#include "qat/cli/eval_compare.h"
#include "formats/util/cli_flags.h"
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

absl::Status EvalCommand(int argc, char** argv) {
  cxxopts::Options opts("qat eval", "Perplexity of a checkpoint (llama.cpp's chunking)");
  opts.add_options()("model", "checkpoint folder", cxxopts::value<std::string>())(
      "file", "text file", cxxopts::value<std::string>())(
      "ctx", "chunk size (default 512, or the model's context if smaller)", cxxopts::value<int64_t>())(
      "chunks", "at most N chunks (default all)", cxxopts::value<int64_t>())(
      "device", "cpu or cuda", cxxopts::value<std::string>())("json", "one JSON object on stdout")(
      "compare", "exported GGUF / mobile FILE: runtime vs fake-quant perplexity and top-1 agreement",
      cxxopts::value<std::string>())(
      "kv-type", "with --compare: runtime KV cache auto|f32|f16|int8|q8_0",
      cxxopts::value<std::string>()->default_value("auto"))(
      "threads", "with --compare: runtime threads", cxxopts::value<int>()->default_value("0"));
  ASSIGN_OR_RETURN(cxxopts::ParseResult r, ParseFlags(opts, argc, argv));
  RETURN_IF_ERROR(Require(r, "model", "eval"));
  RETURN_IF_ERROR(Require(r, "file", "eval"));
  EvalOptions o;
  o.model = r["model"].as<std::string>();
  o.file = r["file"].as<std::string>();
  if (r.count("ctx")) o.ctx = r["ctx"].as<int64_t>();
  if (r.count("chunks")) o.chunks = r["chunks"].as<int64_t>();
  if (r.count("device")) o.device = r["device"].as<std::string>();
  o.json = r.count("json") > 0;
  if (r.count("compare")) {
    EvalCompareOptions c;
    c.model = o.model;
    c.compare = r["compare"].as<std::string>();
    c.file = o.file;
    c.ctx = o.ctx;
    c.chunks = o.chunks;
    c.kv_type = r["kv-type"].as<std::string>();
    c.threads = r["threads"].as<int>();
    c.json = o.json;
    return RunEvalCompare(c);
  }
  return RunEval(o);
}

}  // namespace qatk::cli
