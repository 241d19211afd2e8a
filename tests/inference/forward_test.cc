// A tiny random GGUF (written with GgufWriter) through Session: the batched
// prefill must give the same last-token logits as token-by-token decode,
// for both architectures and several KV cache types; q/k/v biases and rope
// frequency factors change exactly the logits they should.
#include "inference/forward.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "gtest/gtest.h"
#include "inference/model_loader.h"
#include "tests/inference/tiny_gguf.h"

namespace qatk::inference {
namespace {

using testing::WriteTinyModel;
constexpr int V = testing::kTinyV;

TEST(ForwardTest, PrefillEqualsIncrementalDecode) {
  for (const std::string arch : {"llama", "gemma3"}) {
    auto model = LoadModel(WriteTinyModel(arch));
    ASSERT_TRUE(model.ok()) << model.status();
    EXPECT_EQ((*model)->config.n_vocab, V);
    ThreadPool pool(2);
    const std::vector<int32_t> toks = {1, 17, 250, 3, 99, 42, 7, 123, 5, 77};
    for (KvType kv : {KvType::kF32, KvType::kF16, KvType::kQ8_0}) {
      auto a = Session::Create(**model, 64, kv, pool);
      auto b = Session::Create(**model, 64, kv, pool);
      ASSERT_TRUE(a.ok() && b.ok());
      ASSERT_TRUE((*a)->Eval(toks.data(), toks.size(), false).ok());
      for (int32_t t : toks) ASSERT_TRUE((*b)->Eval(&t, 1, false).ok());
      double max_abs = 0;
      for (int i = 0; i < V; ++i) {
        ASSERT_TRUE(std::isfinite((*a)->logits()[i]));
        max_abs = std::max(max_abs, double(std::fabs((*a)->logits()[i])));
        EXPECT_NEAR((*a)->logits()[i], (*b)->logits()[i], 1e-3 * (1 + max_abs)) << arch << " " << i;
      }
      EXPECT_GT(max_abs, 1e-3) << arch;
    }
  }
}

// All logits [T, V] of `toks` from position 0.
std::vector<float> Logits(const Model& m, const std::vector<int32_t>& toks) {
  ThreadPool pool(2);
  auto s = Session::Create(m, 64, KvType::kF32, pool);
  EXPECT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE((*s)->Eval(toks.data(), toks.size(), /*all_logits=*/true).ok());
  return std::vector<float>((*s)->logits(), (*s)->logits() + toks.size() * V);
}

// Whether token t's logits are bit-identical in a and b.
bool SameRow(const std::vector<float>& a, const std::vector<float>& b, int t) {
  return std::equal(a.begin() + t * V, a.begin() + (t + 1) * V, b.begin() + t * V);
}

const std::vector<int32_t> kToks = {1, 17, 250, 3, 99, 42};

TEST(ForwardTest, ZeroBiasesAndUnitRopeFactorsChangeNothing) {
  auto model = LoadModel(WriteTinyModel("llama"));
  ASSERT_TRUE(model.ok()) << model.status();
  Model& m = **model;
  const std::vector<float> base = Logits(m, kToks);
  const int qd = m.config.n_head * m.config.head_dim, kvd = m.config.n_head_kv * m.config.head_dim;
  for (LayerWeights& l : m.layers) {
    l.bq.assign(qd, 0.0f);
    l.bk.assign(kvd, 0.0f);
    l.bv.assign(kvd, 0.0f);
  }
  m.rope_freqs.assign(m.config.head_dim / 2, 1.0f);
  EXPECT_EQ(Logits(m, kToks), base);
}

// A single position attends to itself with weight exactly 1 and rotates by
// 0: a k bias and rope factors leave the first token's logits alone and
// change the later ones; a v bias changes every token's.
TEST(ForwardTest, KBiasAndRopeFactorsActThroughPositionsVBiasEverywhere) {
  auto model = LoadModel(WriteTinyModel("llama"));
  ASSERT_TRUE(model.ok()) << model.status();
  Model& m = **model;
  const std::vector<float> base = Logits(m, kToks);
  const int kvd = m.config.n_head_kv * m.config.head_dim;
  std::mt19937 rng(3);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> bias(kvd);
  for (float& b : bias) b = g(rng);

  m.layers[0].bk = bias;
  const std::vector<float> kb = Logits(m, kToks);
  EXPECT_TRUE(SameRow(kb, base, 0));
  for (int t = 1; t < int(kToks.size()); ++t) EXPECT_FALSE(SameRow(kb, base, t)) << t;
  m.layers[0].bk.clear();

  m.layers[1].bv = bias;
  const std::vector<float> vb = Logits(m, kToks);
  for (int t = 0; t < int(kToks.size()); ++t) EXPECT_FALSE(SameRow(vb, base, t)) << t;
  m.layers[1].bv.clear();
  EXPECT_EQ(Logits(m, kToks), base);

  m.rope_freqs.resize(m.config.head_dim / 2);
  for (size_t i = 0; i < m.rope_freqs.size(); ++i) m.rope_freqs[i] = 1.0f + i;
  const std::vector<float> rf = Logits(m, kToks);
  EXPECT_TRUE(SameRow(rf, base, 0));
  for (int t = 1; t < int(kToks.size()); ++t) EXPECT_FALSE(SameRow(rf, base, t)) << t;
}

}  // namespace
}  // namespace qatk::inference
