// Perplexity of a LibTorch model with llama.cpp's chunking
// (formats/perplexity_plan.h): chunks evaluated in batches, log-softmax in
// double, nll summed in double.
#ifndef QATK_QAT_TRAIN_EVALUATE_H_
#define QATK_QAT_TRAIN_EVALUATE_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "formats/perplexity_plan.h"
#include "qat/model/transformer.h"

namespace qatk::qat {

// One batch of chunks as scored: the input ids x [nb, ctx] (on the model's
// device), the logits of the scored positions [nb, S, V] (float32, CPU) and
// the target ids [nb, S, 1] (int64, CPU).
using ScoredBatchFn = std::function<absl::Status(const torch::Tensor& x, const torch::Tensor& logits,
                                                 const torch::Tensor& targets)>;

// `tokens` is the text's ids WITH the leading BOS; bos_id < 0: the
// tokenizer adds none (Qwen), and chunks start with the text's own token,
// as llama.cpp does for such vocabularies. max_chunks 0 = all.
// kInvalidArgument when ctx < 4 or fewer than 2*ctx tokens (llama.cpp's requirement).
absl::StatusOr<PerplexityResult> Perplexity(CausalLM& model, const std::vector<int32_t>& tokens,
                                            int64_t ctx, int32_t bos_id, int64_t max_chunks = 0,
                                            int64_t batch = 4, const ScoredBatchFn& on_batch = nullptr);

struct PerplexityKlResult {
  PerplexityResult ppl;  // the model's, as Perplexity gives it
  KlResult kl;           // KL(base || model) etc. (formats/perplexity_plan.h)
};

// Perplexity of `model` and how far its next-token distributions are from
// `base`'s over the same scored positions, with the runtime's definitions
// (LogSoftmaxRow, KlRow, ArgMaxRow): identical models give exactly 0.
// Both models take the same ids (the caller checks their tokenizers).
absl::StatusOr<PerplexityKlResult> PerplexityKl(CausalLM& model, CausalLM& base,
                                                const std::vector<int32_t>& tokens, int64_t ctx,
                                                int32_t bos_id, int64_t max_chunks = 0, int64_t batch = 4);

// The default n_ctx: kDefaultPerplexityCtx (512), or the model's context if smaller.
int64_t DefaultEvalContext(const ModelConfig& c);

}  // namespace qatk::qat

#endif  // QATK_QAT_TRAIN_EVALUATE_H_
