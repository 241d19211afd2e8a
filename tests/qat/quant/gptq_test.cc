// GPTQ for Q4_0 (qat/quant/gptq.h): it beats round-to-nearest on the layer
// output, its block scales follow the Q4_0 rule on the error-updated weights
// (checked against an independent plain-loop GPTQ in the OBQ form, with
// explicit inverse-Hessian downdates instead of a Cholesky factor), dead
// inputs, bad Hessians, the capture mode of QLinear, and the recipe switch.
#include "qat/quant/gptq.h"
#include "qat/quant/prepare.h"

#include <cmath>
#include <vector>

#include "formats/quant/fp16.h"
#include "formats/quant/recipe.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "qat/quant/fake_quant.h"
#include "qat/quant/qlinear.h"

namespace qatk::qat {
namespace {

using ::testing::HasSubstr;

// X [N, C] with strongly correlated features of unequal scale: 16 latent
// factors mixed into C features, plus a little independent noise.
torch::Tensor CorrelatedInputs(int64_t n, int64_t c, uint64_t seed) {
  torch::manual_seed(seed);
  const torch::Tensor factors = torch::randn({n, 16}, torch::kDouble);
  const torch::Tensor mix = torch::randn({16, c}, torch::kDouble);
  const torch::Tensor scale = torch::linspace(0.2, 2.0, c, torch::kDouble);
  return (factors.matmul(mix) + 0.2 * torch::randn({n, c}, torch::kDouble)) * scale;
}

torch::Tensor Hessian(const torch::Tensor& x) { return x.t().matmul(x) * (2.0 / x.size(0)); }

double OutputError(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& q) {
  return (x.matmul(w.to(torch::kDouble).t()) - x.matmul(q.to(torch::kDouble).t())).norm().item<double>();
}

TEST(GptqTest, BeatsRoundToNearestOnTheLayerOutput) {
  const torch::Tensor x = CorrelatedInputs(1024, 128, 1);
  torch::manual_seed(2);
  const torch::Tensor w = torch::randn({48, 128}) * 0.05f;
  absl::StatusOr<GptqResult> g = GptqQ4_0(w, Hessian(x));
  ASSERT_TRUE(g.ok()) << g.status();
  const double gptq = OutputError(x, w, g->dequantized);
  const double rtn = OutputError(x, w, Q4_0Dequantized(w));
  // Without the error feedback GPTQ is round-to-nearest (ratio ~1); with it
  // the error drops by a third or more on inputs like these.
  EXPECT_LT(gptq, 0.8 * rtn) << "gptq " << gptq << " rtn " << rtn;
  // The reported errors are tr(E H E^T) = ||X E^T||^2 * 2/N.
  EXPECT_NEAR(g->error, gptq * gptq * 2.0 / 1024, 1e-9 * g->error);
  EXPECT_NEAR(g->rtn_error, rtn * rtn * 2.0 / 1024, 1e-9 * g->rtn_error);
  // Outputs are consistent: codes, scales and values.
  const torch::Tensor d = g->scales.repeat_interleave(32, 1);
  EXPECT_TRUE(torch::equal((g->codes.to(torch::kFloat) - 8) * d, g->dequantized));
  EXPECT_TRUE(torch::equal(g->scales.to(torch::kHalf).to(torch::kFloat), g->scales));  // fp16 values
  // The lazy block size does not change the result (up to fp64 rounding).
  GptqOptions o32;
  o32.block_size = 32;
  absl::StatusOr<GptqResult> g32 = GptqQ4_0(w, Hessian(x), o32);
  ASSERT_TRUE(g32.ok());
  EXPECT_GE(torch::eq(g32->codes, g->codes).to(torch::kDouble).mean().item<double>(), 0.999);
}

// Plain-loop GPTQ (OBQ form) for one row set, in double, with the Q4_0 block
// rule written out: d = fp16(m / -8) of the block's current values.
struct Reference {
  std::vector<std::vector<int>> codes;        // [R][C]
  std::vector<std::vector<float>> scales;     // [R][C/32]
  std::vector<std::vector<float>> d_initial;  // max-rule d16 of the ORIGINAL blocks
};

float MaxRuleD16(const std::vector<double>& row, int64_t c0) {
  float amax = 0, m = 0;
  for (int64_t j = c0; j < c0 + 32; ++j) {
    const float v = static_cast<float>(row[j]);
    if (std::fabs(v) > amax) amax = std::fabs(v), m = v;  // first on ties
  }
  return Fp16ToFp32(Fp32ToFp16(m / -8.0f));
}

// `order` (empty: left to right) is the sweep order of the columns; a
// block's d is taken when the sweep first reaches one of its columns.
Reference PlainGptq(const torch::Tensor& w /*[R, C] f32*/, const torch::Tensor& h /*[C, C] f64*/, double percdamp,
                    std::vector<int64_t> order = {}) {
  const int64_t R = w.size(0), C = w.size(1);
  if (order.empty()) {
    for (int64_t j = 0; j < C; ++j) order.push_back(j);
  }
  const torch::Tensor perm = torch::tensor(order, torch::kLong);
  torch::Tensor hd = h.index_select(0, perm).index_select(1, perm);  // in sweep order
  hd.diagonal().add_(percdamp * hd.diagonal().mean().item<double>());
  const torch::Tensor hinv_t = torch::inverse(hd).contiguous();
  std::vector<double> hinv(hinv_t.data_ptr<double>(), hinv_t.data_ptr<double>() + C * C);
  const torch::Tensor wd = w.to(torch::kDouble).contiguous();
  std::vector<std::vector<double>> W(R);  // in the weight's column order
  Reference ref;
  ref.codes.assign(R, std::vector<int>(C));
  ref.scales.assign(R, std::vector<float>(C / 32));
  ref.d_initial.assign(R, std::vector<float>(C / 32));
  std::vector<bool> has_scale(C / 32, false);
  for (int64_t r = 0; r < R; ++r) {
    W[r].assign(wd.data_ptr<double>() + r * C, wd.data_ptr<double>() + (r + 1) * C);
    for (int64_t b = 0; b < C / 32; ++b) ref.d_initial[r][b] = MaxRuleD16(W[r], 32 * b);
  }
  for (int64_t j = 0; j < C; ++j) {
    const int64_t col = order[j], blk = col / 32;
    for (int64_t r = 0; r < R; ++r) {
      if (!has_scale[blk]) ref.scales[r][blk] = MaxRuleD16(W[r], 32 * blk);
      const float d = ref.scales[r][blk];
      const float id = d != 0 ? 1.0f / d : 0.0f;
      volatile float xs = static_cast<float>(W[r][col]) * id;  // two roundings, no FMA
      const float v = xs + 8.5f;
      const int q = std::isfinite(v) ? static_cast<int>(std::trunc(std::min(std::max(v, 0.0f), 15.0f))) : 0;
      ref.codes[r][col] = q;
      const double err = (W[r][col] - static_cast<double>((q - 8) * d)) / hinv[j * C + j];
      for (int64_t k = j + 1; k < C; ++k) W[r][order[k]] -= err * hinv[j * C + k];
    }
    has_scale[blk] = true;
    // Remove sweep column j from the inverse Hessian of the columns left.
    const double pivot = hinv[j * C + j];
    for (int64_t a = j + 1; a < C; ++a) {
      for (int64_t b = j + 1; b < C; ++b) hinv[a * C + b] -= hinv[a * C + j] * hinv[j * C + b] / pivot;
    }
  }
  return ref;
}

TEST(GptqTest, EachBlockScaleIsTheMaxRuleOfTheUpdatedBlock) {
  const torch::Tensor x = CorrelatedInputs(512, 96, 3);
  torch::manual_seed(4);
  const torch::Tensor w = torch::randn({5, 96}) * 0.1f;
  const torch::Tensor h = Hessian(x);
  absl::StatusOr<GptqResult> g = GptqQ4_0(w, h);
  ASSERT_TRUE(g.ok()) << g.status();
  const Reference ref = PlainGptq(w, h, 0.01);
  int moved = 0;
  for (int64_t r = 0; r < 5; ++r) {
    for (int64_t b = 0; b < 3; ++b) {
      EXPECT_EQ(g->scales[r][b].item<float>(), ref.scales[r][b]) << "row " << r << " block " << b;
      // Block 0 sees no earlier error; later blocks do, so their d moved.
      if (b == 0) {
        EXPECT_EQ(ref.scales[r][b], ref.d_initial[r][b]);
      }
      moved += ref.scales[r][b] != ref.d_initial[r][b];
    }
    for (int64_t c = 0; c < 96; ++c) ASSERT_EQ(g->codes[r][c].item<int>(), ref.codes[r][c]) << r << "," << c;
  }
  EXPECT_GE(moved, 5) << "too few blocks whose d moved: the test would not tell the rules apart";
}

// Act order sweeps the columns by decreasing H_jj; each block's d is the max
// rule of the block when the sweep first reaches it. It is checked against
// the plain loop run in that order, and must differ from left to right.
TEST(GptqTest, ActOrderMatchesThePlainLoopInThatOrder) {
  torch::Tensor x = CorrelatedInputs(512, 96, 5);
  x = x * torch::linspace(0.2, 3.0, 96).index_select(0, torch::randperm(96, torch::kLong));  // uneven energy
  torch::manual_seed(6);
  const torch::Tensor w = torch::randn({5, 96}) * 0.1f;
  const torch::Tensor h = Hessian(x);
  GptqOptions o;
  o.act_order = true;
  o.verbose = false;
  absl::StatusOr<GptqResult> g = GptqQ4_0(w, h, o);
  ASSERT_TRUE(g.ok()) << g.status();
  const torch::Tensor perm = std::get<1>(h.diagonal().sort(/*stable=*/true, 0, /*descending=*/true));
  const std::vector<int64_t> order(perm.data_ptr<int64_t>(), perm.data_ptr<int64_t>() + 96);
  const Reference ref = PlainGptq(w, h, 0.01, order);
  const Reference plain = PlainGptq(w, h, 0.01);
  int differ = 0;
  for (int64_t r = 0; r < 5; ++r) {
    for (int64_t b = 0; b < 3; ++b) EXPECT_EQ(g->scales[r][b].item<float>(), ref.scales[r][b]) << r << "," << b;
    for (int64_t c = 0; c < 96; ++c) {
      ASSERT_EQ(g->codes[r][c].item<int>(), ref.codes[r][c]) << r << "," << c;
      differ += ref.codes[r][c] != plain.codes[r][c];
    }
  }
  EXPECT_GE(differ, 10) << "act order left the codes as they were: the test would not tell the orders apart";
  EXPECT_LT(g->error, g->rtn_error);
}

TEST(GptqTest, DeadInputsAreZeroedAndCoded8) {
  torch::Tensor x = CorrelatedInputs(256, 64, 5);
  x.select(1, 7).zero_();  // an input that is always 0
  torch::manual_seed(6);
  const torch::Tensor w = torch::randn({4, 64});
  absl::StatusOr<GptqResult> g = GptqQ4_0(w, Hessian(x));
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->dead_columns, 1);
  EXPECT_TRUE(torch::all(g->codes.select(1, 7) == 8).item<bool>());
  EXPECT_TRUE(torch::all(g->dequantized.select(1, 7) == 0).item<bool>());
  EXPECT_FALSE(torch::all(g->codes.select(1, 6) == 8).item<bool>());
}

TEST(GptqTest, BadInputsAreErrors) {
  const torch::Tensor w = torch::randn({4, 64});
  torch::Tensor h = Hessian(CorrelatedInputs(256, 64, 7));
  h[3][5] = NAN;
  absl::StatusOr<GptqResult> g = GptqQ4_0(w, h);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(g.status().message()), HasSubstr("non-finite"));
  GptqOptions nodamp;
  nodamp.percdamp = 0;
  g = GptqQ4_0(w, -torch::eye(64, torch::kDouble), nodamp);
  ASSERT_FALSE(g.ok());
  EXPECT_THAT(std::string(g.status().message()), HasSubstr("not positive definite"));
  g = GptqQ4_0(torch::randn({4, 40}), torch::eye(40, torch::kDouble));
  ASSERT_FALSE(g.ok());
  EXPECT_THAT(std::string(g.status().message()), HasSubstr("multiple of 32"));
  g = GptqQ4_0(w, torch::eye(32, torch::kDouble));
  ASSERT_FALSE(g.ok());
  EXPECT_THAT(std::string(g.status().message()), HasSubstr("[64, 64]"));
}

TEST(GptqTest, QLinearCapturesItsInputGram) {
  QLinear l(64, 8);
  InputGram acc;
  const torch::Tensor a = torch::randn({2, 5, 64}), b = torch::randn({3, 64});
  l->SetInputCapture(&acc);
  l->forward(a);
  l->forward(b);
  l->SetInputCapture(nullptr);
  l->forward(torch::randn({4, 64}));  // not captured
  const torch::Tensor x = torch::cat({a.reshape({-1, 64}), b}).to(torch::kDouble);
  EXPECT_EQ(acc.rows, 13);
  EXPECT_TRUE(torch::allclose(acc.gram, x.t().matmul(x), 1e-12, 1e-12));
}

TEST(GptqTest, RecipeKeepsGptqScales) {
  const char* text = R"({"recipe_version": 1, "name": "t", "export_format": "gguf", "rules": [
      {"match": "*_proj", "weight": {"scheme": "q4_0"}},
      {"match": "lm_head", "weight": {"scheme": "q8_0"}}]})";
  absl::StatusOr<Recipe> r = ParseRecipe(text);
  ASSERT_TRUE(r.ok()) << r.status();
  int converted = -1;
  absl::StatusOr<Recipe> g = WithLearnedQ4_0Scales(*r, &converted);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(converted, 1);
  EXPECT_EQ(g->rules[0].weight.scale_rule, ScaleRule::kLearned);
  EXPECT_TRUE(g->rules[0].weight.has_stored_scale());
  EXPECT_EQ(g->rules[1].weight.scheme, QuantScheme::kQ8_0);
  EXPECT_NE(g->rules[1].weight.scale_rule, ScaleRule::kLearned);
  const char* mobile = R"({"recipe_version": 1, "name": "m", "export_format": "gguf", "rules": [
      {"match": "*_proj", "weight": {"scheme": "q8_0"}}]})";
  absl::StatusOr<Recipe> m = ParseRecipe(mobile);
  ASSERT_TRUE(m.ok()) << m.status();
  g = WithLearnedQ4_0Scales(*m);
  ASSERT_FALSE(g.ok());
  EXPECT_THAT(std::string(g.status().message()), HasSubstr("has no q4_0 weights"));
}

// The same GPTQ on a CUDA tensor (skipped without a GPU): the code is
// device-agnostic, so the results must agree up to fp64 rounding.
TEST(GptqTest, CudaMatchesCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const torch::Tensor x = CorrelatedInputs(512, 128, 8);
  const torch::Tensor w = torch::randn({16, 128}) * 0.05f;
  absl::StatusOr<GptqResult> cpu = GptqQ4_0(w, Hessian(x));
  absl::StatusOr<GptqResult> gpu = GptqQ4_0(w.cuda(), Hessian(x).cuda());
  ASSERT_TRUE(cpu.ok() && gpu.ok());
  EXPECT_TRUE(gpu->codes.is_cuda());
  EXPECT_GE(torch::eq(cpu->codes, gpu->codes.cpu()).to(torch::kDouble).mean().item<double>(), 0.999);
}

}  // namespace
}  // namespace qatk::qat
