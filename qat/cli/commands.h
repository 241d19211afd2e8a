// The qat subcommands. Each lives in its own file and parses its own flags;
// the contract is docs/CLI.md.
#ifndef QATK_QAT_CLI_COMMANDS_H_
#define QATK_QAT_CLI_COMMANDS_H_

#include "absl/status/status.h"

namespace qatk::cli {

absl::Status InspectCommand(int argc, char** argv);  // formats/inspect (shared with qat-run)
absl::Status ExportCommand(int argc, char** argv);     // qat/cli/export.cc
absl::Status DataCommand(int argc, char** argv);       // qat/cli/data.cc
absl::Status TokenizerCommand(int argc, char** argv);  // qat/cli/tokenizer.cc
absl::Status TrainCommand(int argc, char** argv);      // qat/cli/train.cc
absl::Status EvalCommand(int argc, char** argv);       // qat/cli/eval.cc
absl::Status InitCommand(int argc, char** argv);       // qat/cli/init.cc
absl::Status QuantizeCommand(int argc, char** argv);   // qat/cli/quantize.cc
absl::Status CompareCommand(int argc, char** argv);    // qat/cli/compare.cc
absl::Status TemplateCommand(int argc, char** argv);   // qat/cli/template.cc

}  // namespace qatk::cli

#endif  // QATK_QAT_CLI_COMMANDS_H_
