// Perplexity with llama.cpp's chunking (../shared/docs/QAT_NOTES.md §8,
// GGUF_NOTES.md §5): the whole text tokenized once with BOS, chunks of n_ctx,
// the first token of each chunk replaced by BOS, only the second half of each
// chunk scored (n_ctx - 1 - n_ctx/2 predictions), nll summed in double.
#ifndef QATK_QAT_TRAIN_EVALUATE_H_
#define QATK_QAT_TRAIN_EVALUATE_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "qat/model/transformer.h"

namespace qatk::qat {

struct PerplexityResult {
  double ppl = 0;
  int64_t tokens = 0;  // scored predictions
  int64_t ctx = 0;
  int64_t chunks = 0;
};

// `tokens` is the text's ids WITH the leading BOS. max_chunks 0 = all.
// kInvalidArgument when fewer than 2*ctx tokens (llama.cpp's requirement).
absl::StatusOr<PerplexityResult> Perplexity(CausalLM& model, const std::vector<int32_t>& tokens,
                                            int64_t ctx, int32_t bos_id, int64_t max_chunks = 0,
                                            int64_t batch = 4);

// The default n_ctx: 512, or the model's context if smaller.
int64_t DefaultEvalContext(const ModelConfig& c);

}  // namespace qatk::qat

#endif  // QATK_QAT_TRAIN_EVALUATE_H_
