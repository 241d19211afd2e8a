// cxxopts glue shared by the qat and qat-run subcommands (header-only: the
// core library does not link cxxopts): parse errors become
// kInvalidArgument, --help prints and returns HelpRequested() (exit 0).
#ifndef QATK_FORMATS_UTIL_CLI_FLAGS_H_
#define QATK_FORMATS_UTIL_CLI_FLAGS_H_

#include <iostream>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "cxxopts.hpp"
#include "formats/util/cli.h"

namespace qatk::cli {

inline absl::StatusOr<cxxopts::ParseResult> ParseFlags(cxxopts::Options& opts, int argc, char** argv) {
  opts.add_options()("h,help", "show this help");
  try {
    cxxopts::ParseResult r = opts.parse(argc, argv);
    if (r.count("help")) {
      std::cout << opts.help() << std::endl;
      return HelpRequested();
    }
    return r;
  } catch (const cxxopts::exceptions::exception& e) {
    return absl::InvalidArgumentError(e.what());
  }
}

// kInvalidArgument naming the flag when a required flag is absent.
inline absl::Status Require(const cxxopts::ParseResult& r, const char* flag, const char* command,
                            const char* program = "qat") {
  if (r.count(flag)) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("missing required flag --", flag, " (see ", program, " ", command, " --help)"));
}

}  // namespace qatk::cli

#endif  // QATK_FORMATS_UTIL_CLI_FLAGS_H_
