#include "formats/util/output_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "formats/util/file_io.h"

namespace qatk {

std::string OutputLockPath(const std::string& target) {
  std::string t = target;
  while (t.size() > 1 && t.back() == '/') t.pop_back();
  return t + ".lock";
}

absl::StatusOr<OutputLock> OutputLock::Acquire(const std::string& target) {
  const std::string path = OutputLockPath(target);
  // A release between our open and our flock unlinks the file we opened; the
  // inode check below catches that and we try again on the new file.
  for (int attempt = 0; attempt < 100; ++attempt) {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 && errno == ENOENT) {
      // The target's folder does not exist yet: the command would make it.
      const size_t slash = path.rfind('/');
      if (slash != std::string::npos && slash > 0 && MakeDirs(path.substr(0, slash)).ok()) {
        fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
      }
    }
    if (fd < 0) {
      return absl::UnavailableError(
          absl::StrCat("cannot create lock file '", path, "' for '", target, "': ", std::strerror(errno)));
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      std::string holder;
      if (err == EWOULDBLOCK) {
        char buf[32] = {};
        const ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
        int64_t pid = 0;
        if (n > 0 && absl::SimpleAtoi(absl::StripAsciiWhitespace(std::string(buf, n)), &pid)) {
          holder = absl::StrCat(" (pid ", pid, ")");
        }
      }
      ::close(fd);
      if (err == EWOULDBLOCK) {
        return absl::FailedPreconditionError(absl::StrCat("'", target, "' is being written by another process", holder,
                                                          "; lock file '", path, "'"));
      }
      return absl::UnavailableError(absl::StrCat("cannot lock '", path, "': ", std::strerror(err)));
    }
    struct stat by_fd{}, by_path{};
    if (::fstat(fd, &by_fd) != 0 || ::stat(path.c_str(), &by_path) != 0 || by_fd.st_ino != by_path.st_ino ||
        by_fd.st_dev != by_path.st_dev) {
      ::close(fd);  // The file we locked was released and unlinked meanwhile.
      continue;
    }
    const std::string pid = absl::StrCat(::getpid(), "\n");
    if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
      // The lock holds without the pid; only the error message of a second
      // writer loses the holder's pid.
    }
    OutputLock lock;
    lock.lock_path_ = path;
    lock.fd_ = fd;
    return lock;
  }
  return absl::UnavailableError(absl::StrCat("cannot lock '", path, "': it keeps being replaced"));
}

OutputLock::OutputLock(OutputLock&& other) noexcept
    : lock_path_(std::move(other.lock_path_)), fd_(std::exchange(other.fd_, -1)) {}

OutputLock& OutputLock::operator=(OutputLock&& other) noexcept {
  if (this != &other) {
    Release();
    lock_path_ = std::move(other.lock_path_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

OutputLock::~OutputLock() { Release(); }

void OutputLock::Release() {
  if (fd_ < 0) return;
  // Unlink while still holding the lock: a waiter that opened the old file
  // sees the inode mismatch in Acquire and retries.
  ::unlink(lock_path_.c_str());
  ::close(fd_);
  fd_ = -1;
}

}  // namespace qatk
