#include "qat/train/evaluate.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "formats/util/status_macros.h"

namespace qatk::qat {

int64_t DefaultEvalContext(const ModelConfig& c) {
  return std::min<int64_t>(kDefaultPerplexityCtx, c.max_position_embeddings);
}

absl::StatusOr<PerplexityResult> Perplexity(CausalLM& model, const std::vector<int32_t>& tokens,
                                            int64_t ctx, int32_t bos_id, int64_t max_chunks,
                                            int64_t batch, const ScoredBatchFn& on_batch) {
  ASSIGN_OR_RETURN(const PerplexityPlan plan, PlanPerplexity(static_cast<int64_t>(tokens.size()), ctx,
                                                             /*replace_bos=*/bos_id >= 0, bos_id, max_chunks));
  const int64_t first = plan.first_scored(), S = plan.scored_per_chunk();
  torch::NoGradGuard no_grad;
  const bool was_training = model->is_training();
  model->eval();
  const torch::Device device = model->parameters().front().device();
  PerplexityResult r;
  r.ctx = ctx;
  r.chunks = plan.chunks;
  double nll_sum = 0;
  for (int64_t c0 = 0; c0 < plan.chunks; c0 += batch) {
    const int64_t nb = std::min(batch, plan.chunks - c0);
    std::vector<int64_t> ids(nb * ctx);
    for (int64_t b = 0; b < nb; ++b) plan.ChunkInput(tokens, c0 + b, ids.data() + b * ctx);
    torch::Tensor x = torch::from_blob(ids.data(), {nb, ctx}, torch::kInt64).to(device);
    // logits at positions first..ctx-2 score the tokens at first+1..ctx-1.
    torch::Tensor logits = model->forward(x).narrow(1, first, S).to(torch::kCPU, torch::kFloat32);
    torch::Tensor logp = torch::log_softmax(logits.to(torch::kFloat64), -1);  // [nb, S, V]
    std::vector<int64_t> tgt(nb * S);
    for (int64_t b = 0; b < nb; ++b) {
      for (int64_t j = 0; j < S; ++j) tgt[b * S + j] = plan.Target(tokens, c0 + b, first + j);
    }
    torch::Tensor t = torch::from_blob(tgt.data(), {nb, S, 1}, torch::kInt64);
    const torch::Tensor lp = logp.gather(-1, t);  // [nb, S, 1]
    if (on_batch) {
      absl::Status st = on_batch(x, logits, t);
      if (!st.ok()) {
        if (was_training) model->train();
        return st;
      }
    }
    nll_sum -= lp.sum().item<double>();
    const torch::Tensor per_chunk = lp.sum({1, 2});
    for (int64_t b = 0; b < nb; ++b) r.chunk_nll.push_back(-per_chunk[b].item<double>() / S);
    r.tokens += nb * S;
  }
  if (was_training) model->train();
  r.ppl = std::exp(nll_sum / r.tokens);
  return r;
}

absl::StatusOr<PerplexityKlResult> PerplexityKl(CausalLM& model, CausalLM& base,
                                                const std::vector<int32_t>& tokens, int64_t ctx,
                                                int32_t bos_id, int64_t max_chunks, int64_t batch) {
  torch::NoGradGuard no_grad;
  const bool base_training = base->is_training();
  base->eval();
  const torch::Device base_device = base->parameters().front().device();
  KlAccumulator acc;
  std::vector<float> base_row, model_row;
  auto on_batch = [&](const torch::Tensor& x, const torch::Tensor& logits,
                      const torch::Tensor& targets) -> absl::Status {
    const int64_t first = ctx / 2, S = logits.size(1), V = logits.size(2);
    const torch::Tensor b = base->forward(x.to(base_device)).narrow(1, first, S).to(torch::kCPU, torch::kFloat32);
    if (b.size(2) != V) {
      return absl::InvalidArgumentError(
          absl::StrCat("the base model has ", b.size(2), " vocabulary entries, the model ", V));
    }
    // The base's NLL of the targets exactly as Perplexity sums the model's.
    const torch::Tensor blp = torch::log_softmax(b.to(torch::kFloat64), -1).gather(-1, targets);
    acc.AddBaseNll(-blp.sum().item<double>());
    const torch::Tensor bc = b.contiguous(), mc = logits.contiguous();
    const float* bp = bc.data_ptr<float>();
    const float* mp = mc.data_ptr<float>();
    base_row.resize(V);
    model_row.resize(V);
    for (int64_t r = 0; r < bc.size(0) * S; ++r) {
      LogSoftmaxRow(bp + r * V, static_cast<int>(V), base_row.data());
      LogSoftmaxRow(mp + r * V, static_cast<int>(V), model_row.data());
      acc.AddRows(base_row.data(), model_row.data(), static_cast<int>(V));
    }
    return absl::OkStatus();
  };
  absl::StatusOr<PerplexityResult> p = Perplexity(model, tokens, ctx, bos_id, max_chunks, batch, on_batch);
  if (base_training) base->train();
  if (!p.ok()) return p.status();
  PerplexityKlResult r;
  r.ppl = *std::move(p);
  ASSIGN_OR_RETURN(r.kl, acc.Finish(r.ppl.ppl));
  return r;
}

}  // namespace qatk::qat
