#include "qat/train/evaluate.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace qatk::qat {

int64_t DefaultEvalContext(const ModelConfig& c) { return std::min<int64_t>(512, c.max_position_embeddings); }

absl::StatusOr<PerplexityResult> Perplexity(CausalLM& model, const std::vector<int32_t>& tokens,
                                            int64_t ctx, int32_t bos_id, int64_t max_chunks,
                                            int64_t batch) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (ctx < 4) return absl::InvalidArgumentError(absl::StrCat("--ctx ", ctx, " is too small"));
  if (n < 2 * ctx) {
    return absl::InvalidArgumentError(absl::StrCat("need at least 2*ctx = ", 2 * ctx,
                                                   " tokens for perplexity, the text has ", n));
  }
  int64_t n_chunk = n / ctx;
  if (max_chunks > 0) n_chunk = std::min(n_chunk, max_chunks);
  const int64_t first = ctx / 2;
  torch::NoGradGuard no_grad;
  const bool was_training = model->is_training();
  model->eval();
  const torch::Device device = model->parameters().front().device();
  double nll_sum = 0;
  int64_t count = 0;
  for (int64_t c0 = 0; c0 < n_chunk; c0 += batch) {
    const int64_t nb = std::min(batch, n_chunk - c0);
    std::vector<int64_t> ids(nb * ctx);
    for (int64_t b = 0; b < nb; ++b) {
      for (int64_t t = 0; t < ctx; ++t) ids[b * ctx + t] = tokens[(c0 + b) * ctx + t];
      ids[b * ctx] = bos_id;  // replaced, not inserted
    }
    torch::Tensor x = torch::from_blob(ids.data(), {nb, ctx}, torch::kInt64).to(device);
    // logits at positions first..ctx-2 score the tokens at first+1..ctx-1.
    torch::Tensor logits = model->forward(x).narrow(1, first, ctx - 1 - first).to(torch::kCPU, torch::kFloat32);
    torch::Tensor logp = torch::log_softmax(logits.to(torch::kFloat64), -1);  // [nb, S, V]
    const int64_t S = ctx - 1 - first;
    std::vector<int64_t> tgt(nb * S);
    for (int64_t b = 0; b < nb; ++b) {
      for (int64_t j = 0; j < S; ++j) tgt[b * S + j] = tokens[(c0 + b) * ctx + first + 1 + j];
    }
    torch::Tensor t = torch::from_blob(tgt.data(), {nb, S, 1}, torch::kInt64);
    nll_sum -= logp.gather(-1, t).sum().item<double>();
    count += nb * S;
  }
  if (was_training) model->train();
  return PerplexityResult{std::exp(nll_sum / count), count, ctx, n_chunk};
}

}  // namespace qatk::qat
