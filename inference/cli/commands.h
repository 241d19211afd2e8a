// The qat-run subcommands (runtime only, no LibTorch). Contract: docs/CLI.md.
#ifndef QATK_INFERENCE_CLI_COMMANDS_H_
#define QATK_INFERENCE_CLI_COMMANDS_H_

#include "absl/status/status.h"

namespace qatk::cli {

absl::Status InspectCommand(int argc, char** argv);
absl::Status GenerateCommand(int argc, char** argv);    // generate.cc
absl::Status PerplexityCommand(int argc, char** argv);  // perplexity.cc
absl::Status BenchCommand(int argc, char** argv);       // bench.cc
absl::Status TokenizeCommand(int argc, char** argv);    // tokenize.cc

}  // namespace qatk::cli

#endif  // QATK_INFERENCE_CLI_COMMANDS_H_
