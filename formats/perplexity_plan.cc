#include "formats/perplexity_plan.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace qatk {

absl::StatusOr<PerplexityPlan> PlanPerplexity(int64_t n_tokens, int64_t ctx, bool replace_bos, int32_t bos,
                                              int64_t max_chunks) {
  if (ctx < 4) return absl::InvalidArgumentError(absl::StrCat("--ctx ", ctx, " must be >= 4"));
  if (n_tokens < 2 * ctx) {
    return absl::InvalidArgumentError(
        absl::StrCat("need at least 2*ctx = ", 2 * ctx, " tokens, the text has ", n_tokens));
  }
  PerplexityPlan p;
  p.ctx = ctx;
  p.chunks = n_tokens / ctx;
  if (max_chunks > 0) p.chunks = std::min(p.chunks, max_chunks);
  p.replace_bos = replace_bos;
  p.bos = bos;
  return p;
}

void LogSoftmaxRow(const float* logits, int n, float* out) {
  const float m = *std::max_element(logits, logits + n);
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += std::exp(static_cast<double>(logits[i]) - m);
  const double lse = m + std::log(sum);
  for (int i = 0; i < n; ++i) out[i] = static_cast<float>(logits[i] - lse);
}

double KlRow(const float* base_logp, const float* model_logp, int n) {
  double kl = 0;
  for (int i = 0; i < n; ++i) {
    const double b = base_logp[i];
    const double p = std::exp(b);
    if (p == 0) continue;  // 0 * log 0 = 0 (and no NaN from -inf - -inf)
    kl += p * (b - static_cast<double>(model_logp[i]));
  }
  return kl;
}

int ArgMaxRow(const float* row, int n) {
  return static_cast<int>(std::max_element(row, row + n) - row);
}

double Percentile(std::vector<double> values, double fraction) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  if (fraction <= 0) return values.front();
  if (fraction >= 1) return values.back();
  double p = fraction * static_cast<double>(values.size() - 1);
  const size_t ip = static_cast<size_t>(p);
  p -= static_cast<double>(ip);
  return (1 - p) * values[ip] + p * values[std::min(ip + 1, values.size() - 1)];
}

void KlAccumulator::AddRows(const float* base_logp, const float* model_logp, int n) {
  Add(KlRow(base_logp, model_logp, n), ArgMaxRow(base_logp, n) == ArgMaxRow(model_logp, n));
}

void KlAccumulator::Add(double kl, bool same_top1) {
  kl_.push_back(kl);
  same_top1_ += same_top1 ? 1 : 0;
}

absl::StatusOr<KlResult> KlAccumulator::Finish(double model_ppl) const {
  if (kl_.empty()) return absl::InvalidArgumentError("KL divergence over no positions");
  KlResult r;
  r.positions = static_cast<int64_t>(kl_.size());
  double sum = 0;
  for (double v : kl_) sum += v;
  const double n = static_cast<double>(kl_.size());
  r.kl_mean = sum / n;
  r.kl_p99 = Percentile(kl_, 0.99);
  r.top1 = static_cast<double>(same_top1_) / n;
  r.ppl_base = std::exp(base_nll_ / n);
  r.delta_ppl = model_ppl - r.ppl_base;
  return r;
}

}  // namespace qatk
