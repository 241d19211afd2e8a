// Observers on known distributions.
#include "qat/quant/observer.h"

#include "formats/quant/fp16.h"
#include "gtest/gtest.h"

namespace qatk::qat {
namespace {

QuantSpec Act(ObserverKind o, int bits = 8) {
  QuantSpec s;
  s.scheme = QuantScheme::kIntTensor;
  s.bits = bits;
  s.scale_type = ScaleType::kF32;
  s.scale_rule = ScaleRule::kCalibrated;
  s.observer = o;
  return s;
}

class ObserverTest : public ::testing::Test {
 protected:
  void SetUp() override { torch::set_num_threads(1); }
};

TEST_F(ObserverTest, MinMaxKeepsTheLargestMagnitude) {
  Observer o(Act(ObserverKind::kMinMax));
  EXPECT_EQ(o.Scale(), 0.0f);
  o.Update(torch::tensor({0.5f, -2.0f}));
  o.Update(torch::tensor({1.0f, 1.5f}));
  EXPECT_DOUBLE_EQ(o.Range(), 2.0);
  EXPECT_EQ(o.Scale(), 2.0f / 127.0f);
  QuantSpec f16 = Act(ObserverKind::kMinMax);
  f16.scale_type = ScaleType::kF16;
  Observer h(f16);
  h.Update(torch::tensor({2.0f}));
  EXPECT_EQ(h.Scale(), RoundToFp16(2.0f / 127.0f));
}

TEST_F(ObserverTest, EmaAveragesBatchMaxima) {
  QuantSpec s = Act(ObserverKind::kEma);
  s.ema_decay = 0.5;
  Observer o(s);
  o.Update(torch::tensor({1.0f}));
  EXPECT_DOUBLE_EQ(o.Range(), 1.0);
  o.Update(torch::tensor({-2.0f}));
  EXPECT_DOUBLE_EQ(o.Range(), 1.5);
  o.Update(torch::tensor({3.0f}));
  EXPECT_DOUBLE_EQ(o.Range(), 2.25);
}

TEST_F(ObserverTest, PercentileOfKnownData) {
  const torch::Tensor x = torch::arange(0, 101, torch::kFloat) * -1;  // |x| = 0..100
  EXPECT_DOUBLE_EQ(AbsPercentile(x, 50), 50.0);
  EXPECT_NEAR(AbsPercentile(x, 99.5), 99.5, 1e-9);
  EXPECT_DOUBLE_EQ(AbsPercentile(x, 100), 100.0);
}

TEST_F(ObserverTest, PercentileIgnoresHeavyTail) {
  torch::manual_seed(0);
  torch::Tensor x = torch::randn({200000});
  x.narrow(0, 0, 20).fill_(1000.0f);  // 0.01% outliers
  QuantSpec s = Act(ObserverKind::kPercentile);
  s.percentile = 99.0;
  Observer o(s);
  o.Update(x);
  // 99th percentile of |N(0,1)| is 2.5758.
  EXPECT_NEAR(o.Range(), 2.5758, 0.05);
  Observer mm(Act(ObserverKind::kMinMax));
  mm.Update(x);
  EXPECT_EQ(mm.Range(), 1000.0);
  // Two batches: the mean of the per-batch percentiles.
  o.Update(x * 2);
  EXPECT_NEAR(o.Range(), 1.5 * 2.5758, 0.08);
}

TEST_F(ObserverTest, MseClipsOutliersAtLowBits) {
  torch::manual_seed(1);
  // Uniform data, 8 bits: clipping never pays, range ~ max.
  const torch::Tensor u = torch::rand({50000}) * 2 - 1;
  Observer ou(Act(ObserverKind::kMse, 8));
  ou.Update(u);
  EXPECT_GT(ou.Range(), 0.95);
  EXPECT_LE(ou.Range(), 1.0);
  // Gaussian with an outlier, 4 bits: the range is pulled well below max.
  torch::Tensor g = torch::randn({50000});
  g[0] = 40.0f;
  Observer og(Act(ObserverKind::kMse, 4));
  og.Update(g);
  EXPECT_LT(og.Range(), 0.5 * 40.0);
  // ... and it beats minmax on squared error.
  EXPECT_LT(MseOptimalRange(g, Act(ObserverKind::kMse, 4)), 40.0);
}

}  // namespace
}  // namespace qatk::qat
