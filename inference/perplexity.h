// Perplexity with llama.cpp's chunking (tools/perplexity): the text is
// tokenized once with BOS; chunk i is tokens [i*n_ctx, (i+1)*n_ctx) with its
// first token replaced by BOS (when the vocab adds BOS); the KV cache is
// cleared per chunk; logits at positions n_ctx/2 .. n_ctx-2 score the next
// token (n_ctx - 1 - n_ctx/2 predictions per chunk); nll summed in double.
#ifndef QATK_INFERENCE_PERPLEXITY_H_
#define QATK_INFERENCE_PERPLEXITY_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "inference/forward.h"

namespace qatk::inference {

struct PerplexityResult {
  double ppl = 0;
  int64_t tokens = 0;  // predictions scored
  int n_ctx = 0;
  int chunks = 0;
};

// -log softmax(logits)[target] as llama.cpp computes it (exp terms summed in double).
double TokenNll(const float* logits, int n_vocab, int32_t target);

// `tokens` is the whole text tokenized with BOS; session's n_ctx >= n_ctx.
// kInvalidArgument if there are fewer than 2*n_ctx tokens.
absl::StatusOr<PerplexityResult> Perplexity(Session& session, const std::vector<int32_t>& tokens,
                                            int n_ctx, bool add_bos, int32_t bos);

}  // namespace qatk::inference

#endif  // QATK_INFERENCE_PERPLEXITY_H_
