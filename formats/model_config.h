// ModelConfig: the Hugging Face style config.json of a checkpoint (Llama and
// Gemma3 text decoders). LibTorch-free: shared by the trainer, the exporters
// and the runtime.
//
// Keys (docs/ARCHITECTURE.md): architectures, model_type ("llama" |
// "gemma3_text"), vocab_size, hidden_size, intermediate_size,
// num_hidden_layers, num_attention_heads, num_key_value_heads, head_dim,
// max_position_embeddings, rms_norm_eps, rope_theta, tie_word_embeddings,
// hidden_act ("silu" | "gelu_pytorch_tanh"), bos_token_id, eos_token_id;
// Gemma3: query_pre_attn_scalar, final_logit_softcapping (null or number),
// sliding_window (null/0 = none), sliding_window_pattern (default 6: layer l is
// global iff (l+1) % pattern == 0), rope_local_base_freq (theta of sliding
// layers, default 10000).
// Gemma3 always uses q/k norms, (1+w) RMSNorm and the sqrt(hidden) embedding
// scale. Unsupported options (rope_scaling, attention_bias, mlp_bias) are
// rejected with an error naming the key.
#ifndef QATK_FORMATS_MODEL_CONFIG_H_
#define QATK_FORMATS_MODEL_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace qatk {

struct ModelConfig {
  std::string model_type = "llama";  // "llama" | "gemma3_text"
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
  int64_t eos_token_id = 2;
  // Gemma3 only.
  double query_pre_attn_scalar = 0;  // 0 = head_dim
  std::optional<double> final_logit_softcapping;
  int64_t sliding_window = 0;        // 0 = no sliding-window attention
  int64_t sliding_window_pattern = 6;
  double rope_local_base_freq = 10000.0;

  bool is_gemma() const { return model_type == "gemma3_text"; }
  std::string architecture() const;  // "LlamaForCausalLM" | "Gemma3ForCausalLM"
  int64_t q_dim() const { return num_attention_heads * head_dim; }
  int64_t kv_dim() const { return num_key_value_heads * head_dim; }
  // Scale applied to q·k: 1/sqrt(query_pre_attn_scalar) (Gemma) or 1/sqrt(D).
  double attention_scale() const;
  bool is_sliding_layer(int64_t layer) const;
  double layer_rope_theta(int64_t layer) const;
  // Parameters of the model (embeddings, head unless tied, norms, linears).
  int64_t num_parameters() const;

  // Checks ranges and consistency; errors name the key.
  absl::Status Validate() const;
  // Parses an HF config object; `source` names the file in errors.
  static absl::StatusOr<ModelConfig> FromJson(const nlohmann::json& j, const std::string& source);
  nlohmann::json ToJson() const;
};

absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& path);
absl::Status SaveModelConfig(const ModelConfig& config, const std::string& path);

}  // namespace qatk

#endif  // QATK_FORMATS_MODEL_CONFIG_H_
