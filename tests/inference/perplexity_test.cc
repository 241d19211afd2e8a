// Perplexity's chunking against a fake logits source whose NLLs are known
// by hand: V = 4 and the fake model puts logit ln(3) on (input + 1) % V and
// 0 elsewhere, so a prediction costs ln 2 when the next text token is
// (input + 1) % V and ln 6 otherwise.
#include "inference/perplexity.h"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "inference/logprob_file.h"

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

TEST(KlTest, PercentileInterpolatesLikeLlamaCpp) {
  // 0.99 * (5 - 1) = 3.96: 4 * 0.04 + 5 * 0.96.
  EXPECT_NEAR(Percentile({5, 1, 4, 2, 3}, 0.99), 4.96, 1e-12);
  EXPECT_EQ(Percentile({2, 1}, 0), 1);
  EXPECT_EQ(Percentile({2, 1}, 1), 2);
}

TEST(KlTest, KlRowOfKnownDistributions) {
  // base (1/2, 1/2), model (1/4, 3/4): KL = 1/2 ln 2 + 1/2 ln(2/3).
  const float base_logits[2] = {0.5f, 0.5f}, model_logits[2] = {0, std::log(3.0f)};
  float b[2], m[2];
  LogSoftmaxRow(base_logits, 2, b);
  LogSoftmaxRow(model_logits, 2, m);
  EXPECT_NEAR(KlRow(b, m, 2), 0.5 * std::log(2.0) + 0.5 * std::log(2.0 / 3), 1e-6);
  EXPECT_EQ(KlRow(b, b, 2), 0.0);
  // A base entry of probability 0 adds nothing, whatever the model says.
  const float inf = std::numeric_limits<float>::infinity();
  const float b0[2] = {0, -inf}, m0[2] = {0, -inf};
  EXPECT_EQ(KlRow(b0, m0, 2), 0.0);
  EXPECT_EQ(ArgMaxRow(m, 2), 1);
  EXPECT_EQ(ArgMaxRow(b, 2), 0);  // ties: the first
}

// A second fake whose favourite next token is (input + shift) % V.
struct ShiftedModel {
  int shift;
  std::vector<float> logits;
  absl::StatusOr<const float*> Eval(const std::vector<int32_t>& chunk) {
    logits.assign(chunk.size() * V, 0.0f);
    for (size_t j = 0; j < chunk.size(); ++j) logits[j * V + (chunk[j] + shift) % V] = std::log(3.0f);
    return logits.data();
  }
};

// The base's rows computed from a fake model (what SessionLogProbs does with a session).
BaseLogProbsFn FakeBase(ShiftedModel& m) {
  return [&m](const ScoredChunk& c, std::vector<float>& logp, std::vector<double>& nll) -> absl::Status {
    const float* all = *m.Eval(*c.input);
    const int64_t first = static_cast<int64_t>(c.input->size()) - 1 - c.scored;
    logp.resize(c.scored * V);
    nll.resize(c.scored);
    for (int64_t j = 0; j < c.scored; ++j) {
      LogSoftmaxRow(all + (first + j) * V, V, logp.data() + j * V);
      nll[j] = TokenNll(all + (first + j) * V, V, c.targets[j]);
    }
    return absl::OkStatus();
  };
}

const std::vector<int32_t> kText = {1, 2, 3, 0, 1, 3, 2, 0, 0, 1, 2, 3, 3, 0, 1, 2, 2, 3};

TEST(KlTest, SameModelGivesZeroAndOtherModelTheKnownKl) {
  for (int shift : {1, 2}) {
    ShiftedModel model{1, {}}, base_model{shift, {}};
    KlComparer kl(FakeBase(base_model));
    auto eval = [&](const std::vector<int32_t>& c) { return model.Eval(c); };
    auto r = PerplexityOver(eval, V, kText, 6, true, 3,
                            [&](const ScoredChunk& c) { return kl.Add(c); });
    ASSERT_TRUE(r.ok()) << r.status();
    auto k = kl.Finish(r->ppl);
    ASSERT_TRUE(k.ok()) << k.status();
    EXPECT_EQ(k->positions, r->tokens);
    if (shift == 1) {
      EXPECT_EQ(k->kl_mean, 0.0);
      EXPECT_EQ(k->kl_p99, 0.0);
      EXPECT_EQ(k->top1, 1.0);
      EXPECT_EQ(k->delta_ppl, 0.0);
    } else {
      // Every row: base (1/6, 1/6, 1/2, 1/6) against model (1/6, 1/2, 1/6, 1/6)
      // over its own indices: KL = 1/2 ln 3 + 1/6 ln(1/3) = ln(3) / 3.
      EXPECT_NEAR(k->kl_mean, std::log(3.0) / 3, 1e-6);
      EXPECT_NEAR(k->kl_p99, std::log(3.0) / 3, 1e-6);
      EXPECT_EQ(k->top1, 0.0);
    }
  }
}

TEST(KlTest, LogProbFileRoundTripsAndChecksThePlan) {
  const std::string path = ::testing::TempDir() + "/kl_test.qlp";
  ShiftedModel base_model{2, {}}, model{1, {}};
  LogProbFileHeader h{V, 3, true, 6, 3};
  {
    auto w = LogProbFileWriter::Create(path, h, kText);
    ASSERT_TRUE(w.ok()) << w.status();
    auto eval = [&](const std::vector<int32_t>& c) { return base_model.Eval(c); };
    ASSERT_TRUE(PerplexityOver(eval, V, kText, 6, true, 3, [&](const ScoredChunk& c) { return w->Add(c); }).ok());
    ASSERT_TRUE(w->Commit().ok());
  }
  // The same figures from the file as from the live base.
  KlResult got[2];
  for (int from_file : {0, 1}) {
    auto f = LogProbFileReader::Open(path, h, kText);
    ASSERT_TRUE(f.ok()) << f.status();
    ShiftedModel live{2, {}};
    KlComparer kl(from_file ? BaseLogProbsFn([&](const ScoredChunk& c, std::vector<float>& l,
                                                 std::vector<double>& n) { return f->Chunk(c, l, n); })
                            : FakeBase(live));
    auto eval = [&](const std::vector<int32_t>& c) { return model.Eval(c); };
    auto r = PerplexityOver(eval, V, kText, 6, true, 3, [&](const ScoredChunk& c) { return kl.Add(c); });
    ASSERT_TRUE(r.ok());
    got[from_file] = *kl.Finish(r->ppl);
  }
  EXPECT_EQ(got[0].kl_mean, got[1].kl_mean);
  EXPECT_EQ(got[0].ppl_base, got[1].ppl_base);
  EXPECT_EQ(got[0].top1, got[1].top1);
  // Another ctx, vocabulary or text is refused, naming the file.
  LogProbFileHeader other = h;
  other.ctx = 4;
  auto bad = LogProbFileReader::Open(path, other, kText);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find(path), std::string::npos);
  other = h;
  other.n_vocab = 5;
  EXPECT_FALSE(LogProbFileReader::Open(path, other, kText).ok());
  std::vector<int32_t> text = kText;
  text[7] = 1;
  bad = LogProbFileReader::Open(path, h, text);
  EXPECT_NE(bad.status().message().find("token 7"), std::string::npos) << bad.status();
}

}  // namespace
}  // namespace qatk::inference
