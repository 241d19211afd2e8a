#include "export/checkpoint.h"

#include <sys/stat.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "formats/model_arch.h"
#include "formats/util/file_io.h"
#include "formats/util/status_macros.h"

namespace qatk::exporter {
namespace {

bool FileExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

QuantSpec Checkpoint::WeightSpec(const std::string& module) const {
  if (!recipe) return QuantSpec();
  QuantSpec spec = recipe->Resolve(module).weight;
  if (module == "model.embed_tokens" && config.tie_word_embeddings && !spec.enabled()) {
    spec = recipe->Resolve("lm_head").weight;
  }
  return spec;
}

absl::Status Checkpoint::CheckShape(const std::string& name,
                                    const std::vector<int64_t>& shape) const {
  const safetensors::TensorView* t = weights.Find(name);
  if (t == nullptr) {
    return absl::NotFoundError(absl::StrCat(weights.PathOf(name), ": tensor ", name,
                                            " is missing (expected shape ", ShapeString(shape),
                                            ")"));
  }
  if (t->shape != shape) {
    return absl::InvalidArgumentError(absl::StrCat(weights.PathOf(name), ": tensor ", name,
                                                   " has shape ", ShapeString(t->shape),
                                                   ", config.json implies ", ShapeString(shape)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<float>> Checkpoint::ReadTensor(
    const std::string& name, const std::vector<int64_t>& shape) const {
  RETURN_IF_ERROR(CheckShape(name, shape));
  return weights.ReadFloat(name);
}

std::vector<ModuleShape> RecipeModules(const ModelConfig& c) {
  std::vector<ModuleShape> out;
  for (const ArchTensor& t : ArchTensors(c)) {
    if (!t.quantizable()) continue;
    ModuleShape m;
    m.name = t.module;
    m.kind = t.role() == TensorRole::kEmbedding ? ModuleKind::kEmbedding : ModuleKind::kLinear;
    m.rows = t.shape[0];
    m.cols = t.shape[1];
    out.push_back(m);
  }
  for (const ArchCache& k : ArchCaches(c)) {
    ModuleShape m;
    m.name = k.module;
    m.kind = ModuleKind::kCache;
    m.rows = k.rows;
    m.cols = k.cols;
    out.push_back(m);
  }
  return out;
}

absl::StatusOr<Checkpoint> OpenCheckpoint(const std::string& dir) {
  Checkpoint ck;
  ck.dir = dir;
  if (!FileExists(dir + "/config.json")) {
    return absl::NotFoundError(absl::StrCat(dir, ": not a checkpoint directory (no config.json)"));
  }
  ASSIGN_OR_RETURN(ck.config, LoadModelConfig(dir + "/config.json"));
  ASSIGN_OR_RETURN(ck.weights, safetensors::HfWeights::Open(dir));
  RETURN_IF_ERROR(ck.weights.CheckConfig(ck.config));
  // Checked equal to the embedding: the exporters take the embedding as the head.
  if (ck.config.tie_word_embeddings) ck.weights.Drop("lm_head.weight");
  const std::string recipe_path = dir + "/recipe.json";
  if (FileExists(recipe_path)) {
    ASSIGN_OR_RETURN(ck.recipe_json, ReadFileToString(recipe_path));
    ASSIGN_OR_RETURN(Recipe r, ParseRecipe(ck.recipe_json, recipe_path));
    ck.recipe = std::move(r);
  }
  return ck;
}

}  // namespace qatk::exporter
