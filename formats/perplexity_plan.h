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

// How far a model's next-token distributions are from a base model's over
// the same scored positions, as llama-perplexity --kl-divergence reports it.
struct KlResult {
  int64_t positions = 0;
  double kl_mean = 0;    // mean KL(P_base || P_model), nats
  double kl_p99 = 0;     // 99th percentile of the per-position KL
  double top1 = 0;       // fraction of positions with the same argmax
  double ppl_base = 0;   // the base's perplexity over the same predictions
  double delta_ppl = 0;  // model's ppl - ppl_base
};

// log softmax(logits) into out[0, n): max and sum of exp in double, each
// entry rounded to float. Both sides of a KL go through this, so two
// identical logit rows give a KL of exactly 0.
void LogSoftmaxRow(const float* logits, int n, float* out);
// sum_i exp(b_i) * (b_i - m_i) in double over every entry whose exp(b_i)
// is not 0 (llama.cpp skips entries with b_i <= -16; here only those).
double KlRow(const float* base_logp, const float* model_logp, int n);
// The first index of the largest entry.
int ArgMaxRow(const float* row, int n);
// The value at `fraction` of the sorted values, linearly interpolated
// between neighbours at fraction * (n - 1) (llama.cpp's percentile).
double Percentile(std::vector<double> values, double fraction);

// Collects the per-position figures of a KL comparison.
class KlAccumulator {
 public:
  // One scored position from two log-probability rows [n].
  void AddRows(const float* base_logp, const float* model_logp, int n);
  void Add(double kl, bool same_top1);
  // The base's NLL of some targets, summed for ppl_base (add them in the
  // order the model's perplexity sums its own, per chunk, so that two
  // identical models give a delta_ppl of exactly 0).
  void AddBaseNll(double nll) { base_nll_ += nll; }
  // kInvalidArgument when nothing was added.
  absl::StatusOr<KlResult> Finish(double model_ppl) const;

 private:
  std::vector<double> kl_;
  int64_t same_top1_ = 0;
  double base_nll_ = 0;
};

// The plan for a text of n_tokens ids (BOS included). max_chunks 0: all.
// kInvalidArgument if ctx < 4 or n_tokens < 2 * ctx (llama.cpp's minimum).
absl::StatusOr<PerplexityPlan> PlanPerplexity(int64_t n_tokens, int64_t ctx, bool replace_bos, int32_t bos,
                                              int64_t max_chunks = 0);

}  // namespace qatk

#endif  // QATK_FORMATS_PERPLEXITY_PLAN_H_
