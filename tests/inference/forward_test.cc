// A tiny random GGUF (written with GgufWriter) through Session: the batched
// prefill must give the same last-token logits as token-by-token decode,
// for both architectures and several KV cache types.
#include "inference/forward.h"

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

}  // namespace
}  // namespace qatk::inference
