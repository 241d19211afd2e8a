#include "qat/cli/eval_compare.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "formats/perplexity_plan.h"
#include "formats/quant/recipe.h"
#include "formats/safetensors/hf_weights.h"
#include "formats/util/file_io.h"
#include "formats/util/status_macros.h"
#include "inference/forward.h"
#include "inference/model_loader.h"
#include "inference/perplexity.h"
#include "inference/thread_pool.h"
#include "nlohmann/json.hpp"
#include "qat/model/checkpoint.h"
#include "qat/quant/prepare.h"
#include "qat/train/evaluate.h"

namespace qatk::cli {
namespace {

absl::StatusOr<std::string> FileFormat(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  char magic[4] = {};
  const size_t n = std::fread(magic, 1, 4, f);
  std::fclose(f);
  const std::string m(magic, n);
  if (m == "GGUF") return std::string("gguf");
  if (m == "QMOB") return std::string("mobile");
  return absl::InvalidArgumentError(
      absl::StrCat(path, ": not a GGUF or mobile file (magic at byte 0)"));
}

// Appends a q8_0_act input rule for every linear whose weight is a block
// format and whose input is unquantized (llama.cpp quantizes those
// activations to Q8_0), re-applies the recipe and reloads the weights and
// quantizer state. Returns the number of linears changed.
absl::StatusOr<int> EmulateQ8_0Activations(qat::Checkpoint& c) {
  if (!c.recipe) return 0;
  RecipeRule rule;
  for (const ModuleShape& m : qat::QuantizableModules(*c.model, c.config.head_dim)) {
    if (m.kind != ModuleKind::kLinear) continue;
    const LayerQuant lq = c.recipe->Resolve(m.name);
    if (lq.weight.enabled() && lq.weight.is_block() && !lq.input.enabled()) {
      rule.patterns.push_back(m.name);
    }
  }
  if (rule.patterns.empty()) return 0;
  Recipe r = *c.recipe;
  rule.index = static_cast<int>(r.rules.size());
  rule.has_input = true;
  rule.optional = true;
  ASSIGN_OR_RETURN(rule.input, ParseQuantSpec(nlohmann::json{{"scheme", "q8_0_act"}},
                                              QuantSlot::kInput, "q8_0_act emulation"));
  const int n = static_cast<int>(rule.patterns.size());
  r.rules.push_back(std::move(rule));
  RETURN_IF_ERROR(qat::ApplyRecipe(*c.model, r, c.config.head_dim));
  ASSIGN_OR_RETURN(safetensors::HfWeights weights, safetensors::HfWeights::Open(c.dir));
  RETURN_IF_ERROR(qat::LoadWeights(*c.model, weights, c.config.tie_word_embeddings));
  return n;
}

absl::StatusOr<inference::KvType> ChooseKvType(const std::string& name,
                                               const inference::Model& m) {
  if (name != "auto") return inference::KvTypeFromName(name);
  for (const inference::LayerWeights& l : m.layers) {
    if (!(l.k_scale > 0 && l.v_scale > 0)) return inference::KvType::kF32;
  }
  return inference::KvType::kInt8;  // the static scales the model trained with
}

struct Tally {
  double nll_torch = 0, nll_rt = 0, max_abs_diff = 0;
  int64_t scored = 0, agree = 0;
};

const char* KvName(inference::KvType t) {
  switch (t) {
    case inference::KvType::kF32: return "f32";
    case inference::KvType::kF16: return "f16";
    case inference::KvType::kInt8: return "int8";
    case inference::KvType::kQ8_0: return "q8_0";
  }
  return "?";
}

int64_t ArgMax(const float* x, int64_t n) { return std::max_element(x, x + n) - x; }

// Chunk k of the plan: torch logits [ctx, V] vs runtime logits [ctx, V].
absl::Status CompareChunk(qat::CausalLM& model, inference::Session& session, const PerplexityPlan& plan,
                          const std::vector<int32_t>& text, int64_t k, int64_t V, Tally* t) {
  const int64_t ctx = plan.ctx;
  std::vector<int32_t> ids(ctx);
  plan.ChunkInput(text, k, ids.data());
  std::vector<int64_t> ids64(ids.begin(), ids.end());
  const torch::Device device = model->parameters().front().device();
  const torch::Tensor x = torch::from_blob(ids64.data(), {1, ctx}, torch::kInt64).to(device);
  const torch::Tensor lt = model->forward(x)[0].to(torch::kCPU, torch::kFloat32).contiguous();
  const float* a = lt.data_ptr<float>();  // [ctx, V]
  session.Reset();
  RETURN_IF_ERROR(session.Eval(ids.data(), static_cast<int>(ctx), /*all_logits=*/true));
  const float* b = session.logits();  // [ctx, V]
  for (int64_t j = plan.first_scored(); j < ctx - 1; ++j) {
    const float* ra = a + j * V;
    const float* rb = b + j * V;
    const int32_t next = plan.Target(text, k, j);
    t->nll_torch += inference::TokenNll(ra, static_cast<int>(V), next);
    t->nll_rt += inference::TokenNll(rb, static_cast<int>(V), next);
    t->agree += ArgMax(ra, V) == ArgMax(rb, V);
    for (int64_t v = 0; v < V; ++v) {
      t->max_abs_diff = std::max(t->max_abs_diff, double(std::fabs(ra[v] - rb[v])));
    }
    ++t->scored;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<CompareResult> CompareExported(const EvalCompareOptions& o) {
  CompareResult res;
  ASSIGN_OR_RETURN(res.format, FileFormat(o.compare));
  ASSIGN_OR_RETURN(qat::Checkpoint c, qat::LoadCheckpoint(o.model));
  RETURN_IF_ERROR(qat::RequireTokenizer(c));
  if (res.format == "gguf") {
    ASSIGN_OR_RETURN(res.q8_0_act_emulated, EmulateQ8_0Activations(c));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<inference::Model> rm, inference::LoadModel(o.compare));
  const int64_t V = c.config.vocab_size;
  if (rm->config.n_vocab != V) {
    return absl::InvalidArgumentError(absl::StrCat(o.compare, ": vocab ", rm->config.n_vocab,
                                                   " differs from ", o.model, "'s ", V));
  }
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(o.file));
  std::vector<int32_t> ids = {c.tokenizer->bos_id()};
  const std::vector<int32_t> body = c.tokenizer->Encode(text);
  ids.insert(ids.end(), body.begin(), body.end());
  const int64_t ctx = o.ctx > 0 ? o.ctx : qat::DefaultEvalContext(c.config);
  if (ctx < 4 || ctx > c.config.max_position_embeddings) {
    return absl::InvalidArgumentError(absl::StrCat("--ctx ", ctx, ": must be in 4..",
                                                   c.config.max_position_embeddings));
  }
  ASSIGN_OR_RETURN(const PerplexityPlan plan, PlanPerplexity(static_cast<int64_t>(ids.size()), ctx,
                                                             /*replace_bos=*/true, c.tokenizer->bos_id(), o.chunks));
  ASSIGN_OR_RETURN(const inference::KvType kv, ChooseKvType(o.kv_type, *rm));
  const int threads = o.threads > 0 ? o.threads : std::max(1u, std::thread::hardware_concurrency());
  inference::ThreadPool pool(threads);
  ASSIGN_OR_RETURN(std::unique_ptr<inference::Session> session,
                   inference::Session::Create(*rm, static_cast<int>(ctx), kv, pool,
                                              static_cast<int>(ctx)));
  torch::NoGradGuard no_grad;
  c.model->eval();
  Tally t;
  for (int64_t k = 0; k < plan.chunks; ++k) {
    RETURN_IF_ERROR(CompareChunk(c.model, *session, plan, ids, k, V, &t));
  }
  res.ppl_torch = std::exp(t.nll_torch / t.scored);
  res.ppl_runtime = std::exp(t.nll_rt / t.scored);
  res.rel_diff = (res.ppl_runtime - res.ppl_torch) / res.ppl_torch;
  res.top1_agreement = static_cast<double>(t.agree) / t.scored;
  res.max_abs_logit_diff = t.max_abs_diff;
  res.tokens = t.scored, res.ctx = ctx, res.chunks = plan.chunks;
  res.kv_type = KvName(kv);
  return res;
}

absl::Status RunEvalCompare(const EvalCompareOptions& o) {
  ASSIGN_OR_RETURN(const CompareResult r, CompareExported(o));
  std::fprintf(stderr,
               "%s (%s) vs %s fake-quant: ppl runtime %.4f, torch %.4f (rel diff %+.4f%%), top-1 "
               "agreement %.2f%% over %lld tokens (%lld chunks of %lld), max |dlogit| %.4g, kv %s%s\n",
               o.compare.c_str(), r.format.c_str(), o.model.c_str(), r.ppl_runtime, r.ppl_torch,
               100 * r.rel_diff, 100 * r.top1_agreement, static_cast<long long>(r.tokens),
               static_cast<long long>(r.chunks), static_cast<long long>(r.ctx),
               r.max_abs_logit_diff, r.kv_type.c_str(),
               r.q8_0_act_emulated
                   ? absl::StrCat(", q8_0 activations emulated at ", r.q8_0_act_emulated, " linears").c_str()
                   : "");
  if (o.json) {
    std::cout << nlohmann::json{{"ppl_runtime", r.ppl_runtime},
                                {"ppl_torch", r.ppl_torch},
                                {"rel_diff", r.rel_diff},
                                {"top1_agreement", r.top1_agreement},
                                {"tokens", r.tokens},
                                {"ctx", r.ctx},
                                {"chunks", r.chunks},
                                {"format", r.format},
                                {"max_abs_logit_diff", r.max_abs_logit_diff},
                                {"q8_0_act_emulated_linears", r.q8_0_act_emulated},
                                {"kv_type", r.kv_type}}
                     .dump()
              << std::endl;
  }
  return absl::OkStatus();
}

}  // namespace qatk::cli
