// Shared plumbing of the qat-run commands: flag parsing (cxxopts; parse
// errors -> kInvalidArgument, --help -> HelpRequested) and model + session
// setup from the common flags (--model, --threads, --ctx, --kv-type).
#ifndef QATK_INFERENCE_CLI_RUN_COMMON_H_
#define QATK_INFERENCE_CLI_RUN_COMMON_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "cxxopts.hpp"
#include "inference/forward.h"
#include "inference/model.h"

namespace qatk::cli {

absl::StatusOr<cxxopts::ParseResult> ParseRunFlags(cxxopts::Options& opts, int argc, char** argv);
absl::Status RequireFlag(const cxxopts::ParseResult& r, const char* flag, const char* command);
// Adds --model, --threads, --ctx (default `default_ctx`), --kv-type, --device.
void AddModelFlags(cxxopts::Options& opts, int default_ctx);

struct Loaded {
  std::unique_ptr<inference::Model> model;
  std::unique_ptr<inference::ThreadPool> pool;
  inference::KvType kv_type = inference::KvType::kF16;
  inference::Backend backend = inference::Backend::kCpu;
  int n_ctx = 0;  // --ctx clamped to the model's training context
};
absl::StatusOr<Loaded> LoadFromFlags(const cxxopts::ParseResult& r);

}  // namespace qatk::cli

#endif  // QATK_INFERENCE_CLI_RUN_COMMON_H_
