// Perplexity's chunking against a fake logits source whose NLLs are known
// by hand: V = 4 and the fake model puts logit ln(3) on (input + 1) % V and
// 0 elsewhere, so a prediction costs ln 2 when the next text token is
// (input + 1) % V and ln 6 otherwise.
#include "inference/perplexity.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace qatk::inference {
namespace {

constexpr int V = 4;

struct FakeModel {
  std::vector<std::vector<int32_t>> seen;  // chunks passed to eval
  std::vector<float> logits;
  absl::StatusOr<const float*> Eval(const std::vector<int32_t>& chunk) {
    seen.push_back(chunk);
    logits.assign(chunk.size() * V, 0.0f);
    for (size_t j = 0; j < chunk.size(); ++j) logits[j * V + (chunk[j] + 1) % V] = std::log(3.0f);
    return logits.data();
  }
};

TEST(PerplexityTest, TokenNllOfKnownDistribution) {
  const float l[V] = {std::log(3.0f), 0, 0, 0};
  EXPECT_NEAR(TokenNll(l, V, 0), std::log(2.0), 1e-6);
  EXPECT_NEAR(TokenNll(l, V, 3), std::log(6.0), 1e-6);
}

TEST(PerplexityTest, ChunkingScoresSecondHalfWithBosAndDropsRemainder) {
  // n_ctx = 6: chunks [0,6) and [6,12); tokens 12..13 are dropped; positions
  // 3 and 4 of each chunk are scored (6 - 1 - 3 = 2 predictions per chunk).
  const std::vector<int32_t> toks = {2, 3, 0, 1, 2, 0,  // chunk 0
                                     1, 0, 3, 0, 1, 1,  // chunk 1
                                     3, 3};             // remainder
  FakeModel fake;
  auto eval = [&](const std::vector<int32_t>& c) { return fake.Eval(c); };
  auto r = PerplexityOver(eval, V, toks, 6, /*add_bos=*/true, /*bos=*/3);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(fake.seen.size(), 2u);
  EXPECT_EQ(fake.seen[0], (std::vector<int32_t>{3, 3, 0, 1, 2, 0}));  // BOS replaces token 0
  EXPECT_EQ(fake.seen[1], (std::vector<int32_t>{3, 0, 3, 0, 1, 1}));
  EXPECT_EQ(r->chunks, 2);
  EXPECT_EQ(r->tokens, 4);
  const double l2 = std::log(2.0), l6 = std::log(6.0);
  // chunk 0: pos 3 (1 -> 2 hit), pos 4 (2 -> 0 miss); chunk 1: pos 3 (0 -> 1 hit),
  // pos 4 (1 -> 1 miss).
  ASSERT_EQ(r->chunk_nll.size(), 2u);
  EXPECT_NEAR(r->chunk_nll[0], (l2 + l6) / 2, 1e-6);
  EXPECT_NEAR(r->chunk_nll[1], (l2 + l6) / 2, 1e-6);
  EXPECT_NEAR(r->ppl, std::exp((2 * l2 + 2 * l6) / 4), 1e-5);
}

TEST(PerplexityTest, TargetsComeFromTheTextNotTheBosChunk) {
  // n_ctx = 4: one prediction per chunk, at position 2 -> target at 3.
  const std::vector<int32_t> toks = {0, 0, 1, 2, 0, 0, 3, 3};
  FakeModel fake;
  auto eval = [&](const std::vector<int32_t>& c) { return fake.Eval(c); };
  auto r = PerplexityOver(eval, V, toks, 4, /*add_bos=*/false, /*bos=*/0);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(fake.seen[0], (std::vector<int32_t>{0, 0, 1, 2}));  // no BOS replacement
  ASSERT_EQ(r->chunk_nll.size(), 2u);
  EXPECT_NEAR(r->chunk_nll[0], std::log(2.0), 1e-6);  // 1 -> 2 hit
  EXPECT_NEAR(r->chunk_nll[1], std::log(6.0), 1e-6);  // 3 -> 3 miss
  EXPECT_EQ(r->tokens, 2);
}

TEST(PerplexityTest, TooFewTokensIsInvalidArgument) {
  FakeModel fake;
  auto eval = [&](const std::vector<int32_t>& c) { return fake.Eval(c); };
  auto r = PerplexityOver(eval, V, std::vector<int32_t>(7, 0), 4, true, 0);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(fake.seen.empty());
}

}  // namespace
}  // namespace qatk::inference
