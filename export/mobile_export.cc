#include "export/mobile_export.h"

#include <cmath>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "export/checkpoint.h"
#include "export/gguf_vocab.h"
#include "formats/tokenizer/gguf_tokenizer.h"
#include "export/tensor_plan.h"
#include "formats/mobile/mobile_format.h"
#include "formats/model_arch.h"
#include "formats/util/file_io.h"
#include "formats/util/status_macros.h"
#include "nlohmann/json.hpp"

#ifndef QATK_VERSION
#define QATK_VERSION "unknown"
#endif

namespace qatk::exporter {
namespace {

using mobile::DType;
using mobile::MobileWriter;
using mobile::TensorInfo;

enum class Kind { kNorm, kFloatWeight, kIntWeight, kKvScale };  // kNorm: any F32 vector

// One file entry, fully checked before anything is written.
struct Planned {
  Kind kind = Kind::kNorm;
  std::string name;             // Hugging Face tensor name
  std::vector<int64_t> shape;   // PyTorch order
  QuantSpec weight;             // kIntWeight: the int_channel spec
  std::vector<float> row_scales;  // kIntWeight: stored weight_scale [rows] (empty: rule)
  float kv_value = 0.0f;        // kKvScale: Store()d scale
  TensorInfo info;              // dtype, dims, scale type, act_* fields
};

LayerQuant ResolveModule(const Checkpoint& ck, const std::string& module) {
  return ck.recipe ? ck.recipe->Resolve(module) : LayerQuant();
}

std::vector<uint64_t> Dims(const std::vector<int64_t>& shape) {
  return std::vector<uint64_t>(shape.begin(), shape.end());
}

// A static scale tensor ([] or [1]), finite and > 0 after Store().
absl::StatusOr<float> ReadScalarScale(const Checkpoint& ck, const std::string& name,
                                      const QuantSpec& spec) {
  const safetensors::TensorView* t = ck.weights.Find(name);
  if (t == nullptr) {
    return absl::NotFoundError(absl::StrCat(ck.weights.path(), ": tensor ", name,
                                            " is missing; the recipe's ", DescribeQuantSpec(spec),
                                            " quantizer needs its static scale"));
  }
  if (!(t->shape.empty() || t->shape == std::vector<int64_t>{1})) {
    return absl::InvalidArgumentError(absl::StrCat(ck.weights.path(), ": tensor ", name,
                                                   " has shape ", ShapeString(t->shape),
                                                   ", expected [] or [1]"));
  }
  ASSIGN_OR_RETURN(std::vector<float> v, ck.weights.ReadFloat(name));
  const float s = v.empty() || !std::isfinite(v[0]) ? 0.0f : StoreScale(spec, v[0]);
  if (!(std::isfinite(s) && s > 0.0f)) {
    return absl::InvalidArgumentError(absl::StrCat(
        ck.weights.path(), ": tensor ", name, " = ", v.empty() ? 0.0f : v[0],
        " is not a usable scale (must be finite and > 0 after ", ScaleTypeName(spec.scale_type),
        " storage; 0 means the quantizer was never calibrated)"));
  }
  return s;
}

// Only static per-tensor scales have a place in the format.
absl::Status CheckStatic(const QuantSpec& spec, const std::string& module, const char* slot) {
  if (spec.scheme == QuantScheme::kIntTensor) return absl::OkStatus();
  return absl::UnimplementedError(absl::StrCat(
      "recipe.json: module ", module, " has ", slot, " scheme ", DescribeQuantSpec(spec),
      "; the mobile format stores only static per-tensor (int_tensor) ", slot, " scales"));
}

void SetActFields(const QuantSpec& spec, float scale, TensorInfo* t) {
  t->act_method = spec.scale_rule == ScaleRule::kLearned ? mobile::ActMethod::kLearned
                                                         : mobile::ActMethod::kCalibrated;
  t->act_scale = scale;
  t->act_bits = static_cast<uint8_t>(spec.bits);
  t->act_narrow = spec.narrow_range;
  t->act_rounding = spec.rounding == Rounding::kHalfEven ? mobile::Rounding::kHalfEven
                                                         : mobile::Rounding::kHalfAwayFromZero;
}

// The stored per-row weight scale [rows, 1] (or [rows]) of `module`.
absl::StatusOr<std::vector<float>> ReadRowScales(const Checkpoint& ck, const std::string& name,
                                                 int64_t rows) {
  const safetensors::TensorView* t = ck.weights.Find(name);
  if (t == nullptr) {
    return absl::NotFoundError(absl::StrCat(ck.weights.path(), ": tensor ", name,
                                            " is missing; the recipe's scale rule needs the "
                                            "stored per-row weight scale [",
                                            rows, ", 1]"));
  }
  if (t->shape != std::vector<int64_t>{rows, 1} && t->shape != std::vector<int64_t>{rows}) {
    return absl::InvalidArgumentError(absl::StrCat(ck.weights.path(), ": tensor ", name,
                                                   " has shape ", ShapeString(t->shape),
                                                   ", expected [", rows, ", 1]"));
  }
  ASSIGN_OR_RETURN(std::vector<float> s, ck.weights.ReadFloat(name));
  for (size_t r = 0; r < s.size(); ++r) {
    if (!std::isfinite(s[r])) {
      return absl::InvalidArgumentError(absl::StrCat(ck.weights.path(), ": tensor ", name,
                                                     " row ", r, " = ", s[r],
                                                     " is not a finite scale"));
    }
  }
  return s;
}

absl::Status PlanIntWeight(const Checkpoint& ck, const std::string& module, const QuantSpec& w,
                           std::set<std::string>* used, Planned* p) {
  switch (w.bits) {
    case 8: p->info.dtype = DType::kInt8Channel; break;
    case 4: p->info.dtype = DType::kInt4Channel; break;
    case 2: p->info.dtype = DType::kInt2Channel; break;
    default:
      return absl::UnimplementedError(absl::StrCat(
          "recipe.json: module ", module, " has weight scheme ", DescribeQuantSpec(w),
          "; the mobile format stores int8, int4 or int2 per-channel codes (tensor ", p->name,
          ")"));
  }
  p->kind = Kind::kIntWeight;
  p->weight = w;
  p->info.scale_type =
      w.scale_type == ScaleType::kF32 ? mobile::ScaleType::kF32 : mobile::ScaleType::kF16;
  const std::string scale_name = module + ".weight_scale";
  if (w.has_stored_scale()) {
    ASSIGN_OR_RETURN(p->row_scales, ReadRowScales(ck, scale_name, p->shape[0]));
    used->insert(scale_name);
  }
  return absl::OkStatus();
}

// A 2-D weight: its weight slot and (linears) its input slot.
absl::Status PlanWeight(const Checkpoint& ck, const ArchTensor& t, std::set<std::string>* used,
                        Planned* p) {
  const LayerQuant lq = ResolveModule(ck, t.module);
  if (lq.weight.enabled() && lq.weight.scheme != QuantScheme::kIntChannel) {
    return absl::InvalidArgumentError(absl::StrCat(
        ck.dir, "/recipe.json: module ", t.module, " has weight scheme ",
        DescribeQuantSpec(lq.weight), ", which the mobile format cannot store (int_channel with "
        "8, 4 or 2 bits, or none); export this checkpoint with --format gguf"));
  }
  if (lq.weight.enabled()) {
    RETURN_IF_ERROR(PlanIntWeight(ck, t.module, lq.weight, used, p));
  } else {
    p->kind = Kind::kFloatWeight;
    p->info.dtype = DType::kF16;
  }
  if (lq.input.enabled() && t.role() != TensorRole::kEmbedding) {
    RETURN_IF_ERROR(CheckStatic(lq.input, t.module, "input"));
    const std::string name = t.module + ".input_scale";
    ASSIGN_OR_RETURN(const float s, ReadScalarScale(ck, name, lq.input));
    SetActFields(lq.input, s, &p->info);
    used->insert(name);
  }
  return absl::OkStatus();
}

// The cache point's static scale (model.layers.N.self_attn.{k,v}_scale) for a
// cache rule; false when none.
absl::StatusOr<bool> PlanKv(const Checkpoint& ck, const ArchCache& cache,
                            std::set<std::string>* used, Planned* p) {
  const LayerQuant lq = ResolveModule(ck, cache.module);
  if (!lq.cache.enabled()) return false;
  RETURN_IF_ERROR(CheckStatic(lq.cache, cache.module, "cache"));
  p->kind = Kind::kKvScale;
  p->name = cache.scale_name;
  p->shape = {1};
  p->info.dtype = DType::kF32;
  ASSIGN_OR_RETURN(p->kv_value, ReadScalarScale(ck, p->name, lq.cache));
  SetActFields(lq.cache, p->kv_value, &p->info);
  used->insert(p->name);
  return true;
}

absl::StatusOr<std::vector<Planned>> PlanTensors(const Checkpoint& ck) {
  std::vector<Planned> plan;
  std::set<std::string> used;
  for (const ArchTensor& t : ArchTensors(ck.config)) {
    RETURN_IF_ERROR(ck.CheckShape(t.hf_name, t.shape));
    Planned p;
    p.name = t.hf_name;
    p.shape = t.shape;
    if (!t.quantizable()) {
      p.kind = Kind::kNorm;
      p.info.dtype = DType::kF32;
    } else {
      RETURN_IF_ERROR(PlanWeight(ck, t, &used, &p));
    }
    used.insert(p.name);
    plan.push_back(std::move(p));
  }
  // Quantizer state of the cache points goes after every weight.
  for (const ArchCache& cache : ArchCaches(ck.config)) {
    Planned p;
    ASSIGN_OR_RETURN(const bool has, PlanKv(ck, cache, &used, &p));
    if (has) plan.push_back(std::move(p));
  }
  for (const auto& t : ck.weights.tensors()) {
    if (used.count(t.name)) continue;
    return absl::InvalidArgumentError(absl::StrCat(
        ck.weights.path(), ": tensor ", t.name,
        IsQuantizerState(t.name)
            ? " is quantizer state that the recipe does not use; the mobile file would not "
              "match the trained model"
            : absl::StrCat(" is unexpected for a ", ck.config.model_type, " model with ",
                           ck.config.num_hidden_layers, " layers (tie_word_embeddings=",
                           ck.config.tie_word_embeddings ? "true" : "false", ")")));
  }
  for (Planned& p : plan) {
    p.info.name = p.name;
    p.info.dims = Dims(p.shape);
  }
  return plan;
}

absl::StatusOr<mobile::Tokenizer> MakeTokenizer(const Checkpoint& ck) {
  ASSIGN_OR_RETURN(GgufVocab v, LoadCheckpointVocab(ck.dir, ck.config.vocab_size,
                                                    ck.config.bos_token_id, ck.config.eos_token_id));
  mobile::Tokenizer tok;
  tok.model = v.model;
  tok.pre = v.pre == "default" ? "" : v.pre;
  tok.tokens = std::move(v.tokens);
  tok.scores = v.scores.empty() ? std::vector<float>(tok.tokens.size(), 0.0f) : std::move(v.scores);
  tok.types = std::move(v.types);
  tok.merges = std::move(v.merges);
  auto id = [&](const char* key) {
    const std::optional<uint32_t> x = v.SpecialId(key);
    return x ? static_cast<int32_t>(*x) : -1;
  };
  tok.bos_id = id("bos"), tok.eos_id = id("eos"), tok.unk_id = id("unk"), tok.pad_id = id("pad");
  // llama.cpp's defaults where the vocabulary names no flag.
  tok.add_bos = v.AddSpecial("bos").value_or(tokenizer::DefaultAddBos(v.model, v.pre));
  tok.add_eos = v.AddSpecial("eos").value_or(false);
  tok.add_space_prefix = v.add_space_prefix.value_or(v.model == "llama");
  return tok;
}

// {"recipe": <recipe.json or null>, "provenance": {...}} (docs/formats/mobile.md §4).
absl::StatusOr<std::string> RecipeSection(const Checkpoint& ck) {
  nlohmann::json prov = {{"tool", "qatkit"}, {"version", QATK_VERSION}, {"source", ck.dir}};
  const std::string state_path = ck.dir + "/trainer_state.json";
  nlohmann::json state;
  if (absl::StatusOr<std::string> text = ReadFileToString(state_path); text.ok()) {
    state = nlohmann::json::parse(*text, nullptr, false);
    if (state.is_discarded() || !state.is_object()) {
      return absl::DataLossError(absl::StrCat(state_path, ": not a JSON object"));
    }
    if (state.contains("step")) prov["step"] = state["step"];
  }
  // A recipe with trainer state was trained with it (QAT); without, it was
  // applied post-training (qat quantize writes no trainer state).
  prov["method"] = !ck.recipe ? "fp" : state.is_null() ? "ptq" : "qat";
  nlohmann::json recipe = nullptr;
  if (ck.recipe) {
    recipe = nlohmann::json::parse(ck.recipe_json, nullptr, false);
    if (recipe.is_discarded()) recipe = ck.recipe_json;  // parsed before; keep as text
  }
  return nlohmann::json{{"recipe", recipe}, {"provenance", prov}}.dump();
}

// Rows quantized with the stored scales exactly as the fake-quant graph does
// (Store(s), then the codec). A learned scale may have been trained below
// zero (LSQ has no sign constraint): q = clamp(round(x / s)) and q * s are
// still what the model computed, so the signed scale is stored as is.
absl::StatusOr<QuantizedMatrix> QuantizeStoredScales(const Planned& p, const std::vector<float>& x,
                                                     int64_t rows, int64_t cols) {
  QuantizedMatrix q;
  q.spec = p.weight;
  q.rows = rows, q.cols = cols;
  q.codes.resize(rows * cols);
  q.scales.resize(rows);
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x.data() + r * cols;
    for (int64_t i = 0; i < cols; ++i) {
      if (!std::isfinite(xr[i])) {
        return absl::InvalidArgumentError(
            absl::StrCat("non-finite value at row ", r, " column ", i));
      }
    }
    q.scales[r] = StoreScale(p.weight, p.row_scales[r]);
    QuantizeWithScale(p.weight, xr, cols, q.scales[r], q.codes.data() + r * cols);
  }
  return q;
}

absl::Status WriteOne(const Checkpoint& ck, const Planned& p, MobileWriter* w) {
  if (p.kind == Kind::kKvScale) return w->WriteFloats({p.kv_value});
  ASSIGN_OR_RETURN(std::vector<float> x, ck.ReadTensor(p.name, p.shape));  // [rows, cols]
  if (p.kind != Kind::kIntWeight) return w->WriteFloats(x);
  const int64_t rows = p.shape[0], cols = static_cast<int64_t>(x.size()) / rows;
  absl::StatusOr<QuantizedMatrix> q =
      p.row_scales.empty() ? QuantizeMatrix(p.weight, x.data(), rows, cols, {})
                           : QuantizeStoredScales(p, x, rows, cols);
  if (!q.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(ck.weights.path(), ": tensor ", p.name, ": ",
                                                   q.status().message()));
  }
  const absl::Status s = w->WriteCodes(q->codes, q->scales);
  // Keep the writer's code: a full disk is kUnavailable (exit 1), not bad input.
  if (!s.ok()) return absl::Status(s.code(), absl::StrCat("tensor ", p.name, ": ", s.message()));
  return absl::OkStatus();
}

}  // namespace

absl::Status ExportMobile(const MobileExportOptions& options) {
  ASSIGN_OR_RETURN(Checkpoint ck, OpenCheckpoint(options.model_dir));
  if (ck.recipe) RETURN_IF_ERROR(ck.recipe->Validate(RecipeModules(ck.config)));
  ASSIGN_OR_RETURN(std::vector<Planned> plan, PlanTensors(ck));
  ASSIGN_OR_RETURN(mobile::Tokenizer tok, MakeTokenizer(ck));
  ASSIGN_OR_RETURN(std::string config_json, ReadFileToString(ck.dir + "/config.json"));
  ASSIGN_OR_RETURN(std::string recipe_json, RecipeSection(ck));

  ASSIGN_OR_RETURN(MobileWriter w, MobileWriter::Create(options.out));
  RETURN_IF_ERROR(w.SetConfigJson(std::move(config_json)));
  RETURN_IF_ERROR(w.SetTokenizer(std::move(tok)));
  RETURN_IF_ERROR(w.SetRecipeJson(std::move(recipe_json)));
  for (const Planned& p : plan) {
    const absl::Status s = w.DeclareTensor(p.info);
    if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat("tensor ", p.name, ": ", s.message()));
  }
  for (const Planned& p : plan) RETURN_IF_ERROR(WriteOne(ck, p, &w));
  return w.Finish();
}

}  // namespace qatk::exporter
