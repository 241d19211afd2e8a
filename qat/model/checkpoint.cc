#include "qat/model/checkpoint.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/match.h"
#include "formats/safetensors/hf_weights.h"
#include "formats/safetensors/safetensors.h"
#include "formats/util/file_io.h"
#include "formats/util/status_macros.h"
#include "qat/quant/prepare.h"

namespace qatk::qat {
namespace {


std::map<std::string, torch::Tensor> StateDict(torch::nn::Module& model) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : model.named_parameters()) out[p.key()] = p.value();
  for (const auto& b : model.named_buffers()) out[b.key()] = b.value();
  return out;
}

std::string ShapeString(const std::vector<int64_t>& s) { return absl::StrCat("[", absl::StrJoin(s, ", "), "]"); }

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

absl::Status SaveWeights(torch::nn::Module& model, const std::string& path) {
  safetensors::SafetensorsWriter w;
  w.SetMetadata("format", "pt");
  for (auto& [name, t] : StateDict(model)) {
    torch::Tensor c = t.detach().to(torch::kCPU, torch::kFloat32).contiguous();
    std::vector<int64_t> shape(c.sizes().begin(), c.sizes().end());
    RETURN_IF_ERROR(w.AddF32(name, shape, absl::MakeConstSpan(c.data_ptr<float>(), c.numel())));
  }
  return w.Write(path);
}

absl::Status LoadWeights(torch::nn::Module& model, const std::string& path, bool tied_embeddings) {
  ASSIGN_OR_RETURN(safetensors::HfWeights file, safetensors::HfWeights::OpenFile(path));
  return LoadWeights(model, file, tied_embeddings);
}

absl::Status LoadWeights(torch::nn::Module& model, const safetensors::HfWeights& file,
                         bool tied_embeddings) {
  std::map<std::string, torch::Tensor> state = StateDict(model);
  for (const safetensors::TensorView& v : file.tensors()) {
    if (state.count(v.name)) continue;
    if (absl::EndsWith(v.name, "rotary_emb.inv_freq")) continue;     // HF buffers we recompute
    if (tied_embeddings && v.name == "lm_head.weight") continue;     // tied: the embedding is the head
    return absl::InvalidArgumentError(absl::StrCat(
        file.PathOf(v.name), ": unexpected tensor '", v.name,
        "' (not in the model; wrong config.json or recipe.json?)"));
  }
  torch::NoGradGuard no_grad;
  // In file order: a sharded folder is read one shard after the other.
  std::vector<std::pair<const safetensors::TensorView*, torch::Tensor>> order;
  for (auto& [name, t] : state) {
    const safetensors::TensorView* v = file.Find(name);
    if (v == nullptr) return absl::NotFoundError(absl::StrCat(file.path(), ": missing tensor '", name, "'"));
    std::vector<int64_t> want(t.sizes().begin(), t.sizes().end());
    // A scalar and a [1] tensor are the same quantizer state.
    const bool same = v->shape == want || (v->n_elements() == 1 && t.numel() == 1);
    if (!same) {
      return absl::InvalidArgumentError(absl::StrCat(file.PathOf(name), ": tensor '", name,
                                                     "' has shape ", ShapeString(v->shape),
                                                     ", the model expects ", ShapeString(want)));
    }
    order.emplace_back(v, t);
  }
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [v, t] : order) {
    if (t.device().is_cpu() && t.scalar_type() == torch::kFloat32 && t.is_contiguous()) {
      RETURN_IF_ERROR(file.ReadInto(v->name, absl::MakeSpan(t.data_ptr<float>(), t.numel())));
      continue;
    }
    ASSIGN_OR_RETURN(std::vector<float> data, file.ReadFloat(v->name));
    t.copy_(torch::from_blob(data.data(), {static_cast<int64_t>(data.size())}, torch::kFloat32)
                .view(t.sizes()));
  }
  return absl::OkStatus();
}

absl::Status RequireTokenizer(const Checkpoint& c) {
  if (c.tokenizer) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      c.dir, " has no tokenizer.model (SentencePiece); this command needs one"));
}

absl::StatusOr<Checkpoint> LoadCheckpoint(const std::string& dir) {
  Checkpoint c;
  c.dir = dir;
  if (!Exists(dir)) return absl::NotFoundError(absl::StrCat("checkpoint '", dir, "' does not exist"));
  ASSIGN_OR_RETURN(c.config, LoadModelConfig(dir + "/config.json"));
  c.model = CausalLM(c.config);
  const std::string recipe_path = dir + "/recipe.json";
  if (Exists(recipe_path)) {
    ASSIGN_OR_RETURN(Recipe r, LoadRecipe(recipe_path));
    RETURN_IF_ERROR(ApplyRecipe(*c.model, r, c.config.head_dim));
    c.recipe = std::move(r);
  }
  ASSIGN_OR_RETURN(safetensors::HfWeights weights, safetensors::HfWeights::Open(dir));
  RETURN_IF_ERROR(weights.CheckConfig(c.config));
  RETURN_IF_ERROR(LoadWeights(*c.model, weights, c.config.tie_word_embeddings));
  // tokenizer.model when present. A Hugging Face folder may carry only
  // tokenizer.json: that is loaded here once data::Tokenizer reads it.
  const std::string tok_path = dir + "/tokenizer.model";
  if (Exists(tok_path)) {
    ASSIGN_OR_RETURN(data::Tokenizer tok, data::Tokenizer::Load(tok_path));
    if (tok.vocab_size() > c.config.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(tok_path, " has ", tok.vocab_size(),
                                                     " pieces but config.json vocab_size is ",
                                                     c.config.vocab_size));
    }
    c.tokenizer = std::move(tok);
  }
  for (const char* name : kTokenizerFiles) {
    const std::string path = dir + "/" + name;
    if (!Exists(path)) continue;
    ASSIGN_OR_RETURN(c.tokenizer_files[name], ReadFileToString(path));
  }
  const std::string state_path = dir + "/trainer_state.json";
  if (Exists(state_path)) {
    ASSIGN_OR_RETURN(std::string text, ReadFileToString(state_path));
    c.trainer_state = nlohmann::json::parse(text, nullptr, false);
    if (c.trainer_state.is_discarded()) return absl::DataLossError(absl::StrCat(state_path, ": not valid JSON"));
  }
  return c;
}

absl::Status LoadOptimizer(const std::string& dir, torch::optim::Optimizer& optimizer,
                           const torch::Device& device) {
  const std::string path = dir + "/optimizer.pt";
  if (!Exists(path)) return absl::NotFoundError(absl::StrCat(path, " is missing (needed for --resume)"));
  try {
    torch::load(optimizer, path, device);
  } catch (const std::exception& e) {
    return absl::DataLossError(absl::StrCat(path, ": cannot load optimizer state: ", e.what()));
  }
  return absl::OkStatus();
}

namespace {

// Writes every file of the checkpoint into the folder `tmp`.
absl::Status WriteCheckpointFiles(const std::string& tmp, const CheckpointWrite& w) {
  RETURN_IF_ERROR(MakeDirs(tmp));
  RETURN_IF_ERROR(SaveModelConfig(*w.config, tmp + "/config.json"));
  RETURN_IF_ERROR(SaveWeights(*w.model, tmp + "/model.safetensors"));
  if (w.tokenizer_model != nullptr) {
    RETURN_IF_ERROR(WriteFileAtomic(tmp + "/tokenizer.model", *w.tokenizer_model));
  }
  if (w.tokenizer_files) {
    for (const auto& [name, contents] : *w.tokenizer_files) {
      RETURN_IF_ERROR(WriteFileAtomic(tmp + "/" + name, contents));
    }
  }
  if (w.recipe) RETURN_IF_ERROR(WriteFileAtomic(tmp + "/recipe.json", RecipeToJson(*w.recipe)));
  if (!w.trainer_state.is_null()) {
    RETURN_IF_ERROR(WriteFileAtomic(tmp + "/trainer_state.json", w.trainer_state.dump(2) + "\n"));
  }
  for (const auto& [name, contents] : w.extra_files) {
    RETURN_IF_ERROR(WriteFileAtomic(tmp + "/" + name, contents));
  }
  if (w.optimizer) {
    try {
      torch::save(*w.optimizer, tmp + "/optimizer.pt");
    } catch (const std::exception& e) {
      return absl::UnavailableError(absl::StrCat("cannot write ", tmp, "/optimizer.pt: ", e.what()));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status SaveCheckpoint(const std::string& dir, const CheckpointWrite& w) {
  QATK_CHECK(w.config && w.model, "SaveCheckpoint needs config and model");
  if (w.tokenizer_model == nullptr &&
      (w.tokenizer_files == nullptr || w.tokenizer_files->count("tokenizer.json") == 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot save ", dir, ": no tokenizer (tokenizer.model or tokenizer.json)"));
  }
  const std::string pid = std::to_string(::getpid());
  const std::string tmp = dir + ".tmp-" + pid, old = dir + ".old-" + pid;
  RETURN_IF_ERROR(RemoveAll(tmp));
  if (absl::Status s = WriteCheckpointFiles(tmp, w); !s.ok()) {
    // A full disk must not fill up further with every failed save.
    (void)RemoveAll(tmp);
    return s;
  }
  const bool had_old = Exists(dir);
  if (had_old && std::rename(dir.c_str(), old.c_str()) != 0) {
    const std::string err = std::strerror(errno);
    (void)RemoveAll(tmp);
    return absl::UnavailableError(absl::StrCat("cannot move '", dir, "' aside: ", err));
  }
  if (std::rename(tmp.c_str(), dir.c_str()) != 0) {
    const std::string err = std::strerror(errno);
    if (had_old) std::rename(old.c_str(), dir.c_str());
    (void)RemoveAll(tmp);
    return absl::UnavailableError(absl::StrCat("cannot rename '", tmp, "' to '", dir, "': ", err));
  }
  if (had_old) RETURN_IF_ERROR(RemoveAll(old));
  return absl::OkStatus();
}

}  // namespace qatk::qat
