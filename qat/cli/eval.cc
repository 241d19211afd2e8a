// qat eval: perplexity of a checkpoint with llama.cpp's chunking.
#include <cstdio>
#include <iostream>

#include "formats/util/cli_flags.h"
#include "formats/util/file_io.h"
#include "formats/util/status_macros.h"
#include "nlohmann/json.hpp"
#include "qat/cli/commands.h"
#include "qat/cli/eval_compare.h"
#include "qat/data/text_encoder.h"
#include "qat/model/checkpoint.h"
#include "qat/train/evaluate.h"

namespace qatk::cli {

struct EvalOptions {
  std::string model, file, device = "cpu";
  std::string kl_base;  // base checkpoint: adds the KL figures
  int64_t ctx = 0;  // 0: DefaultEvalContext
  int64_t chunks = 0;
  bool json = false;
};

// The ids llama.cpp's perplexity scores: the text with BOS first when the
// model's tokenizer adds one (*bos = its id; -1 when it adds none, as
// Qwen's). The checkpoint's tokenizer.model, else its tokenizer.json.
absl::StatusOr<std::vector<int32_t>> EvalIds(const qat::Checkpoint& c, const std::string& text,
                                             int32_t* bos) {
  if (c.tokenizer && c.tokenizer_files.count("tokenizer.json") == 0) {
    *bos = c.tokenizer->bos_id();
    std::vector<int32_t> ids = {*bos};
    const std::vector<int32_t> body = c.tokenizer->Encode(text);
    ids.insert(ids.end(), body.begin(), body.end());
    return ids;
  }
  ASSIGN_OR_RETURN(std::unique_ptr<data::TextEncoder> enc, data::LoadModelEncoder(c.dir));
  ASSIGN_OR_RETURN(std::vector<int32_t> ids, enc->Encode(text, /*add_special=*/true));
  *bos = !ids.empty() && ids.front() == c.config.bos_token_id ? ids.front() : -1;
  return ids;
}

absl::Status RunEval(const EvalOptions& o) {
  ASSIGN_OR_RETURN(qat::Checkpoint c, qat::LoadCheckpoint(o.model));
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(o.file));
  int32_t bos = -1;
  ASSIGN_OR_RETURN(const std::vector<int32_t> ids, EvalIds(c, text, &bos));
  const int64_t ctx = o.ctx > 0 ? o.ctx : qat::DefaultEvalContext(c.config);
  if (ctx > c.config.max_position_embeddings) {
    return absl::InvalidArgumentError(absl::StrCat("--ctx ", ctx, " exceeds the model's context ",
                                                   c.config.max_position_embeddings));
  }
  c.model->to(torch::Device(o.device));
  if (!o.kl_base.empty()) {
    ASSIGN_OR_RETURN(qat::Checkpoint base, qat::LoadCheckpoint(o.kl_base));
    int32_t base_bos = -1;
    ASSIGN_OR_RETURN(const std::vector<int32_t> base_ids, EvalIds(base, text, &base_bos));
    if (base_ids != ids || base_bos != bos || base.config.vocab_size != c.config.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("--kl-base ", o.kl_base, " tokenizes ", o.file,
                                                     " differently from --model ", o.model, ": another tokenizer"));
    }
    if (ctx > base.config.max_position_embeddings) {
      return absl::InvalidArgumentError(absl::StrCat("--ctx ", ctx, " exceeds --kl-base's context ",
                                                     base.config.max_position_embeddings));
    }
    base.model->to(torch::Device(o.device));
    ASSIGN_OR_RETURN(qat::PerplexityKlResult pk,
                     qat::PerplexityKl(c.model, base.model, ids, ctx, bos, o.chunks));
    const PerplexityResult& p = pk.ppl;
    const KlResult& k = pk.kl;
    std::fprintf(stderr, "%s on %s: ppl %.4f (%lld scored tokens, %lld chunks of %lld)\n", o.model.c_str(),
                 o.file.c_str(), p.ppl, static_cast<long long>(p.tokens), static_cast<long long>(p.chunks),
                 static_cast<long long>(p.ctx));
    std::fprintf(stderr, "vs %s: mean KL %.6f, 99%% KL %.6f, same top-1 %.4f%%, ppl %.4f - base %.4f = %+.4f\n",
                 o.kl_base.c_str(), k.kl_mean, k.kl_p99, 100 * k.top1, p.ppl, k.ppl_base, k.delta_ppl);
    if (o.json) {
      std::cout << nlohmann::json{{"ppl", p.ppl},          {"tokens", p.tokens},     {"ctx", p.ctx},
                                  {"kl_mean", k.kl_mean},  {"kl_p99", k.kl_p99},     {"top1", k.top1},
                                  {"ppl_base", k.ppl_base}, {"delta_ppl", k.delta_ppl}}
                       .dump()
                << std::endl;
    }
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(PerplexityResult p,
                   qat::Perplexity(c.model, ids, ctx, bos, o.chunks));
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
    v(o.kl_base, "kl-base", "base checkpoint folder: adds KL(base || model) mean and 99th percentile, top-1 agreement, ppl - base ppl");
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
    if (!a.o.kl_base.empty()) {
      return absl::InvalidArgumentError("--kl-base and --compare do not go together (qat-run perplexity --kl-base compares files)");
    }
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
