// qat init: a randomly initialised checkpoint (benchmarks, export tests).
// With --dtype: a Hugging Face folder with the config's exact shapes, written
// LibTorch-free from the architecture table in shards (every family of the
// table; the tokenizer optional).
#include <cstdio>

#include "export/safetensors_export.h"
#include "formats/safetensors/hf_weights.h"

#include "formats/util/cli_flags.h"
#include "formats/util/output_lock.h"
#include "formats/util/status_macros.h"
#include "qat/cli/commands.h"
#include "qat/data/tokenizer.h"
#include "qat/model/checkpoint.h"

namespace qatk::cli {

// The flags of qat init, each declared once.
struct InitOptions {
  std::string config, out, tokenizer;
  uint64_t seed = 1234;
  std::string dtype;                   // "" = qatkit checkpoint (F32, LibTorch init)
  std::string max_shard_size = "5GB";  // with --dtype

  template <typename Visitor>
  void ForEach(Visitor&& v) {
    v(config, "config", "model config JSON", kRequired);
    v(out, "out", "checkpoint folder", kRequired);
    v(tokenizer, "tokenizer", "tokenizer.model to include");
    v(seed, "seed", "init seed");
    v(dtype, "dtype", "bf16 | f32: write a sharded Hugging Face folder instead (no LibTorch; "
      "--tokenizer optional, tokenizer.model or tokenizer.json)");
    v(max_shard_size, "max-shard-size", "with --dtype: largest shard (2GB = 2e9 bytes, 1.5GB, 3GiB)",
      kShowDefault);
  }
};

absl::Status RunInitHf(const InitOptions& o) {
  exporter::RandomHfOptions r;
  r.config_path = o.config;
  r.out = o.out;
  r.dtype = o.dtype;
  r.seed = o.seed;
  r.tokenizer = o.tokenizer;
  ASSIGN_OR_RETURN(r.max_shard_bytes, safetensors::ParseShardSize(o.max_shard_size, "--max-shard-size"));
  ASSIGN_OR_RETURN(ModelConfig config, LoadModelConfig(o.config));
  ASSIGN_OR_RETURN(OutputLock lock, OutputLock::Acquire(o.out));
  RETURN_IF_ERROR(exporter::WriteRandomHf(r));
  std::fprintf(stderr, "wrote %s (%lld parameters, %s)\n", o.out.c_str(),
               static_cast<long long>(config.num_parameters()), o.dtype.c_str());
  return absl::OkStatus();
}

absl::Status RunInit(const InitOptions& o) {
  if (!o.dtype.empty()) return RunInitHf(o);
  ASSIGN_OR_RETURN(ModelConfig config, LoadModelConfig(o.config));
  if (o.tokenizer.empty()) {
    return absl::InvalidArgumentError("--tokenizer FILE.model is required (a checkpoint carries its tokenizer)");
  }
  ASSIGN_OR_RETURN(data::Tokenizer tok, data::Tokenizer::Load(o.tokenizer));
  if (tok.vocab_size() > config.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat(o.tokenizer, " has more pieces than vocab_size"));
  }
  qat::CausalLM model(config);
  model->InitWeights(o.seed);
  qat::CheckpointWrite w;
  w.config = &config;
  w.model = model.get();
  w.tokenizer_model = &tok.serialized();
  ASSIGN_OR_RETURN(OutputLock lock, OutputLock::Acquire(o.out));
  RETURN_IF_ERROR(qat::SaveCheckpoint(o.out, w));
  std::fprintf(stderr, "wrote %s (%lld parameters)\n", o.out.c_str(),
               static_cast<long long>(config.num_parameters()));
  return absl::OkStatus();
}

absl::Status InitCommand(int argc, char** argv) {
  cxxopts::Options opts("qat init", "Write a randomly initialised checkpoint");
  InitOptions o;
  RETURN_IF_ERROR(ParseArgs(o, opts, argc, argv, "init").status());
  return RunInit(o);
}

}  // namespace qatk::cli
