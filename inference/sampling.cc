#include "inference/sampling.h"

#include <algorithm>
#include <cmath>

namespace qatk::inference {

Sampler::Sampler(const SamplingParams& p, int n_vocab) : p_(p), rng_(p.seed) {
  cand_.reserve(n_vocab);
  cand_.resize(n_vocab);
}

int32_t Sampler::Sample(const float* logits) {
  const int V = static_cast<int>(cand_.size());
  if (p_.temp <= 0.0f) return static_cast<int32_t>(std::max_element(logits, logits + V) - logits);
  for (int i = 0; i < V; ++i) cand_[i] = {logits[i] / p_.temp, i};
  int n = V;
  auto by_logit = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
  if (p_.top_k > 0 && p_.top_k < V) {
    std::partial_sort(cand_.begin(), cand_.begin() + p_.top_k, cand_.end(), by_logit);
    n = p_.top_k;
  } else {
    std::sort(cand_.begin(), cand_.end(), by_logit);
  }
  const float m = cand_[0].first;
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += (cand_[i].first = std::exp(cand_[i].first - m));
  if (p_.top_p < 1.0f) {
    double cum = 0;
    int keep = n;
    for (int i = 0; i < n; ++i) {
      cum += cand_[i].first / sum;
      if (cum >= p_.top_p) {
        keep = i + 1;
        break;
      }
    }
    n = keep;
    sum = 0;
    for (int i = 0; i < n; ++i) sum += cand_[i].first;
  }
  double r = std::uniform_real_distribution<double>(0.0, sum)(rng_);
  for (int i = 0; i < n; ++i) {
    r -= cand_[i].first;
    if (r <= 0) return cand_[i].second;
  }
  return cand_[n - 1].second;
}

}  // namespace qatk::inference
