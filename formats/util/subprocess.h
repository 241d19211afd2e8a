// Runs a child process (argv, no shell), optionally capturing its stdout.
// stderr is inherited so the child's progress bars stay visible.
#ifndef QATK_FORMATS_UTIL_SUBPROCESS_H_
#define QATK_FORMATS_UTIL_SUBPROCESS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace qatk {

struct ProcessResult {
  int exit_code = 0;   // 128+signal when killed by a signal
  std::string out;     // captured stdout (empty unless capture was asked)
};

// kNotFound if the program cannot be executed; otherwise the result, whatever
// the exit code (callers decide what a non-zero exit means).
absl::StatusOr<ProcessResult> RunProcess(const std::vector<std::string>& argv, bool capture_stdout);

// Path of the running executable (/proc/self/exe), for re-invoking subcommands.
std::string SelfExecutable();

// Quotes argv for display ("qat train --out 'a b'").
std::string ShellJoin(const std::vector<std::string>& argv);

}  // namespace qatk

#endif  // QATK_FORMATS_UTIL_SUBPROCESS_H_
