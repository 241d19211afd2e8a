// Perplexity with llama.cpp's chunking (tools/perplexity): the text is
// tokenized once with BOS; chunk i is tokens [i*n_ctx, (i+1)*n_ctx) with its
// first token replaced by BOS (when the vocab adds BOS); the remainder after
// the last whole chunk is dropped; the KV cache is cleared per chunk; logits
// at positions n_ctx/2 .. n_ctx-2 score the next token of the original text
// (n_ctx - 1 - n_ctx/2 predictions per chunk); nll summed in double.
#ifndef QATK_INFERENCE_PERPLEXITY_H_
#define QATK_INFERENCE_PERPLEXITY_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "inference/forward.h"

namespace qatk::inference {

struct PerplexityResult {
  double ppl = 0;
  int64_t tokens = 0;  // predictions scored
  int n_ctx = 0;
  int chunks = 0;
  std::vector<double> chunk_nll;  // [chunks] mean NLL of each chunk's predictions
};

// -log softmax(logits)[target] as llama.cpp computes it (exp terms summed in double).
double TokenNll(const float* logits, int n_vocab, int32_t target);

// Runs one chunk of n_ctx tokens from an empty context and returns its
// logits [n_ctx, n_vocab] (valid until the next call).
using ChunkLogitsFn = std::function<absl::StatusOr<const float*>(const std::vector<int32_t>&)>;

// The chunking and scoring over any logits source (tests use a fake one).
// kInvalidArgument if n_ctx < 4 or there are fewer than 2*n_ctx tokens.
absl::StatusOr<PerplexityResult> PerplexityOver(const ChunkLogitsFn& eval, int n_vocab,
                                                const std::vector<int32_t>& tokens, int n_ctx,
                                                bool add_bos, int32_t bos);

// `tokens` is the whole text tokenized with BOS; session's n_ctx >= n_ctx.
absl::StatusOr<PerplexityResult> Perplexity(Session& session, const std::vector<int32_t>& tokens,
                                            int n_ctx, bool add_bos, int32_t bos);

}  // namespace qatk::inference

#endif  // QATK_INFERENCE_PERPLEXITY_H_
