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
                                                bool add_bos, int32_t bos,
                                                const ScoredChunkFn& on_chunk) {
  ASSIGN_OR_RETURN(const PerplexityPlan plan,
                   PlanPerplexity(static_cast<int64_t>(tokens.size()), n_ctx, add_bos, bos));
  PerplexityResult r;
  r.ctx = plan.ctx;
  r.chunks = plan.chunks;
  const int64_t first = plan.first_scored(), per_chunk = plan.scored_per_chunk();
  std::vector<int32_t> chunk(n_ctx), targets(per_chunk);
  std::vector<double> row_nll(per_chunk);
  double nll = 0;
  for (int64_t k = 0; k < plan.chunks; ++k) {
    plan.ChunkInput(tokens, k, chunk.data());
    ASSIGN_OR_RETURN(const float* logits, eval(chunk));
    double chunk_nll = 0;
    for (int64_t j = first; j < n_ctx - 1; ++j) {
      targets[j - first] = plan.Target(tokens, k, j);
      row_nll[j - first] = TokenNll(logits + j * n_vocab, n_vocab, targets[j - first]);
      chunk_nll += row_nll[j - first];
    }
    if (on_chunk) {
      ScoredChunk c;
      c.index = k;
      c.input = &chunk;
      c.n_vocab = n_vocab;
      c.scored = per_chunk;
      c.logits = logits + first * n_vocab;
      c.targets = targets.data();
      c.nll = row_nll.data();
      RETURN_IF_ERROR(on_chunk(c));
    }
    nll += chunk_nll;
    r.tokens += per_chunk;
    r.chunk_nll.push_back(chunk_nll / per_chunk);
  }
  r.ppl = std::exp(nll / r.tokens);
  return r;
}

absl::StatusOr<PerplexityResult> Perplexity(Session& session, const std::vector<int32_t>& tokens,
                                            int n_ctx, bool add_bos, int32_t bos,
                                            const ScoredChunkFn& on_chunk) {
  if (n_ctx > session.n_ctx()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--ctx ", n_ctx, " exceeds the session's context ", session.n_ctx()));
  }
  auto eval = [&](const std::vector<int32_t>& chunk) -> absl::StatusOr<const float*> {
    session.Reset();
    RETURN_IF_ERROR(session.Eval(chunk.data(), static_cast<int>(chunk.size()), true));
    return session.logits();
  };
  return PerplexityOver(eval, session.model().config.n_vocab, tokens, n_ctx, add_bos, bos, on_chunk);
}

BaseLogProbsFn SessionLogProbs(Session& base) {
  return [&base](const ScoredChunk& c, std::vector<float>& logp, std::vector<double>& nll) -> absl::Status {
    const std::vector<int32_t>& in = *c.input;
    if (static_cast<int>(in.size()) > base.n_ctx()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--ctx ", in.size(), " exceeds the base model's context ", base.n_ctx()));
    }
    if (base.model().config.n_vocab != c.n_vocab) {
      return absl::InvalidArgumentError(absl::StrCat("the base model has ", base.model().config.n_vocab,
                                                     " vocabulary entries, the model ", c.n_vocab));
    }
    base.Reset();
    RETURN_IF_ERROR(base.Eval(in.data(), static_cast<int>(in.size()), true));
    const int64_t first = static_cast<int64_t>(in.size()) - 1 - c.scored;
    const float* rows = base.logits() + first * c.n_vocab;
    logp.resize(c.scored * c.n_vocab);
    nll.resize(c.scored);
    for (int64_t j = 0; j < c.scored; ++j) {
      const float* row = rows + j * c.n_vocab;
      LogSoftmaxRow(row, c.n_vocab, logp.data() + j * c.n_vocab);
      nll[j] = TokenNll(row, c.n_vocab, c.targets[j]);
    }
    return absl::OkStatus();
  };
}

absl::Status KlComparer::Add(const ScoredChunk& c) {
  RETURN_IF_ERROR(base_(c, base_logp_, base_nll_));
  const int V = c.n_vocab;
  model_logp_.resize(V);
  double chunk_nll = 0;
  for (int64_t j = 0; j < c.scored; ++j) {
    LogSoftmaxRow(c.logits + j * V, V, model_logp_.data());
    acc_.AddRows(base_logp_.data() + j * V, model_logp_.data(), V);
    chunk_nll += base_nll_[j];
  }
  acc_.AddBaseNll(chunk_nll);
  return absl::OkStatus();
}

}  // namespace qatk::inference
