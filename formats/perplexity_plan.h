// llama.cpp's perplexity protocol (tools/perplexity), the one definition that
// `qat-run perplexity`, `qat eval` (and --compare) and qat train's validation
// share, whatever computes their logits:
//   the text is tokenized once with BOS first; chunk k is tokens
//   [k*ctx, (k+1)*ctx) with its first token replaced (not preceded) by BOS
//   when the vocabulary adds one; the remainder after the last whole chunk is
//   dropped; every chunk starts from an empty context; the logits at
//   positions ctx/2 .. ctx-2 score the next token of the original text
//   (ctx - 1 - ctx/2 predictions per chunk, the second half as llama.cpp).
// The scoring itself (the NLL of a logit row) stays with each caller, whose
// arithmetic the tests compare digit for digit against llama.cpp. No LibTorch.
#ifndef QATK_FORMATS_PERPLEXITY_PLAN_H_
#define QATK_FORMATS_PERPLEXITY_PLAN_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace qatk {

// llama-perplexity's default chunk size (-c 512); callers clamp it to the
// model's context.
inline constexpr int64_t kDefaultPerplexityCtx = 512;

struct PerplexityResult {
  double ppl = 0;
  int64_t tokens = 0;  // predictions scored
  int64_t ctx = 0;     // chunk size
  int64_t chunks = 0;
  std::vector<double> chunk_nll;  // [chunks] mean NLL of each chunk's predictions
};

struct PerplexityPlan {
  int64_t ctx = 0;
  int64_t chunks = 0;        // evaluated (at most the whole chunks of the text)
  bool replace_bos = true;   // the first token of every chunk becomes `bos`
  int32_t bos = 0;

  // Scored logit positions of a chunk: first_scored() .. ctx - 2.
  int64_t first_scored() const { return ctx / 2; }
  int64_t scored_per_chunk() const { return ctx - 1 - ctx / 2; }
  int64_t scored() const { return chunks * scored_per_chunk(); }

  // Chunk k's model input (ctx ids) into out[0, ctx).
  template <typename T>
  void ChunkInput(const std::vector<int32_t>& text, int64_t k, T* out) const {
    for (int64_t t = 0; t < ctx; ++t) out[t] = static_cast<T>(text[k * ctx + t]);
    if (replace_bos) out[0] = static_cast<T>(bos);
  }
  // The text token that logit position j of chunk k predicts (from the
  // text, not the BOS-replaced input).
  int32_t Target(const std::vector<int32_t>& text, int64_t k, int64_t j) const {
    return text[k * ctx + j + 1];
  }
};

// The plan for a text of n_tokens ids (BOS included). max_chunks 0: all.
// kInvalidArgument if ctx < 4 or n_tokens < 2 * ctx (llama.cpp's minimum).
absl::StatusOr<PerplexityPlan> PlanPerplexity(int64_t n_tokens, int64_t ctx, bool replace_bos, int32_t bos,
                                              int64_t max_chunks = 0);

}  // namespace qatk

#endif  // QATK_FORMATS_PERPLEXITY_PLAN_H_
