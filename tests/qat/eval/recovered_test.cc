// The recovered fraction, its paired bootstrap interval over chunks, the
// two-level bootstrap over QAT runs and chunks, and the spread over runs.
#include "qat/eval/recovered.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace qatk::qat {
namespace {

// Chunk NLLs that all equal log(ppl), so every bootstrap sample gives the
// same recovered fraction.
EvalScores Flat(double ppl) {
  EvalScores s;
  s.ppl = ppl;
  s.chunk_nll.assign(20, std::log(ppl));
  return s;
}

TEST(RecoveredTest, RecoveredAndItsInterval) {
  const EvalScores fp = Flat(100), ptq = Flat(110), qat = Flat(102);
  const Recovered r = ComputeRecovered(fp, ptq, qat, 200, 1);
  EXPECT_NEAR(r.value, 0.8, 1e-12);
  EXPECT_NEAR(r.lo, 0.8, 1e-9);
  EXPECT_NEAR(r.hi, 0.8, 1e-9);
  EvalScores noisy = qat;
  for (size_t i = 0; i < noisy.chunk_nll.size(); ++i) noisy.chunk_nll[i] += (i % 2 ? 0.01 : -0.01);
  const Recovered n = ComputeRecovered(fp, ptq, noisy, 200, 1);
  EXPECT_LT(n.lo, n.hi);
  EvalScores short_nll = qat;
  short_nll.chunk_nll.pop_back();
  EXPECT_TRUE(std::isnan(ComputeRecovered(fp, ptq, short_nll, 200, 1).lo));
}

// The mean over QAT runs: its interval widens with the spread between the
// runs (flat chunks) and with the noise of the chunks (identical runs).
TEST(RecoveredTest, MeanOverRunsHasAnIntervalFromRunsAndChunks) {
  const EvalScores fp = Flat(100), ptq = Flat(110);
  const EvalScores a = Flat(102), b = Flat(104), c = Flat(101);
  const Recovered m = ComputeMeanRecovered(fp, ptq, {a, b, c}, 500, 1);
  EXPECT_NEAR(m.value, (0.8 + 0.6 + 0.9) / 3, 1e-12);
  EXPECT_GE(m.lo, 0.6 - 1e-9);
  EXPECT_LT(m.lo, m.value);
  EXPECT_GT(m.hi, m.value);
  EXPECT_LE(m.hi, 0.9 + 1e-9);

  EvalScores noisy = a;
  for (size_t i = 0; i < noisy.chunk_nll.size(); ++i) noisy.chunk_nll[i] += (i % 2 ? 0.01 : -0.01);
  const Recovered same = ComputeMeanRecovered(fp, ptq, {noisy, noisy}, 500, 1);
  const Recovered one = ComputeRecovered(fp, ptq, noisy, 500, 1);
  EXPECT_NEAR(same.value, one.value, 1e-12);
  EXPECT_LT(same.lo, same.hi);
  EXPECT_NEAR(same.hi - same.lo, one.hi - one.lo, 0.25 * (one.hi - one.lo));

  EXPECT_TRUE(std::isnan(ComputeMeanRecovered(fp, ptq, {a}, 500, 1).lo));  // one run: no interval
  EvalScores short_nll = b;
  short_nll.chunk_nll.pop_back();
  const Recovered unpaired = ComputeMeanRecovered(fp, ptq, {a, short_nll}, 500, 1);
  EXPECT_NEAR(unpaired.value, 0.7, 1e-12);
  EXPECT_TRUE(std::isnan(unpaired.lo));
}

TEST(RecoveredTest, SeedSpreadSkipsNonFinite) {
  const SeedSpread s = ComputeSeedSpread({0.7, NAN, 0.9, 0.8});
  EXPECT_EQ(s.n, 3);
  EXPECT_NEAR(s.mean, 0.8, 1e-12);
  EXPECT_EQ(s.min, 0.7);
  EXPECT_EQ(s.max, 0.9);
  EXPECT_EQ(ComputeSeedSpread({}).n, 0);
}

}  // namespace
}  // namespace qatk::qat
