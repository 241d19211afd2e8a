// Perplexity in the runtime with llama.cpp's chunking (formats/perplexity_plan.h):
// the KV cache is cleared per chunk; each prediction's NLL is computed as
// llama.cpp does (TokenNll) and summed in double.
#ifndef QATK_INFERENCE_PERPLEXITY_H_
#define QATK_INFERENCE_PERPLEXITY_H_

#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "formats/perplexity_plan.h"
#include "inference/forward.h"

namespace qatk::inference {

// -log softmax(logits)[target] as llama.cpp computes it (exp terms summed in double).
double TokenNll(const float* logits, int n_vocab, int32_t target);

// The scored positions of one evaluated chunk, handed to a ScoredChunkFn.
struct ScoredChunk {
  int64_t index = 0;                           // chunk k of the plan
  const std::vector<int32_t>* input = nullptr;  // the model input (n_ctx ids)
  int n_vocab = 0;
  int64_t scored = 0;                // positions first..n_ctx-2
  const float* logits = nullptr;     // [scored, n_vocab]: their logit rows
  const int32_t* targets = nullptr;  // [scored]: the tokens they predict
  const double* nll = nullptr;       // [scored]: TokenNll of each
};
using ScoredChunkFn = std::function<absl::Status(const ScoredChunk&)>;

// Runs one chunk of n_ctx tokens from an empty context and returns its
// logits [n_ctx, n_vocab] (valid until the next call).
using ChunkLogitsFn = std::function<absl::StatusOr<const float*>(const std::vector<int32_t>&)>;

// The chunking and scoring over any logits source (tests use a fake one).
// kInvalidArgument if n_ctx < 4 or there are fewer than 2*n_ctx tokens.
// `tokens` is the whole text tokenized with BOS; add_bos: the vocabulary
// adds BOS, which then replaces each chunk's first token. `on_chunk`, when
// set, sees every chunk's scored rows (KL comparison, --save-logits).
absl::StatusOr<PerplexityResult> PerplexityOver(const ChunkLogitsFn& eval, int n_vocab,
                                                const std::vector<int32_t>& tokens, int n_ctx,
                                                bool add_bos, int32_t bos,
                                                const ScoredChunkFn& on_chunk = nullptr);

// PerplexityOver with the session's logits; session's n_ctx >= n_ctx.
absl::StatusOr<PerplexityResult> Perplexity(Session& session, const std::vector<int32_t>& tokens,
                                            int n_ctx, bool add_bos, int32_t bos,
                                            const ScoredChunkFn& on_chunk = nullptr);

// A base model's log-probability rows [scored, n_vocab] (LogSoftmaxRow of
// its logits) and target NLLs [scored] for the chunk the model just ran.
using BaseLogProbsFn = std::function<absl::Status(const ScoredChunk& model_chunk,
                                                  std::vector<float>& logp,
                                                  std::vector<double>& nll)>;

// The base rows computed live by another model's session (same vocabulary
// and tokenization; the caller checks both).
BaseLogProbsFn SessionLogProbs(Session& base);

// KL(P_base || P_model), top-1 agreement and the base's perplexity over the
// scored positions; Add is the ScoredChunkFn of the model's run.
class KlComparer {
 public:
  explicit KlComparer(BaseLogProbsFn base) : base_(std::move(base)) {}
  absl::Status Add(const ScoredChunk& c);
  absl::StatusOr<KlResult> Finish(double model_ppl) const { return acc_.Finish(model_ppl); }

 private:
  BaseLogProbsFn base_;
  KlAccumulator acc_;
  std::vector<float> base_logp_, model_logp_;
  std::vector<double> base_nll_;
};

}  // namespace qatk::inference

#endif  // QATK_INFERENCE_PERPLEXITY_H_
