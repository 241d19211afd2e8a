#include "formats/model_arch.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "formats/util/status_macros.h"

namespace qatk {
namespace {

using R = TensorRole;
using S = TensorSlot;

bool Untied(const ModelConfig& c) { return !c.tie_word_embeddings; }

// Globals shared by every architecture.
constexpr TensorDef kEmbedding[] = {
    {"model.embed_tokens.weight", "token_embd.weight", R::kEmbedding, S::kTokenEmbd, Dim::kVocab,
     Dim::kHidden},
};
constexpr TensorDef kFinal[] = {
    {"model.norm.weight", "output_norm.weight", R::kNorm, S::kOutputNorm, Dim::kHidden, Dim::kNone},
    {"lm_head.weight", "output.weight", R::kOutputHead, S::kOutput, Dim::kVocab, Dim::kHidden,
     RopePermute::kNone, Untied, /*tied_to_embedding=*/true},
};
constexpr CacheDef kKvCache[] = {
    {"self_attn.k_cache", "self_attn.k_scale", CacheKind::kKey},
    {"self_attn.v_cache", "self_attn.v_scale", CacheKind::kValue},
};

// Llama: pre-norm blocks, SwiGLU. llama.cpp's llama arch uses NORM rope, so
// GGUF q/k rows are permuted.
constexpr TensorDef kLlamaLayer[] = {
    {"input_layernorm.weight", "attn_norm.weight", R::kNorm, S::kAttnNorm, Dim::kHidden, Dim::kNone},
    {"self_attn.q_proj.weight", "attn_q.weight", R::kLinear, S::kAttnQ, Dim::kQ, Dim::kHidden,
     RopePermute::kQueryHeads},
    {"self_attn.k_proj.weight", "attn_k.weight", R::kLinear, S::kAttnK, Dim::kKv, Dim::kHidden,
     RopePermute::kKvHeads},
    {"self_attn.v_proj.weight", "attn_v.weight", R::kLinear, S::kAttnV, Dim::kKv, Dim::kHidden},
    {"self_attn.o_proj.weight", "attn_output.weight", R::kLinear, S::kAttnOutput, Dim::kHidden,
     Dim::kQ},
    {"post_attention_layernorm.weight", "ffn_norm.weight", R::kNorm, S::kFfnNorm, Dim::kHidden,
     Dim::kNone},
    {"mlp.gate_proj.weight", "ffn_gate.weight", R::kLinear, S::kFfnGate, Dim::kFfn, Dim::kHidden},
    {"mlp.up_proj.weight", "ffn_up.weight", R::kLinear, S::kFfnUp, Dim::kFfn, Dim::kHidden},
    {"mlp.down_proj.weight", "ffn_down.weight", R::kLinear, S::kFfnDown, Dim::kHidden, Dim::kFfn},
};

// Qwen2: Llama's block with q/k/v biases. llama.cpp's qwen2 arch uses NEOX
// rope (HF's halves), so nothing is permuted.
constexpr TensorDef kQwen2Layer[] = {
    {"input_layernorm.weight", "attn_norm.weight", R::kNorm, S::kAttnNorm, Dim::kHidden, Dim::kNone},
    {"self_attn.q_proj.weight", "attn_q.weight", R::kLinear, S::kAttnQ, Dim::kQ, Dim::kHidden},
    {"self_attn.q_proj.bias", "attn_q.bias", R::kBias, S::kAttnQBias, Dim::kQ, Dim::kNone},
    {"self_attn.k_proj.weight", "attn_k.weight", R::kLinear, S::kAttnK, Dim::kKv, Dim::kHidden},
    {"self_attn.k_proj.bias", "attn_k.bias", R::kBias, S::kAttnKBias, Dim::kKv, Dim::kNone},
    {"self_attn.v_proj.weight", "attn_v.weight", R::kLinear, S::kAttnV, Dim::kKv, Dim::kHidden},
    {"self_attn.v_proj.bias", "attn_v.bias", R::kBias, S::kAttnVBias, Dim::kKv, Dim::kNone},
    {"self_attn.o_proj.weight", "attn_output.weight", R::kLinear, S::kAttnOutput, Dim::kHidden,
     Dim::kQ},
    {"post_attention_layernorm.weight", "ffn_norm.weight", R::kNorm, S::kFfnNorm, Dim::kHidden,
     Dim::kNone},
    {"mlp.gate_proj.weight", "ffn_gate.weight", R::kLinear, S::kFfnGate, Dim::kFfn, Dim::kHidden},
    {"mlp.up_proj.weight", "ffn_up.weight", R::kLinear, S::kFfnUp, Dim::kFfn, Dim::kHidden},
    {"mlp.down_proj.weight", "ffn_down.weight", R::kLinear, S::kFfnDown, Dim::kHidden, Dim::kFfn},
};

// Qwen3: Llama's block with per-head q/k RMSNorm (plain w) before RoPE; NEOX
// rope in llama.cpp.
constexpr TensorDef kQwen3Layer[] = {
    {"input_layernorm.weight", "attn_norm.weight", R::kNorm, S::kAttnNorm, Dim::kHidden, Dim::kNone},
    {"self_attn.q_proj.weight", "attn_q.weight", R::kLinear, S::kAttnQ, Dim::kQ, Dim::kHidden},
    {"self_attn.k_proj.weight", "attn_k.weight", R::kLinear, S::kAttnK, Dim::kKv, Dim::kHidden},
    {"self_attn.v_proj.weight", "attn_v.weight", R::kLinear, S::kAttnV, Dim::kKv, Dim::kHidden},
    {"self_attn.o_proj.weight", "attn_output.weight", R::kLinear, S::kAttnOutput, Dim::kHidden,
     Dim::kQ},
    {"self_attn.q_norm.weight", "attn_q_norm.weight", R::kNorm, S::kAttnQNorm, Dim::kHeadDim,
     Dim::kNone},
    {"self_attn.k_norm.weight", "attn_k_norm.weight", R::kNorm, S::kAttnKNorm, Dim::kHeadDim,
     Dim::kNone},
    {"post_attention_layernorm.weight", "ffn_norm.weight", R::kNorm, S::kFfnNorm, Dim::kHidden,
     Dim::kNone},
    {"mlp.gate_proj.weight", "ffn_gate.weight", R::kLinear, S::kFfnGate, Dim::kFfn, Dim::kHidden},
    {"mlp.up_proj.weight", "ffn_up.weight", R::kLinear, S::kFfnUp, Dim::kFfn, Dim::kHidden},
    {"mlp.down_proj.weight", "ffn_down.weight", R::kLinear, S::kFfnDown, Dim::kHidden, Dim::kFfn},
};

// Gemma 3 text: per-head q/k norms, norms after attention and the FFN,
// GEGLU, (1 + w) norms. NEOX rope in llama.cpp: no permutation.
constexpr TensorDef kGemma3Layer[] = {
    {"input_layernorm.weight", "attn_norm.weight", R::kNorm, S::kAttnNorm, Dim::kHidden, Dim::kNone},
    {"self_attn.q_proj.weight", "attn_q.weight", R::kLinear, S::kAttnQ, Dim::kQ, Dim::kHidden},
    {"self_attn.k_proj.weight", "attn_k.weight", R::kLinear, S::kAttnK, Dim::kKv, Dim::kHidden},
    {"self_attn.v_proj.weight", "attn_v.weight", R::kLinear, S::kAttnV, Dim::kKv, Dim::kHidden},
    {"self_attn.o_proj.weight", "attn_output.weight", R::kLinear, S::kAttnOutput, Dim::kHidden,
     Dim::kQ},
    {"self_attn.q_norm.weight", "attn_q_norm.weight", R::kNorm, S::kAttnQNorm, Dim::kHeadDim,
     Dim::kNone},
    {"self_attn.k_norm.weight", "attn_k_norm.weight", R::kNorm, S::kAttnKNorm, Dim::kHeadDim,
     Dim::kNone},
    {"post_attention_layernorm.weight", "post_attention_norm.weight", R::kNorm, S::kPostAttnNorm,
     Dim::kHidden, Dim::kNone},
    {"pre_feedforward_layernorm.weight", "ffn_norm.weight", R::kNorm, S::kFfnNorm, Dim::kHidden,
     Dim::kNone},
    {"mlp.gate_proj.weight", "ffn_gate.weight", R::kLinear, S::kFfnGate, Dim::kFfn, Dim::kHidden},
    {"mlp.up_proj.weight", "ffn_up.weight", R::kLinear, S::kFfnUp, Dim::kFfn, Dim::kHidden},
    {"mlp.down_proj.weight", "ffn_down.weight", R::kLinear, S::kFfnDown, Dim::kHidden, Dim::kFfn},
    {"post_feedforward_layernorm.weight", "post_ffw_norm.weight", R::kNorm, S::kPostFfwNorm,
     Dim::kHidden, Dim::kNone},
};

constexpr ArchDef kLlama = {"llama", "LlamaForCausalLM", "llama", /*norm_plus_one=*/false,
                            kEmbedding, kLlamaLayer, kFinal, kKvCache};
constexpr ArchDef kQwen2 = {"qwen2", "Qwen2ForCausalLM", "qwen2", /*norm_plus_one=*/false,
                            kEmbedding, kQwen2Layer, kFinal, kKvCache};
constexpr ArchDef kQwen3 = {"qwen3", "Qwen3ForCausalLM", "qwen3", /*norm_plus_one=*/false,
                            kEmbedding, kQwen3Layer, kFinal, kKvCache};
constexpr ArchDef kGemma3 = {"gemma3_text", "Gemma3ForCausalLM", "gemma3",
                             /*norm_plus_one=*/true, kEmbedding, kGemma3Layer, kFinal, kKvCache};

constexpr const ArchDef* kArchs[] = {&kLlama, &kQwen2, &kQwen3, &kGemma3};

// "model.layers.0." + rel / "blk.0." + rel for layer tensors.
ArchTensor Resolve(const ModelConfig& c, const ArchDef& arch, const TensorDef& d, int64_t layer) {
  ArchTensor t;
  t.def = &d;
  t.layer = layer;
  if (layer >= 0) {
    t.hf_name = absl::StrCat("model.layers.", layer, ".", d.hf_name);
    t.gguf_name = absl::StrCat("blk.", layer, ".", d.gguf_name);
  } else {
    t.hf_name = d.hf_name;
    t.gguf_name = d.gguf_name;
  }
  switch (d.role) {
    case R::kEmbedding:
    case R::kLinear:
    case R::kOutputHead:
      t.module = std::string(absl::StripSuffix(t.hf_name, ".weight"));
      break;
    case R::kBias:
      t.module = std::string(absl::StripSuffix(t.hf_name, ".bias"));
      break;
    case R::kNorm:
      t.add_one = arch.norm_plus_one;
      break;
  }
  t.shape.push_back(DimValue(c, d.rows));
  if (d.cols != Dim::kNone) t.shape.push_back(DimValue(c, d.cols));
  switch (d.permute) {
    case RopePermute::kNone: break;
    case RopePermute::kQueryHeads: t.permute_heads = c.num_attention_heads; break;
    case RopePermute::kKvHeads: t.permute_heads = c.num_key_value_heads; break;
  }
  return t;
}

absl::Status VisitRows(const ModelConfig& c, const ArchDef& arch,
                       absl::Span<const TensorDef> rows, int64_t layer,
                       absl::FunctionRef<absl::Status(const ArchTensor&)> fn) {
  for (const TensorDef& d : rows) {
    if (d.present != nullptr && !d.present(c)) continue;
    RETURN_IF_ERROR(fn(Resolve(c, arch, d, layer)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Span<const ArchDef* const> AllArchs() { return kArchs; }

const ArchDef* FindArchByModelType(std::string_view model_type) {
  for (const ArchDef* a : kArchs) {
    if (model_type == a->model_type) return a;
  }
  return nullptr;
}

const ArchDef* FindArchByGgufName(std::string_view gguf_arch) {
  for (const ArchDef* a : kArchs) {
    if (gguf_arch == a->gguf_arch) return a;
  }
  return nullptr;
}

const ArchDef& ArchOf(const ModelConfig& c) {
  const ArchDef* a = FindArchByModelType(c.model_type);
  QATK_CHECK(a != nullptr, "model_type has no architecture table (config not validated?)");
  return *a;
}

std::string SupportedModelTypes() {
  return absl::StrJoin(kArchs, ", ", [](std::string* out, const ArchDef* a) {
    absl::StrAppend(out, a->model_type);
  });
}

std::string SupportedGgufArchs() {
  return absl::StrJoin(kArchs, ", ", [](std::string* out, const ArchDef* a) {
    absl::StrAppend(out, a->gguf_arch);
  });
}

int64_t DimValue(const ModelConfig& c, Dim d) {
  switch (d) {
    case Dim::kNone: return 1;
    case Dim::kVocab: return c.vocab_size;
    case Dim::kHidden: return c.hidden_size;
    case Dim::kFfn: return c.intermediate_size;
    case Dim::kQ: return c.q_dim();
    case Dim::kKv: return c.kv_dim();
    case Dim::kHeadDim: return c.head_dim;
  }
  return 0;
}

bool ArchTensor::quantizable() const {
  return def->role == R::kEmbedding || def->role == R::kLinear || def->role == R::kOutputHead;
}

absl::Status ForEachTensor(const ModelConfig& c,
                           absl::FunctionRef<absl::Status(const ArchTensor&)> fn) {
  const ArchDef& arch = ArchOf(c);
  RETURN_IF_ERROR(VisitRows(c, arch, arch.head, -1, fn));
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    RETURN_IF_ERROR(VisitRows(c, arch, arch.layer, l, fn));
  }
  return VisitRows(c, arch, arch.tail, -1, fn);
}

std::vector<ArchTensor> ArchTensors(const ModelConfig& c) {
  std::vector<ArchTensor> out;
  const absl::Status s = ForEachTensor(c, [&](const ArchTensor& t) {
    out.push_back(t);
    return absl::OkStatus();
  });
  QATK_CHECK(s.ok(), "collecting tensors cannot fail");
  return out;
}

std::vector<ArchCache> ArchCaches(const ModelConfig& c) {
  const ArchDef& arch = ArchOf(c);
  std::vector<ArchCache> out;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    for (const CacheDef& d : arch.caches) {
      ArchCache k;
      k.def = &d;
      k.layer = l;
      k.module = absl::StrCat("model.layers.", l, ".", d.module);
      k.scale_name = absl::StrCat("model.layers.", l, ".", d.scale_name);
      k.rows = c.num_key_value_heads;
      k.cols = c.head_dim;
      out.push_back(std::move(k));
    }
  }
  return out;
}

}  // namespace qatk
