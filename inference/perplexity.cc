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
  if (n_ctx < 4) return absl::InvalidArgumentError(absl::StrCat("--ctx ", n_ctx, " must be >= 4"));
  if (tokens.size() < 2 * static_cast<size_t>(n_ctx)) {
    return absl::InvalidArgumentError(absl::StrCat("need at least 2*ctx = ", 2 * n_ctx,
                                                   " tokens, the text has ", tokens.size()));
  }
  PerplexityResult r;
  r.n_ctx = n_ctx;
  r.chunks = static_cast<int>(tokens.size() / n_ctx);
  const int first = n_ctx / 2;
  std::vector<int32_t> chunk(n_ctx);
  double nll = 0;
  for (int i = 0; i < r.chunks; ++i) {
    const int64_t base = int64_t(i) * n_ctx;
    std::copy(tokens.begin() + base, tokens.begin() + base + n_ctx, chunk.begin());
    if (add_bos) chunk[0] = bos;
    ASSIGN_OR_RETURN(const float* logits, eval(chunk));
    double chunk_nll = 0;
    for (int j = first; j < n_ctx - 1; ++j) {
      chunk_nll += TokenNll(logits + int64_t(j) * n_vocab, n_vocab, tokens[base + j + 1]);
    }
    nll += chunk_nll;
    r.tokens += n_ctx - 1 - first;
    r.chunk_nll.push_back(chunk_nll / (n_ctx - 1 - first));
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
