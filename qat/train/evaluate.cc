#include "qat/train/evaluate.h"

#include <algorithm>
#include <cmath>

#include "formats/util/status_macros.h"

namespace qatk::qat {

int64_t DefaultEvalContext(const ModelConfig& c) {
  return std::min<int64_t>(kDefaultPerplexityCtx, c.max_position_embeddings);
}

absl::StatusOr<PerplexityResult> Perplexity(CausalLM& model, const std::vector<int32_t>& tokens,
                                            int64_t ctx, int32_t bos_id, int64_t max_chunks,
                                            int64_t batch) {
  ASSIGN_OR_RETURN(const PerplexityPlan plan, PlanPerplexity(static_cast<int64_t>(tokens.size()), ctx,
                                                             /*replace_bos=*/true, bos_id, max_chunks));
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
    nll_sum -= lp.sum().item<double>();
    const torch::Tensor per_chunk = lp.sum({1, 2});
    for (int64_t b = 0; b < nb; ++b) r.chunk_nll.push_back(-per_chunk[b].item<double>() / S);
    r.tokens += nb * S;
  }
  if (was_training) model->train();
  r.ppl = std::exp(nll_sum / r.tokens);
  return r;
}

}  // namespace qatk::qat
