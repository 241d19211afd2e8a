// Perplexity in the runtime with llama.cpp's chunking (formats/perplexity_plan.h):
// the KV cache is cleared per chunk; each prediction's NLL is computed as
// llama.cpp does (TokenNll) and summed in double.
#ifndef QATK_INFERENCE_PERPLEXITY_H_
#define QATK_INFERENCE_PERPLEXITY_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "formats/perplexity_plan.h"
#include "inference/forward.h"

namespace qatk::inference {

// -log softmax(logits)[target] as llama.cpp computes it (exp terms summed in double).
double TokenNll(const float* logits, int n_vocab, int32_t target);

// Runs one chunk of n_ctx tokens from an empty context and returns its
// logits [n_ctx, n_vocab] (valid until the next call).
using ChunkLogitsFn = std::function<absl::StatusOr<const float*>(const std::vector<int32_t>&)>;

// The chunking and scoring over any logits source (tests use a fake one).
// kInvalidArgument if n_ctx < 4 or there are fewer than 2*n_ctx tokens.
// `tokens` is the whole text tokenized with BOS; add_bos: the vocabulary
// adds BOS, which then replaces each chunk's first token.
absl::StatusOr<PerplexityResult> PerplexityOver(const ChunkLogitsFn& eval, int n_vocab,
                                                const std::vector<int32_t>& tokens, int n_ctx,
                                                bool add_bos, int32_t bos);

// PerplexityOver with the session's logits; session's n_ctx >= n_ctx.
absl::StatusOr<PerplexityResult> Perplexity(Session& session, const std::vector<int32_t>& tokens,
                                            int n_ctx, bool add_bos, int32_t bos);

}  // namespace qatk::inference

#endif  // QATK_INFERENCE_PERPLEXITY_H_
