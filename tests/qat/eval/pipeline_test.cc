// The resumable pipeline: a step runs once, is resumed with the same
// arguments (its stdout kept), and stops the pipeline when they changed.
#include "qat/eval/pipeline.h"

#include <stdlib.h>

#include <cstdlib>
#include <string>

#include "formats/util/file_io.h"
#include "gtest/gtest.h"

namespace qatk::qat {
namespace {

class PipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/qatk_pipeline_XXXXXX";
    dir_ = mkdtemp(tmpl);
    ASSERT_TRUE(MakeDirs(dir_ + "/.done").ok());
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }
  std::string dir_;
};

TEST_F(PipelineTest, RunsOnceThenResumesWithTheSameArguments) {
  const std::string count = dir_ + "/count";
  // Appends a line to `count` each time it really runs.
  const std::vector<std::string> argv = {"/bin/sh", "-c", "echo x >> '" + count + "'; echo '{\"ppl\": 2.5}'"};
  Pipeline p(dir_, "test");
  auto first = p.Run("eval", argv, /*capture=*/true);
  ASSERT_TRUE(first.ok()) << first.status();
  auto again = Pipeline(dir_, "test").Run("eval", argv, true);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *first);
  EXPECT_EQ(*ReadFileToString(count), "x\n");  // ran once
  EXPECT_TRUE(PathExists(p.Marker("eval")));
  auto j = ParseStepJson("eval", *again);
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_EQ((*j)["ppl"], 2.5);
}

TEST_F(PipelineTest, ChangedArgumentsAndFailuresStop) {
  Pipeline p(dir_, "test");
  ASSERT_TRUE(p.Run("step", {"/bin/sh", "-c", "true"}, false).ok());
  // Another program path with the same arguments is the same step.
  EXPECT_TRUE(p.Run("step", {"/usr/bin/env", "-c", "true"}, false).ok());
  const auto changed = p.Run("step", {"/bin/sh", "-c", "true # changed"}, false);
  EXPECT_EQ(changed.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(changed.status().message().find("step 'step' in " + dir_ + " was run with"), std::string::npos);
  const auto failed = p.Run("fails", {"/bin/sh", "-c", "exit 3"}, false);
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kInternal);
  EXPECT_FALSE(PathExists(p.Marker("fails")));
}

TEST(ParseStepJsonTest, TheLastLineMustBeAnObject) {
  EXPECT_EQ((*ParseStepJson("s", "log line\n{\"a\": 1}\n\n"))["a"], 1);
  EXPECT_EQ(ParseStepJson("s", "").status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(ParseStepJson("s", "{\"a\": 1}\nnot json\n").status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(ParseStepJson("s", "[1, 2]").status().code(), absl::StatusCode::kInternal);
}

}  // namespace
}  // namespace qatk::qat
