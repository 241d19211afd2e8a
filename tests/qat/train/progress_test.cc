// The progress line (qat/train/progress.h): the bar, the ETA, and how it is
// drawn on a terminal and in a log.
#include "qat/train/progress.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

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

// Everything written to `f` so far.
std::string Contents(std::FILE* f) {
  std::fflush(f);
  std::rewind(f);
  std::string s;
  for (int c; (c = std::fgetc(f)) != EOF;) s.push_back(static_cast<char>(c));
  return s;
}

TEST(ProgressTest, TerminalRedrawsInPlaceEveryStep) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  ProgressLine line(3, f, /*terminal=*/true);
  line.Break();  // nothing drawn yet: nothing to end
  for (int i = 1; i <= 3; ++i) line.Update(i, "step " + std::to_string(i));
  line.Break();
  line.Break();
  EXPECT_EQ(Contents(f), "\rstep 1   \rstep 2   \rstep 3   \n");
  std::fclose(f);
}

TEST(ProgressTest, LogPrintsALineEveryFivePercentAndAtTheEnd) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  ProgressLine line(200, f, /*terminal=*/false);
  for (int i = 1; i <= 200; ++i) line.Update(i, std::to_string(i));
  line.Break();  // a log has no open line
  std::string want;
  for (int i = 10; i <= 200; i += 10) want += std::to_string(i) + "\n";
  EXPECT_EQ(Contents(f), want);
  std::fclose(f);
}

TEST(ProgressTest, LogWithSparseUpdatesAndAnUnevenTotal) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  // Updates every 10 steps of 45 (as block reconstruction's) and the last:
  // each update passes a new 5% mark (2.25 steps), and 45 ends the loop.
  ProgressLine line(45, f, /*terminal=*/false);
  for (int i : {10, 20, 30, 40, 45, 45}) line.Update(i, std::to_string(i));
  EXPECT_EQ(Contents(f), "10\n20\n30\n40\n45\n");
  std::fclose(f);
  // A loop resumed at step 150 of 200 logs from its first update on.
  f = std::tmpfile();
  ProgressLine resumed(200, f, /*terminal=*/false);
  for (int i = 151; i <= 165; ++i) resumed.Update(i, std::to_string(i));
  EXPECT_EQ(Contents(f), "151\n160\n");
  std::fclose(f);
}

}  // namespace
}  // namespace qatk::qat
