#include "inference/cli/run_common.h"

#include <algorithm>
#include <iostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "formats/util/cli_flags.h"
#include "formats/util/status_macros.h"
#include "inference/cuda/cuda_ops.h"
#include "inference/model_loader.h"

namespace qatk::cli {

absl::StatusOr<cxxopts::ParseResult> ParseRunFlags(cxxopts::Options& opts, int argc, char** argv) {
  return ParseFlags(opts, argc, argv);
}

absl::Status RequireFlag(const cxxopts::ParseResult& r, const char* flag, const char* command) {
  return Require(r, flag, command, "qat-run");
}

void AddModelFlags(cxxopts::Options& opts, int default_ctx) {
  const int hw = std::max(1u, std::thread::hardware_concurrency());
  opts.add_options()("model", "GGUF or qatkit mobile (.qmob) model file", cxxopts::value<std::string>())(
      "threads", "worker threads", cxxopts::value<int>()->default_value(std::to_string(hw)))(
      "ctx", "context length (clamped to the model's)",
      cxxopts::value<int>()->default_value(std::to_string(default_ctx)))(
      "kv-type", "KV cache type: f32, f16, int8, q8_0",
      cxxopts::value<std::string>()->default_value("f16"))(
      "device", "cpu, or cuda (GPU; needs a build with -DQATK_CUDA=ON)",
      cxxopts::value<std::string>()->default_value("cpu"));
}

absl::StatusOr<Loaded> LoadFromFlags(const cxxopts::ParseResult& r) {
  Loaded l;
  ASSIGN_OR_RETURN(l.kv_type, inference::KvTypeFromName(r["kv-type"].as<std::string>()));
  const int threads = r["threads"].as<int>();
  if (threads < 1 || threads > 1024) return absl::InvalidArgumentError("--threads must be in [1, 1024]");
  ASSIGN_OR_RETURN(l.backend, inference::BackendFromName(r["device"].as<std::string>()));
  if (l.backend == inference::Backend::kCuda) {
    if (absl::Status s = inference::CudaAvailable(); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("--device cuda: ", s.message()));
    }
  }
  inference::LoadOptions load;
  load.repack = l.backend == inference::Backend::kCpu;  // the GPU reads the file's layouts
  ASSIGN_OR_RETURN(l.model, inference::LoadModel(r["model"].as<std::string>(), load));
  const int ctx = r["ctx"].as<int>();
  if (ctx < 1) return absl::InvalidArgumentError("--ctx must be >= 1");
  l.n_ctx = l.model->config.n_ctx_train > 0 ? std::min(ctx, l.model->config.n_ctx_train) : ctx;
  l.pool = std::make_unique<inference::ThreadPool>(threads);
  return l;
}

}  // namespace qatk::cli
