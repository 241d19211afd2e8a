// A checkpoint directory opened for export (contract: docs/ARCHITECTURE.md):
// config.json, the weights (model.safetensors, or a Hugging Face folder's
// index and shards in F32/F16/BF16; memory-mapped, read tensor by tensor),
// tokenizer.model or tokenizer.json (export/gguf_vocab.h reads them), and
// recipe.json when the checkpoint is quantized.
#ifndef QATK_EXPORT_CHECKPOINT_H_
#define QATK_EXPORT_CHECKPOINT_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "formats/model_config.h"
#include "formats/quant/recipe.h"
#include "formats/quant/spec.h"
#include "formats/safetensors/hf_weights.h"

namespace qatk::exporter {

struct Checkpoint {
  std::string dir;
  ModelConfig config;
  safetensors::HfWeights weights;
  std::optional<Recipe> recipe;  // absent for full-precision checkpoints
  std::string recipe_json;       // recipe.json as found on disk ("" if absent)

  std::string tokenizer_path() const { return dir + "/tokenizer.model"; }
  // The weight quantizer of a recipe module (disabled spec when no recipe or
  // no rule names the weight slot). For a tied embedding the embedding's rule
  // wins, else the lm_head rule (the tensor is also the output head).
  QuantSpec WeightSpec(const std::string& module) const;
  // The tensor as float32 [n_elements], checked against `shape` (PyTorch
  // order); kNotFound / kInvalidArgument name the file and the tensor.
  absl::StatusOr<std::vector<float>> ReadTensor(const std::string& name,
                                                const std::vector<int64_t>& shape) const;
  // Shape check only (no data read).
  absl::Status CheckShape(const std::string& name, const std::vector<int64_t>& shape) const;
};

// Opens `dir` and checks the weights against config.json
// (HfWeights::CheckConfig); a tied model's lm_head equal to the embedding is
// dropped. Errors name the missing or bad file and tensor.
absl::StatusOr<Checkpoint> OpenCheckpoint(const std::string& dir);

// The recipe modules of a config with their weight shapes (for
// Recipe::Validate): every linear, the embedding and lm_head unless tied.
std::vector<ModuleShape> RecipeModules(const ModelConfig& c);

// "[2, 3]".
std::string ShapeString(const std::vector<int64_t>& shape);

}  // namespace qatk::exporter

#endif  // QATK_EXPORT_CHECKPOINT_H_
