#include "formats/model_config.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "formats/model_arch.h"
#include "formats/util/file_io.h"
#include "formats/util/status_macros.h"

namespace qatk {
namespace {

using json = nlohmann::json;

absl::Status KeyError(const std::string& source, const std::string& key, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(source, ": config key '", key, "' ", what));
}

// Reads an integer key; `required` keys must be present.
absl::Status GetInt(const json& j, const std::string& source, const char* key, bool required,
                    int64_t* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    return required ? absl::NotFoundError(absl::StrCat(source, ": missing config key '", key, "'"))
                    : absl::OkStatus();
  }
  if (!it->is_number_integer()) return KeyError(source, key, "must be an integer");
  *out = it->get<int64_t>();
  return absl::OkStatus();
}

absl::Status GetDouble(const json& j, const std::string& source, const char* key, double* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number()) return KeyError(source, key, "must be a number");
  *out = it->get<double>();
  return absl::OkStatus();
}

absl::Status GetBool(const json& j, const std::string& source, const char* key, bool* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_boolean()) return KeyError(source, key, "must be true or false");
  *out = it->get<bool>();
  return absl::OkStatus();
}

absl::Status GetString(const json& j, const std::string& source, const char* key,
                       std::string* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_string()) return KeyError(source, key, "must be a string");
  *out = it->get<std::string>();
  return absl::OkStatus();
}

// Options we do not implement must not be silently ignored.
absl::Status RejectUnsupported(const json& j, const std::string& source) {
  for (const char* key : {"attention_bias", "mlp_bias"}) {
    auto it = j.find(key);
    if (it != j.end() && it->is_boolean() && it->get<bool>()) {
      return KeyError(source, key, "= true is not supported (bias-free linears only)");
    }
  }
  auto it = j.find("rope_scaling");
  if (it != j.end() && !it->is_null()) {
    return KeyError(source, "rope_scaling", "is not supported (use null)");
  }
  it = j.find("attn_logit_softcapping");
  if (it != j.end() && !it->is_null()) {
    return KeyError(source, "attn_logit_softcapping", "is not supported (Gemma3 has none; use null)");
  }
  return absl::OkStatus();
}

absl::Status ParseModelType(const json& j, const std::string& source, ModelConfig* c) {
  auto it = j.find("model_type");
  if (it == j.end()) return absl::NotFoundError(absl::StrCat(source, ": missing config key 'model_type'"));
  RETURN_IF_ERROR(GetString(j, source, "model_type", &c->model_type));
  if (c->model_type == "gemma3") {
    return KeyError(source, "model_type",
                    "'gemma3' is the multimodal wrapper; use the text config ('gemma3_text')");
  }
  if (FindArchByModelType(c->model_type) == nullptr) {
    return KeyError(source, "model_type",
                    absl::StrCat("'", c->model_type, "' is not supported (",
                                 SupportedModelTypes(), ")"));
  }
  auto arch = j.find("architectures");
  if (arch != j.end() && !arch->is_null()) {
    if (!arch->is_array() || arch->size() != 1 || !(*arch)[0].is_string()) {
      return KeyError(source, "architectures", "must be a one-element string array");
    }
    const std::string a = (*arch)[0].get<std::string>();
    if (a != c->architecture()) {
      return KeyError(source, "architectures",
                      absl::StrCat("'", a, "' does not match model_type '", c->model_type,
                                   "' (expected '", c->architecture(), "')"));
    }
  }
  return absl::OkStatus();
}

absl::Status ParseGemmaKeys(const json& j, const std::string& source, ModelConfig* c) {
  RETURN_IF_ERROR(GetDouble(j, source, "query_pre_attn_scalar", &c->query_pre_attn_scalar));
  auto it = j.find("final_logit_softcapping");
  if (it != j.end() && !it->is_null()) {
    if (!it->is_number()) return KeyError(source, "final_logit_softcapping", "must be null or a number");
    c->final_logit_softcapping = it->get<double>();
  }
  RETURN_IF_ERROR(GetInt(j, source, "sliding_window", false, &c->sliding_window));
  RETURN_IF_ERROR(GetInt(j, source, "sliding_window_pattern", false, &c->sliding_window_pattern));
  RETURN_IF_ERROR(GetDouble(j, source, "rope_local_base_freq", &c->rope_local_base_freq));
  return absl::OkStatus();
}

}  // namespace

std::string ModelConfig::architecture() const {
  const ArchDef* a = FindArchByModelType(model_type);
  return a != nullptr ? a->hf_architecture : "LlamaForCausalLM";
}

double ModelConfig::attention_scale() const {
  if (is_gemma() && query_pre_attn_scalar > 0) return 1.0 / std::sqrt(query_pre_attn_scalar);
  return 1.0 / std::sqrt(static_cast<double>(head_dim));
}

bool ModelConfig::is_sliding_layer(int64_t layer) const {
  if (!is_gemma() || sliding_window <= 0 || sliding_window_pattern <= 0) return false;
  return (layer + 1) % sliding_window_pattern != 0;
}

double ModelConfig::layer_rope_theta(int64_t layer) const {
  return is_sliding_layer(layer) ? rope_local_base_freq : rope_theta;
}

int64_t ModelConfig::num_parameters() const {
  int64_t n = 0;
  for (const ArchTensor& t : ArchTensors(*this)) {
    int64_t size = 1;
    for (int64_t d : t.shape) size *= d;
    n += size;
  }
  return n;
}

absl::Status ModelConfig::Validate() const {
  auto positive = [](const char* key, int64_t v) -> absl::Status {
    if (v <= 0) return absl::InvalidArgumentError(absl::StrCat("config key '", key, "' must be > 0, got ", v));
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(positive("vocab_size", vocab_size));
  RETURN_IF_ERROR(positive("hidden_size", hidden_size));
  RETURN_IF_ERROR(positive("intermediate_size", intermediate_size));
  RETURN_IF_ERROR(positive("num_hidden_layers", num_hidden_layers));
  RETURN_IF_ERROR(positive("num_attention_heads", num_attention_heads));
  RETURN_IF_ERROR(positive("num_key_value_heads", num_key_value_heads));
  RETURN_IF_ERROR(positive("head_dim", head_dim));
  RETURN_IF_ERROR(positive("max_position_embeddings", max_position_embeddings));
  if (num_attention_heads % num_key_value_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config key 'num_key_value_heads' (", num_key_value_heads,
        ") must divide num_attention_heads (", num_attention_heads, ")"));
  }
  if (head_dim % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("config key 'head_dim' must be even for rotary embeddings, got ", head_dim));
  }
  if (!(rms_norm_eps > 0) || !std::isfinite(rms_norm_eps)) {
    return absl::InvalidArgumentError("config key 'rms_norm_eps' must be a positive finite number");
  }
  if (!(rope_theta > 0) || !std::isfinite(rope_theta)) {
    return absl::InvalidArgumentError("config key 'rope_theta' must be a positive finite number");
  }
  if (hidden_act != "silu" && hidden_act != "gelu_pytorch_tanh") {
    return absl::InvalidArgumentError(absl::StrCat("config key 'hidden_act' = '", hidden_act,
                                                   "' is not supported (silu, gelu_pytorch_tanh)"));
  }
  for (auto [key, id] : {std::pair{"bos_token_id", bos_token_id}, std::pair{"eos_token_id", eos_token_id}}) {
    if (id < 0 || id >= vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("config key '", key, "' = ", id,
                                                     " is outside the vocabulary [0, ", vocab_size, ")"));
    }
  }
  if (final_logit_softcapping && !(*final_logit_softcapping > 0)) {
    return absl::InvalidArgumentError("config key 'final_logit_softcapping' must be null or > 0");
  }
  if (query_pre_attn_scalar < 0) {
    return absl::InvalidArgumentError("config key 'query_pre_attn_scalar' must be > 0");
  }
  if (sliding_window < 0) return absl::InvalidArgumentError("config key 'sliding_window' must be >= 0");
  if (!is_gemma() && (final_logit_softcapping || sliding_window > 0)) {
    return absl::InvalidArgumentError(
        "config keys 'final_logit_softcapping' / 'sliding_window' are Gemma3 options; model_type is llama");
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelConfig> ModelConfig::FromJson(const json& j, const std::string& source) {
  if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat(source, ": config is not a JSON object"));
  ModelConfig c;
  RETURN_IF_ERROR(ParseModelType(j, source, &c));
  RETURN_IF_ERROR(RejectUnsupported(j, source));
  if (c.is_gemma()) {  // HF Gemma3 defaults
    c.hidden_act = "gelu_pytorch_tanh";
    c.tie_word_embeddings = true;
    c.rope_theta = 1000000.0;
    c.query_pre_attn_scalar = 256;
    c.bos_token_id = 2;
    c.eos_token_id = 1;
  }
  RETURN_IF_ERROR(GetInt(j, source, "vocab_size", true, &c.vocab_size));
  RETURN_IF_ERROR(GetInt(j, source, "hidden_size", true, &c.hidden_size));
  RETURN_IF_ERROR(GetInt(j, source, "intermediate_size", true, &c.intermediate_size));
  RETURN_IF_ERROR(GetInt(j, source, "num_hidden_layers", true, &c.num_hidden_layers));
  RETURN_IF_ERROR(GetInt(j, source, "num_attention_heads", true, &c.num_attention_heads));
  c.num_key_value_heads = c.num_attention_heads;
  RETURN_IF_ERROR(GetInt(j, source, "num_key_value_heads", false, &c.num_key_value_heads));
  if (c.num_attention_heads > 0) c.head_dim = c.hidden_size / c.num_attention_heads;
  RETURN_IF_ERROR(GetInt(j, source, "head_dim", false, &c.head_dim));
  RETURN_IF_ERROR(GetInt(j, source, "max_position_embeddings", true, &c.max_position_embeddings));
  RETURN_IF_ERROR(GetDouble(j, source, "rms_norm_eps", &c.rms_norm_eps));
  RETURN_IF_ERROR(GetDouble(j, source, "rope_theta", &c.rope_theta));
  RETURN_IF_ERROR(GetBool(j, source, "tie_word_embeddings", &c.tie_word_embeddings));
  RETURN_IF_ERROR(GetString(j, source, "hidden_act", &c.hidden_act));
  if (j.contains("hidden_activation") && !j.contains("hidden_act")) {  // Gemma's spelling
    RETURN_IF_ERROR(GetString(j, source, "hidden_activation", &c.hidden_act));
  }
  RETURN_IF_ERROR(GetInt(j, source, "bos_token_id", false, &c.bos_token_id));
  RETURN_IF_ERROR(GetInt(j, source, "eos_token_id", false, &c.eos_token_id));
  if (c.is_gemma()) RETURN_IF_ERROR(ParseGemmaKeys(j, source, &c));
  absl::Status s = c.Validate();
  if (!s.ok()) return absl::Status(s.code(), absl::StrCat(source, ": ", s.message()));
  return c;
}

json ModelConfig::ToJson() const {
  json j;
  j["architectures"] = json::array({architecture()});
  j["model_type"] = model_type;
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["num_key_value_heads"] = num_key_value_heads;
  j["head_dim"] = head_dim;
  j["max_position_embeddings"] = max_position_embeddings;
  j["rms_norm_eps"] = rms_norm_eps;
  j["rope_theta"] = rope_theta;
  j["tie_word_embeddings"] = tie_word_embeddings;
  j["hidden_act"] = hidden_act;
  j["bos_token_id"] = bos_token_id;
  j["eos_token_id"] = eos_token_id;
  j["torch_dtype"] = "float32";
  if (is_gemma()) {
    j["query_pre_attn_scalar"] = query_pre_attn_scalar > 0 ? query_pre_attn_scalar
                                                           : static_cast<double>(head_dim);
    j["final_logit_softcapping"] = final_logit_softcapping ? json(*final_logit_softcapping) : json(nullptr);
    j["sliding_window"] = sliding_window > 0 ? json(sliding_window) : json(nullptr);
    j["sliding_window_pattern"] = sliding_window_pattern;
    j["rope_local_base_freq"] = rope_local_base_freq;
  }
  return j;
}

absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::DataLossError(absl::StrCat(path, ": not valid JSON"));
  return ModelConfig::FromJson(j, path);
}

absl::Status SaveModelConfig(const ModelConfig& config, const std::string& path) {
  RETURN_IF_ERROR(config.Validate());
  return WriteFileAtomic(path, config.ToJson().dump(2) + "\n");
}

}  // namespace qatk
