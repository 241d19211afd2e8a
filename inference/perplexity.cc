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

absl::StatusOr<PerplexityResult> Perplexity(Session& session, const std::vector<int32_t>& tokens,
                                            int n_ctx, bool add_bos, int32_t bos) {
  if (n_ctx < 4 || n_ctx > session.n_ctx()) {
    return absl::InvalidArgumentError(absl::StrCat("--ctx ", n_ctx, " must be in [4, ",
                                                   session.n_ctx(), "]"));
  }
  if (tokens.size() < 2 * static_cast<size_t>(n_ctx)) {
    return absl::InvalidArgumentError(absl::StrCat("need at least 2*ctx = ", 2 * n_ctx,
                                                   " tokens, the text has ", tokens.size()));
  }
  const int V = session.model().config.n_vocab;
  PerplexityResult r;
  r.n_ctx = n_ctx;
  r.chunks = static_cast<int>(tokens.size() / n_ctx);
  const int first = n_ctx / 2;
  std::vector<int32_t> chunk(n_ctx);
  double nll = 0;
  for (int i = 0; i < r.chunks; ++i) {
    std::copy(tokens.begin() + int64_t(i) * n_ctx, tokens.begin() + int64_t(i + 1) * n_ctx,
              chunk.begin());
    if (add_bos) chunk[0] = bos;
    session.Reset();
    RETURN_IF_ERROR(session.Eval(chunk.data(), n_ctx, /*all_logits=*/true));
    for (int j = first; j < n_ctx - 1; ++j) {
      nll += TokenNll(session.logits() + int64_t(j) * V, V, tokens[int64_t(i) * n_ctx + j + 1]);
      ++r.tokens;
    }
  }
  r.ppl = std::exp(nll / r.tokens);
  return r;
}

}  // namespace qatk::inference
