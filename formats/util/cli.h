// Shared plumbing for the qat and qat-run binaries: a subcommand table and
// the mapping from absl::Status to an exit code and a one-line error.
#ifndef QATK_FORMATS_UTIL_CLI_H_
#define QATK_FORMATS_UTIL_CLI_H_

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace qatk::cli {

// Each subcommand parses its own flags (cxxopts) and runs.
using CommandFn = absl::Status (*)(int argc, char** argv);

struct Command {
  const char* name;
  const char* summary;
  CommandFn run;
};

// Dispatches argv[1] to a command; prints usage for --help / no command.
// Returns the process exit code: 0 finished, 1 error, 2 bad usage
// (kInvalidArgument), 130 interrupted after a clean save (Interrupted()).
int Main(const char* program, const char* about, const std::vector<Command>& commands,
         int argc, char** argv);

// Thrown-free wrapper for cxxopts parse errors and --help: returns kCancelled
// (exit 0, help already printed) or kInvalidArgument.
absl::Status HelpRequested();

// A run stopped by SIGINT after saving what it had: Main prints `message`
// and exits 130, so scripts can tell it from a finished run (0) and from a
// failure (1).
absl::Status Interrupted(const std::string& message);
bool IsInterrupted(const absl::Status& s);

}  // namespace qatk::cli

#endif  // QATK_FORMATS_UTIL_CLI_H_
