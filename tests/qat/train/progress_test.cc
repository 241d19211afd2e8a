// The progress line's pieces (qat/train/progress.h): the bar and the ETA.
#include "qat/train/progress.h"

#include <gtest/gtest.h>

namespace qatk::qat {
namespace {

TEST(ProgressTest, BarFillsInProportionAndStaysInBounds) {
  EXPECT_EQ(ProgressBar(0, 200), "[........................]");
  EXPECT_EQ(ProgressBar(100, 200), "[############............]");
  EXPECT_EQ(ProgressBar(10, 25), "[#########...............]");  // 9.6 rounds down
  EXPECT_EQ(ProgressBar(200, 200), "[########################]");
  EXPECT_EQ(ProgressBar(300, 200), "[########################]");
  EXPECT_EQ(ProgressBar(-5, 200), "[........................]");
  EXPECT_EQ(ProgressBar(5, 0), "[........................]");
}

TEST(ProgressTest, DurationsInMinutesThenHours) {
  EXPECT_EQ(FormatDuration(0), "0m00s");
  EXPECT_EQ(FormatDuration(59.9), "0m59s");
  EXPECT_EQ(FormatDuration(725), "12m05s");
  EXPECT_EQ(FormatDuration(3599), "59m59s");
  EXPECT_EQ(FormatDuration(3720), "1h02m");
  EXPECT_EQ(FormatDuration(-3), "0m00s");
}

}  // namespace
}  // namespace qatk::qat
