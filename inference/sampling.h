// Next-token sampling: greedy (temp <= 0), else temperature, top-k, top-p
// (nucleus) in that order, from a seeded generator.
#ifndef QATK_INFERENCE_SAMPLING_H_
#define QATK_INFERENCE_SAMPLING_H_

#include <cstdint>
#include <random>
#include <utility>
#include <vector>

namespace qatk::inference {

struct SamplingParams {
  float temp = 0.8f;
  int top_k = 40;     // <= 0: all
  float top_p = 0.95f;  // >= 1: off
  uint64_t seed = 0;
};

class Sampler {
 public:
  Sampler(const SamplingParams& p, int n_vocab);
  int32_t Sample(const float* logits /*[V]*/);

 private:
  SamplingParams p_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> cand_;  // reused: no allocation per token
};

}  // namespace qatk::inference

#endif  // QATK_INFERENCE_SAMPLING_H_
