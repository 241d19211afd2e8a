// Checkpoint directories (docs/ARCHITECTURE.md): config.json,
// model.safetensors (F32, HF names, quantizer state included),
// tokenizer.model, recipe.json (QAT/PTQ only), trainer_state.json and
// optimizer.pt (resume only). Hugging Face folders as downloaded load too:
// sharded BF16/F16/F32 weights (formats/safetensors/hf_weights.h), no
// recipe, and no tokenizer.model (data::Tokenizer is then absent). The
// Hugging Face tokenizer files of a folder (kTokenizerFiles: tokenizer.json
// & co.) are carried through unchanged, so every checkpoint derived from an
// HF folder keeps them.
//
// Saving is atomic: everything is written to "<dir>.tmp-<pid>", then the old
// directory (if any) is renamed to "<dir>.old-<pid>", the new one renamed to
// <dir>, and only then the old one removed; a crash leaves either the old or
// the new checkpoint under <dir> (or, between the two renames, the old one
// under <dir>.old-<pid>).
#ifndef QATK_QAT_MODEL_CHECKPOINT_H_
#define QATK_QAT_MODEL_CHECKPOINT_H_

#include <torch/torch.h>

#include <map>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "formats/model_config.h"
#include "formats/quant/recipe.h"
#include "formats/safetensors/hf_weights.h"
#include "nlohmann/json.hpp"
#include "qat/data/tokenizer.h"
#include "qat/model/transformer.h"

namespace qatk::qat {

// Tokenizer files a checkpoint carries when present.
inline constexpr const char* kTokenizerFiles[] = {
    "tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json",
    "generation_config.json"};
using TokenizerFiles = std::map<std::string, std::string>;  // name -> contents

struct Checkpoint {
  std::string dir;
  ModelConfig config;
  CausalLM model{nullptr};
  std::optional<Recipe> recipe;          // recipe.json, applied to `model`
  // tokenizer.model; absent for a folder without one (tokenizer.json-only
  // Hugging Face folders): commands that tokenize call RequireTokenizer.
  std::optional<data::Tokenizer> tokenizer;
  TokenizerFiles tokenizer_files;        // those of kTokenizerFiles present
  nlohmann::json trainer_state;          // null when absent
};

// Loads config, builds the model, applies recipe.json (if present) and loads
// the weights (model.safetensors or a Hugging Face index and shards, checked
// against config.json). Errors name the file and, for weights, the tensor.
absl::StatusOr<Checkpoint> LoadCheckpoint(const std::string& dir);

// kFailedPrecondition naming the folder when it has no tokenizer.
absl::Status RequireTokenizer(const Checkpoint& c);

// Copies every parameter and buffer of `model` from a safetensors file:
// kNotFound for a missing tensor, kInvalidArgument for a shape mismatch or an
// unexpected tensor (both named), kDataLoss for a corrupt file.
absl::Status LoadWeights(torch::nn::Module& model, const std::string& path, bool tied_embeddings);
// The same from opened weights, tensor by tensor (F32/F16/BF16 converted to
// the parameter's F32 in place; one tensor's pages mapped at a time).
absl::Status LoadWeights(torch::nn::Module& model, const safetensors::HfWeights& weights,
                         bool tied_embeddings);
// Every parameter and buffer as F32 under its state-dict name.
absl::Status SaveWeights(torch::nn::Module& model, const std::string& path);

struct CheckpointWrite {
  const ModelConfig* config = nullptr;
  torch::nn::Module* model = nullptr;
  const std::string* tokenizer_model = nullptr;  // serialized tokenizer.model
  const TokenizerFiles* tokenizer_files = nullptr;  // optional, written as they are
  const Recipe* recipe = nullptr;                // optional
  nlohmann::json trainer_state;                  // optional (null: not written)
  torch::optim::Optimizer* optimizer = nullptr;  // optional
  std::map<std::string, std::string> extra_files;  // name -> contents (metrics.jsonl)
};
absl::Status SaveCheckpoint(const std::string& dir, const CheckpointWrite& w);

// Loads optimizer.pt of `dir` into `optimizer` (kNotFound / kDataLoss), its
// state tensors onto `device` (the parameters' device: a run saved on CUDA
// resumes on CPU and back).
absl::Status LoadOptimizer(const std::string& dir, torch::optim::Optimizer& optimizer,
                           const torch::Device& device = torch::kCPU);

}  // namespace qatk::qat

#endif  // QATK_QAT_MODEL_CHECKPOINT_H_
