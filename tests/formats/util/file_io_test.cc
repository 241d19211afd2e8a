// The POSIX path helpers that replace std::filesystem in LibTorch binaries.
#include "formats/util/file_io.h"

#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "gtest/gtest.h"

namespace qatk {
namespace {

std::string Tmp(const std::string& name) {
  return ::testing::TempDir() + "/file_io_test_" + std::to_string(::getpid()) + "_" + name;
}

TEST(FileIoTest, MakeDirsCreatesEveryLevelAndAcceptsExisting) {
  const std::string root = Tmp("mk");
  ASSERT_TRUE(MakeDirs(root + "/a/b/c").ok());
  EXPECT_TRUE(IsDirectory(root + "/a/b/c"));
  EXPECT_TRUE(MakeDirs(root + "/a/b/c").ok());   // exists: fine
  EXPECT_TRUE(MakeDirs(root + "/a/b/c/").ok());  // trailing slash
  ASSERT_TRUE(WriteFileAtomic(root + "/file", "x").ok());
  const absl::Status s = MakeDirs(root + "/file");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find("file"), std::string::npos) << s;
  EXPECT_FALSE(MakeDirs(root + "/file/sub").ok());
  EXPECT_TRUE(RemoveAll(root).ok());
}

TEST(FileIoTest, RemoveAllRemovesTreesAndLinksButNotTheirTargets) {
  const std::string root = Tmp("rm"), outside = Tmp("outside");
  ASSERT_TRUE(MakeDirs(root + "/x/y").ok());
  ASSERT_TRUE(MakeDirs(outside).ok());
  ASSERT_TRUE(WriteFileAtomic(root + "/x/y/f1", "1").ok());
  ASSERT_TRUE(WriteFileAtomic(root + "/f2", "22").ok());
  ASSERT_TRUE(WriteFileAtomic(outside + "/keep", "k").ok());
  ASSERT_EQ(::symlink(outside.c_str(), (root + "/link").c_str()), 0);
  ASSERT_TRUE(RemoveAll(root).ok());
  EXPECT_FALSE(PathExists(root));
  EXPECT_TRUE(PathExists(outside + "/keep"));  // the link went, not what it points to
  EXPECT_TRUE(RemoveAll(root).ok());           // nothing there: fine
  ASSERT_TRUE(RemoveAll(outside).ok());
  // A single file.
  ASSERT_TRUE(WriteFileAtomic(root, "f").ok());
  ASSERT_TRUE(RemoveAll(root).ok());
  EXPECT_FALSE(PathExists(root));
}

TEST(FileIoTest, FileSizeOfFilesOnly) {
  const std::string f = Tmp("size");
  ASSERT_TRUE(WriteFileAtomic(f, "12345").ok());
  auto n = FileSize(f);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 5u);
  EXPECT_TRUE(absl::IsNotFound(FileSize(f + ".missing").status()));
  EXPECT_TRUE(absl::IsNotFound(FileSize(::testing::TempDir()).status()));  // a folder
  EXPECT_TRUE(RemoveAll(f).ok());
}

}  // namespace
}  // namespace qatk
