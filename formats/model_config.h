// ModelConfig: the Hugging Face config.json of a checkpoint, parsed key for
// key as the hub's Llama 3.x / SmolLM2 ("llama"), Qwen2.5 ("qwen2"), Qwen3
// ("qwen3") and Gemma 3 text ("gemma3_text") models ship it. LibTorch-free:
// shared by the trainer, the exporters and the runtime.
//
// Keys (docs/ARCHITECTURE.md, "Model configs"): architectures, model_type,
// vocab_size, hidden_size, intermediate_size, num_hidden_layers,
// num_attention_heads, num_key_value_heads, head_dim,
// max_position_embeddings, rms_norm_eps, rope_theta, tie_word_embeddings,
// hidden_act / hidden_activation ("silu" | "gelu_pytorch_tanh"),
// bos_token_id, eos_token_id (an id or a list of ids);
// llama: rope_scaling (null, rope_type "default", or rope_type "llama3" with
// factor, low_freq_factor, high_freq_factor, original_max_position_embeddings);
// qwen2/qwen3: use_sliding_window (must be false);
// gemma3_text: query_pre_attn_scalar, final_logit_softcapping (null or a
// number), sliding_window (null/0 = none), sliding_window_pattern (default 6:
// layer l is global iff (l+1) % pattern == 0) or layer_types,
// rope_local_base_freq (theta of sliding layers, default 10000).
// Per family: qwen2 has q/k/v biases; qwen3 and gemma3 per-head q/k RMSNorm;
// gemma3 (1+w) RMSNorm and the sqrt(hidden) embedding scale.
// A key that changes the math and is not implemented (another rope_type,
// attention_bias / mlp_bias true, use_sliding_window true, transformers v5
// rope_parameters, ...) is an error naming the key; keys that do not change
// the math (use_cache, torch_dtype, rope_interleaved, is_llama_config, ...)
// are kept in `source` and otherwise ignored.
#ifndef QATK_FORMATS_MODEL_CONFIG_H_
#define QATK_FORMATS_MODEL_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace qatk {

// Llama 3's frequency-dependent RoPE scaling (rope_scaling.rope_type "llama3").
struct RopeScaling {
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

struct ModelConfig {
  std::string model_type = "llama";  // "llama" | "qwen2" | "qwen3" | "gemma3_text"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;           // E
  int64_t intermediate_size = 0;     // F
  int64_t num_hidden_layers = 0;     // L
  int64_t num_attention_heads = 0;   // H
  int64_t num_key_value_heads = 0;   // Hkv (GQA group = H / Hkv)
  int64_t head_dim = 0;              // D (default E / H)
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  bool tie_word_embeddings = false;
  std::string hidden_act = "silu";   // "silu" | "gelu_pytorch_tanh"
  int64_t bos_token_id = 1;
  int64_t eos_token_id = 2;          // the first of eos_token_ids
  std::vector<int64_t> eos_token_ids;  // every end-of-generation id (config order);
                                       // empty = {eos_token_id}
  std::optional<RopeScaling> rope_scaling;  // llama only
  // Gemma3 only.
  double query_pre_attn_scalar = 0;  // 0 = head_dim
  std::optional<double> final_logit_softcapping;
  int64_t sliding_window = 0;        // 0 = no sliding-window attention
  int64_t sliding_window_pattern = 6;
  double rope_local_base_freq = 10000.0;
  // The config.json object as read, every key in file order; null for
  // configs qatkit built itself. ToJson() returns it unchanged, so a model
  // imported from the hub is saved and exported with its own config.
  nlohmann::ordered_json source;

  bool is_gemma() const { return model_type == "gemma3_text"; }
  bool has_qkv_bias() const { return model_type == "qwen2"; }
  bool has_qk_norm() const { return model_type == "qwen3" || is_gemma(); }
  std::string architecture() const;  // "LlamaForCausalLM", "Qwen2ForCausalLM", ...
  int64_t q_dim() const { return num_attention_heads * head_dim; }
  int64_t kv_dim() const { return num_key_value_heads * head_dim; }
  // Scale applied to q·k: 1/sqrt(query_pre_attn_scalar) (Gemma) or 1/sqrt(D).
  double attention_scale() const;
  bool is_sliding_layer(int64_t layer) const;
  double layer_rope_theta(int64_t layer) const;
  // Per rotary frequency i < D/2, the divisor of its angle (llama.cpp's
  // rope_freqs.weight): all 1 without rope_scaling, Llama 3's smooth
  // interpolation between 1 (high frequencies) and `factor` (low ones) with it.
  std::vector<float> RopeFreqFactors() const;
  // Parameters of the model (embeddings, head unless tied, norms, linears).
  int64_t num_parameters() const;

  // Checks ranges and consistency; errors name the key.
  absl::Status Validate() const;
  // Parses an HF config object; `source` names the file in errors.
  static absl::StatusOr<ModelConfig> FromJson(const nlohmann::ordered_json& j,
                                              const std::string& source);
  static absl::StatusOr<ModelConfig> FromJson(const nlohmann::json& j, const std::string& source);
  // `source` when set, else the keys above.
  nlohmann::ordered_json ToJson() const;
};

absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& path);
absl::Status SaveModelConfig(const ModelConfig& config, const std::string& path);

}  // namespace qatk

#endif  // QATK_FORMATS_MODEL_CONFIG_H_
