// How much of the quantization damage QAT recovers, with bootstrap
// intervals: recovered = (ppl_ptq - ppl_qat) / (ppl_ptq - ppl_fp) on one
// evaluation text, the chunks resampled (paired across the models: every
// model's NLL of the same chunk) and, over several QAT runs, the runs too.
// No LibTorch.
#ifndef QATK_QAT_EVAL_RECOVERED_H_
#define QATK_QAT_EVAL_RECOVERED_H_

#include <cmath>
#include <cstdint>
#include <vector>

namespace qatk::qat {

// One model on the evaluation text: its perplexity and the mean NLL of each
// chunk (PerplexityResult's ppl and chunk_nll).
struct EvalScores {
  double ppl = NAN;
  std::vector<double> chunk_nll;
};

struct Recovered {
  double value = NAN;         // (ppl_ptq - ppl_qat) / (ppl_ptq - ppl_fp)
  double lo = NAN, hi = NAN;  // 95% bootstrap interval
};

// recovered for qat vs ptq against fp, with a paired bootstrap over chunks
// (`resamples` draws, seeded); the interval is NaN when the chunk NLLs are
// missing or of different lengths, or with fewer than 10 resamples.
Recovered ComputeRecovered(const EvalScores& fp, const EvalScores& ptq, const EvalScores& qat, int resamples,
                           uint64_t seed);

// The mean recovered fraction over several QAT runs of one variant, with a
// 95% interval from a two-level bootstrap: each resample redraws the runs
// (with replacement) and the evaluation chunks (paired across every file),
// so the interval holds both the training noise between seeds and the
// sampling noise of the test text. The interval is NaN with fewer than two
// runs or when any chunk NLLs are missing or of different lengths.
Recovered ComputeMeanRecovered(const EvalScores& fp, const EvalScores& ptq, const std::vector<EvalScores>& runs,
                               int resamples, uint64_t seed);

// The recovered fraction over a QAT variant's runs: point values only,
// non-finite values skipped.
struct SeedSpread {
  int n = 0;
  double mean = NAN, min = NAN, max = NAN;
};
SeedSpread ComputeSeedSpread(const std::vector<double>& recovered);

}  // namespace qatk::qat

#endif  // QATK_QAT_EVAL_RECOVERED_H_
