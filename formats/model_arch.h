// The tensors of each decoder architecture, in one table per architecture
// (docs/ARCHITECTURE.md, "Adding an architecture"). LibTorch-free: the
// checkpoint exporters, the GGUF and mobile writers, the runtime loaders and
// the tests all walk these tables instead of spelling the tensor list out.
//
// A table row describes one tensor: its Hugging Face name, its GGUF
// (llama.cpp) name, its shape as dimensions of the config, its role (what
// quantizes, stores and loads it) and when it is present. Rows are in GGUF
// file order, which is also the mobile file order; changing the order changes
// every exported file.
//
// Dimension letters: V vocab, E hidden, F intermediate, H query heads,
// Hk kv heads, D head dim, L layers.
#ifndef QATK_FORMATS_MODEL_ARCH_H_
#define QATK_FORMATS_MODEL_ARCH_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/types/span.h"
#include "formats/model_config.h"

namespace qatk {

// What a tensor is to the code that quantizes, stores and loads it.
enum class TensorRole : uint8_t {
  kEmbedding,   // token embedding [V, E]: recipe module (kind embedding)
  kLinear,      // projection weight [out, in]: recipe module (kind linear)
  kOutputHead,  // lm_head [V, E]: recipe module (kind linear); absent when tied
  kNorm,        // RMSNorm weight: F32, never quantized
  kBias,        // linear bias [out]: F32, never quantized (owned by `module`)
};

// The runtime weight a tensor fills (llama.cpp's tensor kinds). The runtime
// loaders map each slot to a field of inference::Model / LayerWeights.
enum class TensorSlot : uint8_t {
  kTokenEmbd,
  kOutputNorm,
  kOutput,
  kAttnNorm,
  kAttnQ,
  kAttnK,
  kAttnV,
  kAttnOutput,
  kAttnQBias,
  kAttnKBias,
  kAttnVBias,
  kAttnQNorm,
  kAttnKNorm,
  kPostAttnNorm,
  kFfnNorm,
  kFfnGate,
  kFfnUp,
  kFfnDown,
  kPostFfwNorm,
};

// A shape dimension, resolved against a ModelConfig.
enum class Dim : uint8_t {
  kNone,      // (cols of a 1-D tensor)
  kVocab,     // V
  kHidden,    // E
  kFfn,       // F
  kQ,         // H * D
  kKv,        // Hk * D
  kHeadDim,   // D
};

// Row permutation GGUF needs on q/k projections for llama.cpp's NORM rope
// (adjacent pairs instead of HF's halves), over this many heads.
enum class RopePermute : uint8_t { kNone, kQueryHeads, kKvHeads };

// One row of an architecture table. Layer tensor names are relative to
// "model.layers.N." (HF) and "blk.N." (GGUF).
struct TensorDef {
  const char* hf_name;    // "self_attn.q_proj.weight"
  const char* gguf_name;  // "attn_q.weight"
  TensorRole role;
  TensorSlot slot;
  Dim rows;
  Dim cols;                                       // kNone: 1-D [rows]
  RopePermute permute = RopePermute::kNone;
  // Optional tensors (an untied head, biases, q/k norms): present only when
  // this returns true for the config; null = always present.
  bool (*present)(const ModelConfig&) = nullptr;
  // The head of a tied model is absent: the token embedding serves as it.
  bool tied_to_embedding = false;
};

// A per-layer quantization point without a weight of its own (the KV cache):
// recipes match `module`; a static scale is stored under `scale_name`.
enum class CacheKind : uint8_t { kKey, kValue };
struct CacheDef {
  const char* module;      // "self_attn.k_cache"
  const char* scale_name;  // "self_attn.k_scale"
  CacheKind kind;
};

struct ArchDef {
  const char* model_type;       // config.json model_type: "llama"
  const char* hf_architecture;  // config.json architectures[0]: "LlamaForCausalLM"
  const char* gguf_arch;        // general.architecture: "llama"
  // (1 + w) RMSNorm: checkpoints and mobile files store w, GGUF stores 1 + w.
  bool norm_plus_one;
  absl::Span<const TensorDef> head;    // global tensors before the layers
  absl::Span<const TensorDef> layer;   // every layer's tensors
  absl::Span<const TensorDef> tail;    // global tensors after the layers
  absl::Span<const CacheDef> caches;   // every layer's cache points
};

// Every supported architecture, in the order error messages list them.
absl::Span<const ArchDef* const> AllArchs();
// By config.json model_type / GGUF general.architecture; null if unknown.
const ArchDef* FindArchByModelType(std::string_view model_type);
const ArchDef* FindArchByGgufName(std::string_view gguf_arch);
// The architecture of a config (aborts on an unknown model_type: configs are
// validated when parsed).
const ArchDef& ArchOf(const ModelConfig& c);
// "llama, gemma3_text" / "llama, gemma3".
std::string SupportedModelTypes();
std::string SupportedGgufArchs();

int64_t DimValue(const ModelConfig& c, Dim d);

// A table row resolved for one config and layer.
struct ArchTensor {
  const TensorDef* def = nullptr;
  int64_t layer = -1;          // -1 for global tensors
  std::string hf_name;         // "model.layers.0.self_attn.q_proj.weight"
  std::string gguf_name;       // "blk.0.attn_q.weight"
  std::string module;          // recipe module "model.layers.0.self_attn.q_proj";
                               // "" for norms (the owning linear for biases)
  std::vector<int64_t> shape;  // PyTorch order: [out, in] for matrices, [n] for vectors
  int64_t permute_heads = 0;   // > 0: GGUF NORM-rope row permutation over this many heads
  bool add_one = false;        // (1 + w) norm: GGUF stores w + 1, the runtime multiplies by it

  TensorRole role() const { return def->role; }
  TensorSlot slot() const { return def->slot; }
  // A matrix some recipe rule may quantize (embedding, linear, head).
  bool quantizable() const;
};

// Calls fn on every tensor present for `c`, in file order: the head
// globals, each layer's tensors (layer 0 first), the tail globals. Stops at
// and returns the first error fn returns.
absl::Status ForEachTensor(const ModelConfig& c,
                           absl::FunctionRef<absl::Status(const ArchTensor&)> fn);
// ForEachTensor collected.
std::vector<ArchTensor> ArchTensors(const ModelConfig& c);

// A cache point resolved for one layer.
struct ArchCache {
  const CacheDef* def = nullptr;
  int64_t layer = 0;
  std::string module;      // "model.layers.0.self_attn.k_cache"
  std::string scale_name;  // "model.layers.0.self_attn.k_scale"
  int64_t rows = 0, cols = 0;  // the quantized [Hk, D] per position
};
// Every layer's cache points, layer 0 first.
std::vector<ArchCache> ArchCaches(const ModelConfig& c);

}  // namespace qatk

#endif  // QATK_FORMATS_MODEL_ARCH_H_
