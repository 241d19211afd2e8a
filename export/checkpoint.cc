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

namespace {

absl::Status CheckTokenId(const char* key, int64_t config_id, int32_t spm_id,
                          const std::string& tok_path) {
  if (spm_id < 0 || config_id != spm_id) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: ", key, " ", config_id,
                                                   " differs from ", tok_path, "'s id ", spm_id));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<spm::SpmVocab> LoadCheckedVocab(const Checkpoint& ck) {
  spm::SpmVocab v;
  const std::string err = spm::LoadSpmVocab(ck.tokenizer_path(), &v);
  if (!err.empty()) return absl::NotFoundError(err);
  const ModelConfig& c = ck.config;
  if (static_cast<int64_t>(v.pieces.size()) > c.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat(ck.tokenizer_path(), " has ", v.pieces.size(),
                                                   " pieces, more than config.json vocab_size ",
                                                   c.vocab_size));
  }
  // Embedding rows past the tokenizer (Qwen pads its vocabulary to a
  // multiple of 128) get unused pieces, as llama.cpp's converter names them.
  for (int64_t id = static_cast<int64_t>(v.pieces.size()); id < c.vocab_size; ++id) {
    v.pieces.push_back(absl::StrCat("[PAD", id, "]"));
    v.scores.push_back(-10000.0f);
    v.types.push_back(spm::kUnused);
  }
  RETURN_IF_ERROR(CheckTokenId("bos_token_id", c.bos_token_id, v.bos_id, ck.tokenizer_path()));
  RETURN_IF_ERROR(CheckTokenId("eos_token_id", c.eos_token_id, v.eos_id, ck.tokenizer_path()));
  return v;
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
