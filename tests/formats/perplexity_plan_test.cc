// llama.cpp's perplexity chunking (formats/perplexity_plan.h): chunk inputs,
// BOS replacement, the scored positions and their targets.
#include "formats/perplexity_plan.h"

#include <vector>

#include "gtest/gtest.h"

namespace qatk {
namespace {

TEST(PerplexityPlanTest, WholeChunksSecondHalfScored) {
  // 14 tokens, ctx 6: chunks [0,6) and [6,12); tokens 12..13 are dropped.
  auto p = PlanPerplexity(14, 6, /*replace_bos=*/true, /*bos=*/9);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->chunks, 2);
  EXPECT_EQ(p->first_scored(), 3);
  EXPECT_EQ(p->scored_per_chunk(), 2);  // logit positions 3 and 4
  EXPECT_EQ(p->scored(), 4);
  // Odd ctx: positions 3..5 of 7.
  auto odd = PlanPerplexity(14, 7, true, 0);
  ASSERT_TRUE(odd.ok());
  EXPECT_EQ(odd->first_scored(), 3);
  EXPECT_EQ(odd->scored_per_chunk(), 3);
}

TEST(PerplexityPlanTest, BosReplacesTheFirstTokenAndTargetsComeFromTheText) {
  const std::vector<int32_t> text = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  auto p = PlanPerplexity(static_cast<int64_t>(text.size()), 4, /*replace_bos=*/true, /*bos=*/0);
  ASSERT_TRUE(p.ok());
  std::vector<int64_t> in(4);
  p->ChunkInput(text, 1, in.data());
  EXPECT_EQ(in, (std::vector<int64_t>{0, 6, 7, 8}));
  EXPECT_EQ(p->Target(text, 0, 0), 2);  // the text's token 1, not BOS
  EXPECT_EQ(p->Target(text, 1, 2), 8);
  auto no_bos = PlanPerplexity(static_cast<int64_t>(text.size()), 4, /*replace_bos=*/false, 0);
  ASSERT_TRUE(no_bos.ok());
  std::vector<int32_t> in32(4);
  no_bos->ChunkInput(text, 0, in32.data());
  EXPECT_EQ(in32, (std::vector<int32_t>{1, 2, 3, 4}));
}

TEST(PerplexityPlanTest, MaxChunksAndInvalidInput) {
  auto p = PlanPerplexity(100, 8, true, 0, /*max_chunks=*/3);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->chunks, 3);
  EXPECT_EQ(PlanPerplexity(100, 8, true, 0, /*max_chunks=*/50)->chunks, 12);
  EXPECT_EQ(PlanPerplexity(7, 4, true, 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PlanPerplexity(100, 3, true, 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(PlanPerplexity(8, 4, true, 0).ok());
}

}  // namespace
}  // namespace qatk
