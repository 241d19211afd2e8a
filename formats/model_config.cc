#include "formats/model_config.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "formats/model_arch.h"
#include "formats/util/file_io.h"
#include "formats/util/status_macros.h"

namespace qatk {
namespace {

using json = nlohmann::ordered_json;

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

// A present, non-null key.
const json* Find(const json& j, const char* key) {
  auto it = j.find(key);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

// Options that change the math and are not implemented must not be silently
// ignored.
absl::Status RejectUnsupported(const json& j, const std::string& source, const ModelConfig& c) {
  for (const char* key : {"attention_bias", "mlp_bias"}) {
    const json* v = Find(j, key);
    if (v != nullptr && !(v->is_boolean() && !v->get<bool>())) {
      return KeyError(source, key,
                      absl::StrCat("must be false for ", c.model_type,
                                   c.has_qkv_bias() ? " (its q/k/v biases are always on)" : "",
                                   ": other linear biases are not supported"));
    }
  }
  if (const json* v = Find(j, "use_sliding_window"); v != nullptr) {
    if (!v->is_boolean() || v->get<bool>()) {
      return KeyError(source, "use_sliding_window", "= true is not supported (use false)");
    }
  }
  if (const json* v = Find(j, "use_bidirectional_attention"); v != nullptr) {
    if (!v->is_boolean() || v->get<bool>()) {
      return KeyError(source, "use_bidirectional_attention", "= true is not supported (causal decoders only)");
    }
  }
  if (const json* v = Find(j, "attn_logit_softcapping"); v != nullptr) {
    return KeyError(source, "attn_logit_softcapping", "is not supported (use null)");
  }
  if (const json* v = Find(j, "rope_parameters"); v != nullptr) {
    return KeyError(source, "rope_parameters",
                    "(the transformers v5 form) is not supported; use rope_theta / rope_scaling");
  }
  if (const json* v = Find(j, "partial_rotary_factor");
      v != nullptr && !(v->is_number() && v->get<double>() == 1.0)) {
    return KeyError(source, "partial_rotary_factor", "must be 1 (partial rotary is not supported)");
  }
  for (const char* key : {"pretraining_tp"}) {  // only its default is the same math everywhere
    const json* v = Find(j, key);
    if (v != nullptr && !(v->is_number_integer() && v->get<int64_t>() <= 1)) {
      return KeyError(source, key, "> 1 is not supported");
    }
  }
  return absl::OkStatus();
}

// rope_scaling: null, {"rope_type": "default"}, or Llama 3's {"rope_type":
// "llama3", factor, low_freq_factor, high_freq_factor,
// original_max_position_embeddings} ("type" is the older spelling).
absl::Status ParseRopeScaling(const json& j, const std::string& source, ModelConfig* c) {
  const json* rs = Find(j, "rope_scaling");
  if (rs == nullptr) return absl::OkStatus();
  if (!rs->is_object()) return KeyError(source, "rope_scaling", "must be null or an object");
  std::string type;
  for (const char* key : {"rope_type", "type"}) {
    if (const json* t = Find(*rs, key); t != nullptr) {
      if (!t->is_string()) return KeyError(source, absl::StrCat("rope_scaling.", key), "must be a string");
      type = t->get<std::string>();
      break;
    }
  }
  if (type == "default") return absl::OkStatus();
  if (type != "llama3" || c->is_gemma()) {
    return KeyError(source, "rope_scaling",
                    absl::StrCat("rope_type '", type, "' is not supported for ", c->model_type,
                                 c->model_type == "llama" ? " (default, llama3)" : " (default)"));
  }
  RopeScaling r;
  auto number = [&](const char* key, double* out) -> absl::Status {
    const json* v = Find(*rs, key);
    if (v == nullptr) return absl::NotFoundError(absl::StrCat(source, ": missing config key 'rope_scaling.", key, "'"));
    if (!v->is_number()) return KeyError(source, absl::StrCat("rope_scaling.", key), "must be a number");
    *out = v->get<double>();
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(number("factor", &r.factor));
  RETURN_IF_ERROR(number("low_freq_factor", &r.low_freq_factor));
  RETURN_IF_ERROR(number("high_freq_factor", &r.high_freq_factor));
  double original = 0;
  RETURN_IF_ERROR(number("original_max_position_embeddings", &original));
  r.original_max_position_embeddings = static_cast<int64_t>(original);
  if (!(r.factor >= 1) || !(r.low_freq_factor > 0) || !(r.high_freq_factor > r.low_freq_factor) ||
      !(original >= 1) || original != static_cast<double>(r.original_max_position_embeddings)) {
    return KeyError(source, "rope_scaling",
                    "needs factor >= 1, 0 < low_freq_factor < high_freq_factor and an integer "
                    "original_max_position_embeddings >= 1");
  }
  c->rope_scaling = r;
  return absl::OkStatus();
}

// eos_token_id: an id or a list of ids (the -it models list every end of turn).
absl::Status ParseEos(const json& j, const std::string& source, ModelConfig* c) {
  const json* v = Find(j, "eos_token_id");
  if (v == nullptr) {
    c->eos_token_ids = {c->eos_token_id};
    return absl::OkStatus();
  }
  std::vector<int64_t> ids;
  if (v->is_number_integer()) {
    ids.push_back(v->get<int64_t>());
  } else if (v->is_array() && !v->empty()) {
    for (const json& e : *v) {
      if (!e.is_number_integer()) return KeyError(source, "eos_token_id", "must be an integer or a list of integers");
      ids.push_back(e.get<int64_t>());
    }
  } else {
    return KeyError(source, "eos_token_id", "must be an integer or a non-empty list of integers");
  }
  c->eos_token_id = ids.front();
  c->eos_token_ids = std::move(ids);
  return absl::OkStatus();
}

// layer_types (newer Gemma 3 configs): one "sliding_attention" or
// "full_attention" per layer. The runtimes (ours and llama.cpp's) describe
// the layout by a period, so the list must be "every pattern-th layer global".
absl::Status ParseLayerTypes(const json& j, const std::string& source, ModelConfig* c) {
  const json* v = Find(j, "layer_types");
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_array() || static_cast<int64_t>(v->size()) != c->num_hidden_layers) {
    return KeyError(source, "layer_types", "must list one type per hidden layer");
  }
  std::vector<bool> sliding;
  for (const json& e : *v) {
    const std::string t = e.is_string() ? e.get<std::string>() : "";
    if (t != "sliding_attention" && t != "full_attention") {
      return KeyError(source, "layer_types", "entries must be \"sliding_attention\" or \"full_attention\"");
    }
    sliding.push_back(t == "sliding_attention");
  }
  const bool any_sliding = std::find(sliding.begin(), sliding.end(), true) != sliding.end();
  if (!c->is_gemma()) {
    if (any_sliding) return KeyError(source, "layer_types", "sliding_attention layers are not supported for " + c->model_type);
    return absl::OkStatus();
  }
  if (!any_sliding) {
    c->sliding_window = 0;
    return absl::OkStatus();
  }
  auto first_global = std::find(sliding.begin(), sliding.end(), false);
  const int64_t pattern = (first_global - sliding.begin()) + 1;
  for (size_t l = 0; l < sliding.size(); ++l) {
    if (sliding[l] != ((static_cast<int64_t>(l) + 1) % pattern != 0)) {
      return KeyError(source, "layer_types",
                      absl::StrCat("must make every ", pattern,
                                   "-th layer full_attention and the others sliding (layer ", l,
                                   " differs): other layouts are not supported"));
    }
  }
  c->sliding_window_pattern = pattern;
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
  // transformers' default when the key is absent; an explicit null means none.
  if (j.find("sliding_window") == j.end()) c->sliding_window = 4096;
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
    return absl::InvalidArgumentError(absl::StrCat(
        "config keys 'final_logit_softcapping' / 'sliding_window' are Gemma3 options; model_type is ",
        model_type));
  }
  if (rope_scaling && model_type != "llama") {
    return absl::InvalidArgumentError("config key 'rope_scaling' (llama3) is a llama option");
  }
  if (!eos_token_ids.empty() && eos_token_ids.front() != eos_token_id) {
    return absl::InvalidArgumentError("config key 'eos_token_id': eos_token_ids must start with it");
  }
  for (int64_t id : eos_token_ids) {
    if (id < 0 || id >= vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("config key 'eos_token_id' = ", id,
                                                     " is outside the vocabulary [0, ", vocab_size, ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelConfig> ModelConfig::FromJson(const json& j, const std::string& source) {
  if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat(source, ": config is not a JSON object"));
  ModelConfig c;
  RETURN_IF_ERROR(ParseModelType(j, source, &c));
  RETURN_IF_ERROR(RejectUnsupported(j, source, c));
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
  // transformers' defaults: Qwen3 128, Gemma 3 256, else hidden / heads.
  if (c.model_type == "qwen3") {
    c.head_dim = 128;
  } else if (c.is_gemma()) {
    c.head_dim = 256;
  } else if (c.num_attention_heads > 0) {
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  RETURN_IF_ERROR(GetInt(j, source, "head_dim", false, &c.head_dim));
  RETURN_IF_ERROR(GetInt(j, source, "max_position_embeddings", true, &c.max_position_embeddings));
  RETURN_IF_ERROR(GetDouble(j, source, "rms_norm_eps", &c.rms_norm_eps));
  RETURN_IF_ERROR(GetDouble(j, source, "rope_theta", &c.rope_theta));
  RETURN_IF_ERROR(GetBool(j, source, "tie_word_embeddings", &c.tie_word_embeddings));
  // Gemma's modelling code reads hidden_activation; the others hidden_act.
  const char* act_keys[2] = {"hidden_act", "hidden_activation"};
  if (c.is_gemma()) std::swap(act_keys[0], act_keys[1]);
  RETURN_IF_ERROR(GetString(j, source, act_keys[0], &c.hidden_act));
  if (Find(j, act_keys[0]) == nullptr) RETURN_IF_ERROR(GetString(j, source, act_keys[1], &c.hidden_act));
  RETURN_IF_ERROR(GetInt(j, source, "bos_token_id", false, &c.bos_token_id));
  RETURN_IF_ERROR(ParseEos(j, source, &c));
  RETURN_IF_ERROR(ParseRopeScaling(j, source, &c));
  if (c.is_gemma()) RETURN_IF_ERROR(ParseGemmaKeys(j, source, &c));
  RETURN_IF_ERROR(ParseLayerTypes(j, source, &c));
  absl::Status s = c.Validate();
  if (!s.ok()) return absl::Status(s.code(), absl::StrCat(source, ": ", s.message()));
  c.source = j;
  return c;
}

absl::StatusOr<ModelConfig> ModelConfig::FromJson(const nlohmann::json& j, const std::string& source) {
  return FromJson(json::parse(j.dump()), source);
}

namespace {

// The keys qatkit owns, from the fields.
json FieldsJson(const ModelConfig& c) {
  json j;
  j["architectures"] = json::array({c.architecture()});
  j["model_type"] = c.model_type;
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  j["head_dim"] = c.head_dim;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j[c.is_gemma() ? "hidden_activation" : "hidden_act"] = c.hidden_act;
  j["bos_token_id"] = c.bos_token_id;
  if (c.eos_token_ids.size() > 1) {
    j["eos_token_id"] = c.eos_token_ids;
  } else {
    j["eos_token_id"] = c.eos_token_id;
  }
  if (c.rope_scaling) {
    j["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", c.rope_scaling->factor},
                         {"low_freq_factor", c.rope_scaling->low_freq_factor},
                         {"high_freq_factor", c.rope_scaling->high_freq_factor},
                         {"original_max_position_embeddings",
                          c.rope_scaling->original_max_position_embeddings}};
  }
  if (c.is_gemma()) {
    j["query_pre_attn_scalar"] = c.query_pre_attn_scalar > 0 ? c.query_pre_attn_scalar
                                                             : static_cast<double>(c.head_dim);
    j["final_logit_softcapping"] =
        c.final_logit_softcapping ? json(*c.final_logit_softcapping) : json(nullptr);
    j["sliding_window"] = c.sliding_window > 0 ? json(c.sliding_window) : json(nullptr);
    j["sliding_window_pattern"] = c.sliding_window_pattern;
    j["rope_local_base_freq"] = c.rope_local_base_freq;
  }
  return j;
}

}  // namespace

json ModelConfig::ToJson() const {
  json fields = FieldsJson(*this);
  if (source.is_null()) {
    fields["torch_dtype"] = "float32";
    return fields;
  }
  // The source as read, unless the fields were changed since: then the
  // source's other keys with the fields' values.
  absl::StatusOr<ModelConfig> parsed = FromJson(source, "config");
  if (parsed.ok() && FieldsJson(*parsed) == fields) return source;
  json j = source;
  for (auto& [key, value] : fields.items()) j[key] = value;
  if (is_gemma() && j.contains("layer_types")) j.erase("layer_types");
  return j;
}

std::vector<float> ModelConfig::RopeFreqFactors() const {
  const int64_t n = head_dim / 2;
  std::vector<float> out(static_cast<size_t>(n), 1.0f);
  if (!rope_scaling) return out;
  const RopeScaling& r = *rope_scaling;
  const double old_len = static_cast<double>(r.original_max_position_embeddings);
  const double low_wavelen = old_len / r.low_freq_factor;
  const double high_wavelen = old_len / r.high_freq_factor;
  for (int64_t i = 0; i < n; ++i) {
    const double freq = std::pow(rope_theta, -2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
    const double wavelen = 2.0 * M_PI / freq;
    double f = 1.0;
    if (wavelen > low_wavelen) {
      f = r.factor;
    } else if (wavelen >= high_wavelen) {
      const double smooth = (old_len / wavelen - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
      f = 1.0 / ((1.0 - smooth) / r.factor + smooth);
    }
    out[static_cast<size_t>(i)] = static_cast<float>(f);
  }
  return out;
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
