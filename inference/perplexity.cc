#include "inference/perplexity.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "formats/util/status_macros.h"

namespace qatk::inference {

double TokenNll(const float* logits, int n_vocab, int32_t target) {
  const float m = *std::max_element(logits, logits + n_vocab);
  double sum = 0;
  for (int i = 0; i < n_vocab; ++i) sum += std::exp(logits[i] - m);
  return -(logits[target] - m - std::log(sum));
}

absl::StatusOr<PerplexityResult> PerplexityOver(const ChunkLogitsFn& eval, int n_vocab,
                                                const std::vector<int32_t>& tokens, int n_ctx,
                                                bool add_bos, int32_t bos) {
  ASSIGN_OR_RETURN(const PerplexityPlan plan,
                   PlanPerplexity(static_cast<int64_t>(tokens.size()), n_ctx, add_bos, bos));
  PerplexityResult r;
  r.ctx = plan.ctx;
  r.chunks = plan.chunks;
  const int64_t first = plan.first_scored(), per_chunk = plan.scored_per_chunk();
  std::vector<int32_t> chunk(n_ctx);
  double nll = 0;
  for (int64_t k = 0; k < plan.chunks; ++k) {
    plan.ChunkInput(tokens, k, chunk.data());
    ASSIGN_OR_RETURN(const float* logits, eval(chunk));
    double chunk_nll = 0;
    for (int64_t j = first; j < n_ctx - 1; ++j) {
      chunk_nll += TokenNll(logits + j * n_vocab, n_vocab, plan.Target(tokens, k, j));
    }
    nll += chunk_nll;
    r.tokens += per_chunk;
    r.chunk_nll.push_back(chunk_nll / per_chunk);
  }
  r.ppl = std::exp(nll / r.tokens);
  return r;
}

absl::StatusOr<PerplexityResult> Perplexity(Session& session, const std::vector<int32_t>& tokens,
                                            int n_ctx, bool add_bos, int32_t bos) {
  if (n_ctx > session.n_ctx()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--ctx ", n_ctx, " exceeds the session's context ", session.n_ctx()));
  }
  auto eval = [&](const std::vector<int32_t>& chunk) -> absl::StatusOr<const float*> {
    session.Reset();
    RETURN_IF_ERROR(session.Eval(chunk.data(), static_cast<int>(chunk.size()), true));
    return session.logits();
  };
  return PerplexityOver(eval, session.model().config.n_vocab, tokens, n_ctx, add_bos, bos);
}

}  // namespace qatk::inference
