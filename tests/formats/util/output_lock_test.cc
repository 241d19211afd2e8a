// One writer per output: the second writer fails at once naming the holder.
#include "formats/util/output_lock.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "formats/util/file_io.h"
#include "gtest/gtest.h"

namespace qatk {
namespace {

std::string Tmp(const std::string& name) {
  return ::testing::TempDir() + "/output_lock_test_" + std::to_string(::getpid()) + "_" + name;
}

TEST(OutputLockTest, SecondWriterFailsNamingTargetAndHolder) {
  const std::string target = Tmp("run");
  auto first = OutputLock::Acquire(target);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(PathExists(target + ".lock"));
  auto second = OutputLock::Acquire(target + "/");  // same target, other spelling
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  const std::string msg(second.status().message());
  EXPECT_NE(msg.find(target), std::string::npos) << msg;
  EXPECT_NE(msg.find("pid " + std::to_string(::getpid())), std::string::npos) << msg;
}

TEST(OutputLockTest, ReleaseRemovesTheLockFileAndFreesTheTarget) {
  const std::string target = Tmp("rel");
  {
    auto lock = OutputLock::Acquire(target);
    ASSERT_TRUE(lock.ok()) << lock.status();
    OutputLock moved = std::move(*lock);  // ownership moves, the lock stays held
    EXPECT_TRUE(moved.held());
    EXPECT_FALSE(OutputLock::Acquire(target).ok());
  }
  EXPECT_FALSE(PathExists(target + ".lock"));
  auto again = OutputLock::Acquire(target);
  EXPECT_TRUE(again.ok()) << again.status();
}

TEST(OutputLockTest, LockOfAKilledProcessIsFree) {
  const std::string target = Tmp("stale");
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto lock = OutputLock::Acquire(target);
    const char c = lock.ok() ? 'y' : 'n';
    if (::write(ready[1], &c, 1) != 1) ::_exit(2);
    ::pause();  // hold until killed
    ::_exit(0);
  }
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ASSERT_EQ(c, 'y');
  auto busy = OutputLock::Acquire(target);
  ASSERT_FALSE(busy.ok());
  EXPECT_NE(std::string(busy.status().message()).find("pid " + std::to_string(child)), std::string::npos)
      << busy.status();
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_TRUE(PathExists(target + ".lock"));  // the killed holder could not clean up
  auto taken = OutputLock::Acquire(target);
  EXPECT_TRUE(taken.ok()) << taken.status();
  ::close(ready[0]);
  ::close(ready[1]);
}

TEST(OutputLockTest, UnwritableFolderIsAnErrorNamingTheLockFile) {
  auto lock = OutputLock::Acquire("/proc/qatk-no-such-dir/out");
  ASSERT_FALSE(lock.ok());
  EXPECT_NE(std::string(lock.status().message()).find("/proc/qatk-no-such-dir/out.lock"), std::string::npos)
      << lock.status();
}

}  // namespace
}  // namespace qatk
