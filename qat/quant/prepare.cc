#include "qat/quant/prepare.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "formats/util/status_macros.h"
#include "qat/quant/qlinear.h"

namespace qatk::qat {
namespace {

// Calls fn(name, module) for every named submodule (the root excluded).
template <typename Fn>
void ForEachModule(torch::nn::Module& model, Fn&& fn) {
  for (const auto& item : model.named_modules(/*name_prefix=*/"", /*include_self=*/false)) {
    fn(item.key(), *item.value());
  }
}

// "model.layers.0.self_attn.k_cache" -> ("model.layers.0.self_attn", "k_scale").
std::pair<std::string, std::string> CacheStateName(const std::string& name) {
  const size_t dot = name.rfind('.');
  const std::string parent = dot == std::string::npos ? "" : name.substr(0, dot);
  std::string leaf = dot == std::string::npos ? name : name.substr(dot + 1);
  if (absl::EndsWith(leaf, "_cache")) leaf.resize(leaf.size() - 6);
  return {parent, leaf + "_scale"};
}

}  // namespace

std::vector<ModuleShape> QuantizableModules(torch::nn::Module& model, int64_t head_dim) {
  std::vector<ModuleShape> out;
  ForEachModule(model, [&](const std::string& name, torch::nn::Module& m) {
    if (auto* l = m.as<QLinearImpl>()) {
      out.push_back({name, ModuleKind::kLinear, l->out_features, l->in_features});
    } else if (auto* e = m.as<QEmbeddingImpl>()) {
      out.push_back({name, ModuleKind::kEmbedding, e->num_embeddings, e->dim});
    } else if (m.as<KvQuantImpl>()) {
      out.push_back({name, ModuleKind::kCache, 0, head_dim});
    }
  });
  return out;
}

absl::Status ApplyRecipe(torch::nn::Module& model, const Recipe& recipe, int64_t head_dim) {
  RETURN_IF_ERROR(recipe.Validate(QuantizableModules(model, head_dim)));
  std::map<std::string, torch::nn::Module*> by_name;
  by_name[""] = &model;
  ForEachModule(model, [&](const std::string& name, torch::nn::Module& m) { by_name[name] = &m; });
  ForEachModule(model, [&](const std::string& name, torch::nn::Module& m) {
    if (auto* l = m.as<QLinearImpl>()) {
      l->Configure(recipe.Resolve(name));
    } else if (auto* e = m.as<QEmbeddingImpl>()) {
      e->Configure(recipe.Resolve(name));
    } else if (auto* kv = m.as<KvQuantImpl>()) {
      const LayerQuant lq = recipe.Resolve(name);
      if (!lq.cache.enabled()) return;
      auto [parent, state] = CacheStateName(name);
      kv->Configure(lq.cache, *by_name.at(parent), state);
    }
  });
  return absl::OkStatus();
}

void SetQuantMode(torch::nn::Module& model, QuantMode mode) {
  ForEachModule(model, [&](const std::string&, torch::nn::Module& m) {
    if (auto* l = m.as<QLinearImpl>()) l->SetMode(mode);
    if (auto* e = m.as<QEmbeddingImpl>()) e->SetMode(mode);
    if (auto* kv = m.as<KvQuantImpl>()) kv->SetMode(mode);
  });
}

void FreezeQuantizers(torch::nn::Module& model) {
  ForEachModule(model, [&](const std::string&, torch::nn::Module& m) {
    if (auto* l = m.as<QLinearImpl>()) l->Freeze();
    if (auto* e = m.as<QEmbeddingImpl>()) e->Freeze();
    if (auto* kv = m.as<KvQuantImpl>()) kv->Freeze();
  });
}

absl::StatusOr<QuantizedMatrix> ConvertWeight(const torch::Tensor& weight, const QuantSpec& spec,
                                              const torch::Tensor& weight_scale) {
  torch::NoGradGuard no_grad;
  if (weight.dim() != 2) return absl::InvalidArgumentError("ConvertWeight expects a [R, C] weight");
  const torch::Tensor w = weight.detach().to(torch::kCPU, torch::kFloat).contiguous();
  std::vector<float> scales;
  if (weight_scale.defined()) {
    const torch::Tensor s = weight_scale.detach().to(torch::kCPU, torch::kFloat).contiguous();
    const int64_t per_row = spec.is_block() ? w.size(1) / spec.block_size() : 1;
    if (s.numel() != w.size(0) * per_row) {
      return absl::InvalidArgumentError(absl::StrCat("weight_scale has ", s.numel(), " elements for ", w.size(0),
                                                     " rows of ", per_row));
    }
    scales.assign(s.data_ptr<float>(), s.data_ptr<float>() + s.numel());
  }
  return QuantizeMatrix(spec, w.data_ptr<float>(), w.size(0), w.size(1), scales);
}

absl::StatusOr<std::map<std::string, QuantizedMatrix>> ConvertWeights(torch::nn::Module& model) {
  std::map<std::string, QuantizedMatrix> out;
  absl::Status status;
  ForEachModule(model, [&](const std::string& name, torch::nn::Module& m) {
    if (!status.ok()) return;
    WeightQuantizer* wq = nullptr;
    torch::Tensor w;
    if (auto* l = m.as<QLinearImpl>()) {
      wq = &l->weight_quantizer();
      w = l->weight;
    } else if (auto* e = m.as<QEmbeddingImpl>()) {
      wq = &e->weight_quantizer();
      w = e->weight;
    }
    if (wq == nullptr || !wq->spec().enabled()) return;
    auto qm = ConvertWeight(w, wq->spec(), wq->scale());
    if (!qm.ok()) {
      status = absl::InvalidArgumentError(absl::StrCat(name, ".weight: ", qm.status().message()));
      return;
    }
    out.emplace(name, *std::move(qm));
  });
  RETURN_IF_ERROR(status);
  return out;
}

absl::StatusOr<Recipe> WithLearnedQ4_0Scales(const Recipe& recipe, int* converted) {
  Recipe out = recipe;
  int n = 0;
  bool any = false;
  for (RecipeRule& rule : out.rules) {
    if (!rule.has_weight || rule.weight.scheme != QuantScheme::kQ4_0) continue;
    any = true;
    if (rule.weight.scale_rule != ScaleRule::kLearned) {
      rule.weight.scale_rule = ScaleRule::kLearned;
      ++n;
    }
  }
  if (!any) {
    return absl::InvalidArgumentError(absl::StrCat(recipe.source, ": recipe '", recipe.name, "' has no q4_0 weights"));
  }
  if (converted) *converted = n;
  return out;
}

}  // namespace qatk::qat
