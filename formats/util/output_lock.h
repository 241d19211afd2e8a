// One writer per output: an advisory lock on "<target>.lock" beside the target.
//
// flock(2) locks belong to the open file description, so the kernel drops them
// when the holder exits or is killed: a lock file left by a dead process is
// free again (stale-lock safe) and needs no clean-up by hand. The holder's pid
// is written into the lock file so that the error a second writer gets can
// name it. The lock file is removed on release; Acquire re-checks, after
// locking, that the path still names the file it locked, so a concurrent
// release cannot hand the same output to two writers.
#ifndef QATK_FORMATS_UTIL_OUTPUT_LOCK_H_
#define QATK_FORMATS_UTIL_OUTPUT_LOCK_H_

#include <string>

#include "absl/status/statusor.h"

namespace qatk {

class OutputLock {
 public:
  // Locks `target` (a file or folder that may not exist yet; its parent
  // folder is created if missing) for writing.
  // kFailedPrecondition naming the target and the holder's pid if another
  // process (or another OutputLock in this one) holds it; kUnavailable if the
  // lock file cannot be created.
  static absl::StatusOr<OutputLock> Acquire(const std::string& target);

  OutputLock() = default;
  OutputLock(OutputLock&& other) noexcept;
  OutputLock& operator=(OutputLock&& other) noexcept;
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;
  ~OutputLock();  // Releases the lock and removes the lock file.

  bool held() const { return fd_ >= 0; }
  const std::string& lock_path() const { return lock_path_; }

 private:
  void Release();
  std::string lock_path_;
  int fd_ = -1;
};

// The lock file of `target`: "<target>.lock" (a trailing '/' is ignored).
std::string OutputLockPath(const std::string& target);

}  // namespace qatk

#endif  // QATK_FORMATS_UTIL_OUTPUT_LOCK_H_
