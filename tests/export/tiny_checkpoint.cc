#include "tests/export/tiny_checkpoint.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "export/checkpoint.h"
#include "export/spm_vocab.h"
#include "export/tensor_plan.h"
#include "formats/model_config.h"
#include "formats/quant/codecs.h"
#include "formats/safetensors/safetensors.h"
#include "formats/util/file_io.h"
#include "formats/util/status_macros.h"
#include "nlohmann/json.hpp"
#include "tests/export/spm_train_util.h"

namespace qatk::testing {
namespace {

absl::Status MakeTokenizer(const std::string& dir, const TinyModelOptions& o, int* vocab) {
  const std::string model = dir + "/tokenizer.model";
  if (!o.tokenizer_model.empty()) {
    ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(o.tokenizer_model));
    RETURN_IF_ERROR(WriteFileAtomic(model, bytes));
  } else {
    const std::string text_path = dir + "/tokenizer_train.txt";
    const std::string text = o.tokenizer_text.empty() ? SyntheticText(2000, o.seed) : o.tokenizer_text;
    RETURN_IF_ERROR(WriteFileAtomic(text_path, text));
    const std::string err = TrainSpmBpe(text_path, dir + "/tokenizer", o.vocab);
    std::remove(text_path.c_str());
    std::remove((dir + "/tokenizer.vocab").c_str());
    if (!err.empty()) return absl::InternalError("sentencepiece training: " + err);
  }
  spm::SpmVocab v;
  const std::string err = spm::LoadSpmVocab(model, &v);
  if (!err.empty()) return absl::InternalError(err);
  *vocab = static_cast<int>(v.pieces.size());
  return absl::OkStatus();
}

nlohmann::json ConfigJson(const TinyModelOptions& o, int vocab) {
  const bool gemma = o.model_type == "gemma3_text";
  nlohmann::json j = {
      {"architectures", {FindArchByModelType(o.model_type)->hf_architecture}},
      {"model_type", o.model_type},
      {"vocab_size", vocab},
      {"hidden_size", o.hidden},
      {"intermediate_size", o.intermediate},
      {"num_hidden_layers", o.layers},
      {"num_attention_heads", o.heads},
      {"num_key_value_heads", o.kv_heads},
      {"head_dim", o.head_dim},
      {"max_position_embeddings", o.context},
      {"rms_norm_eps", 1e-5},
      {"rope_theta", 10000.0},
      {"tie_word_embeddings", o.tied},
      {"hidden_act", gemma ? "gelu_pytorch_tanh" : "silu"},
      {"bos_token_id", 1},
      {"eos_token_id", 2}};
  if (gemma) {
    j["query_pre_attn_scalar"] = o.head_dim;
    j["final_logit_softcapping"] = nullptr;
  }
  return j;
}

// A hub config.json with its sizes replaced (TinyModelOptions::hf_config_path).
absl::StatusOr<nlohmann::ordered_json> ShrunkConfigJson(const TinyModelOptions& o, int vocab) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(o.hf_config_path));
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(text, nullptr, false);
  if (!j.is_object()) return absl::InvalidArgumentError(o.hf_config_path + ": not a JSON object");
  j["vocab_size"] = vocab;
  j["hidden_size"] = o.hidden;
  j["intermediate_size"] = o.intermediate;
  j["num_hidden_layers"] = o.layers;
  j["num_attention_heads"] = o.heads;
  j["num_key_value_heads"] = o.kv_heads;
  if (j.contains("head_dim")) {
    j["head_dim"] = o.head_dim;
  } else if (o.hidden != o.heads * o.head_dim) {
    return absl::InvalidArgumentError(o.hf_config_path + " has no head_dim: hidden must be heads * head_dim");
  }
  j["max_position_embeddings"] = o.context;
  if (o.untie) j["tie_word_embeddings"] = false;
  j["bos_token_id"] = 1;
  j["eos_token_id"] = j["eos_token_id"].is_array() ? nlohmann::ordered_json::array({2}) : nlohmann::ordered_json(2);
  if (j.contains("rope_scaling") && j["rope_scaling"].is_object() &&
      j["rope_scaling"].contains("original_max_position_embeddings")) {
    j["rope_scaling"]["original_max_position_embeddings"] = o.rope_original_context;
  }
  if (j.value("model_type", "") == "gemma3_text") {
    j["sliding_window"] = o.sliding_window;
    if (j.contains("query_pre_attn_scalar")) j["query_pre_attn_scalar"] = o.head_dim;
  }
  if (j.contains("layer_types") && j["layer_types"].is_array()) {
    nlohmann::ordered_json t = nlohmann::ordered_json::array();
    for (int64_t l = 0; l < o.layers && l < static_cast<int64_t>(j["layer_types"].size()); ++l) {
      t.push_back(j["layer_types"][l]);
    }
    j["layer_types"] = t;
  }
  return j;
}

}  // namespace

absl::Status WriteTinyCheckpoint(const std::string& dir, const TinyModelOptions& o) {
  ::mkdir(dir.c_str(), 0755);
  int vocab = 0;
  RETURN_IF_ERROR(MakeTokenizer(dir, o, &vocab));
  vocab += o.vocab_pad;
  nlohmann::ordered_json cj;
  if (o.hf_config_path.empty()) {
    cj = nlohmann::ordered_json::parse(ConfigJson(o, vocab).dump());  // same text as before
  } else {
    ASSIGN_OR_RETURN(cj, ShrunkConfigJson(o, vocab));
  }
  RETURN_IF_ERROR(WriteFileAtomic(dir + "/config.json", cj.dump(2)));
  // Parse back through the shared reader so the tensor list matches it.
  ASSIGN_OR_RETURN(ModelConfig cfg, ModelConfig::FromJson(cj, dir + "/config.json"));
  std::mt19937 rng(o.seed);
  safetensors::SafetensorsWriter w;
  for (const ArchTensor& t : ArchTensors(cfg)) {
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    std::vector<float> x(n);
    if (t.role() == TensorRole::kBias) {
      std::normal_distribution<float> g(0.0f, static_cast<float>(o.bias_std));
      for (float& v : x) v = g(rng);
    } else if (!t.quantizable()) {
      // Around 1 for llama (w), around 0 for Gemma (1 + w).
      std::uniform_real_distribution<float> u(-0.2f, 0.2f);
      for (float& v : x) v = (t.add_one ? 0.0f : 1.0f) + u(rng);
    } else {
      const float std = static_cast<float>(o.weight_std / std::sqrt(double(t.shape[1])));
      const float emb_std = static_cast<float>(o.embed_std > 0 ? o.embed_std : o.weight_std);
      std::normal_distribution<float> g(0.0f, t.module == "model.embed_tokens" ? emb_std : std);
      for (float& v : x) v = g(rng);
    }
    RETURN_IF_ERROR(w.AddF32(t.hf_name, t.shape, x));
  }
  RETURN_IF_ERROR(w.Write(dir + "/model.safetensors"));
  if (!o.recipe_json.empty()) RETURN_IF_ERROR(WriteFileAtomic(dir + "/recipe.json", o.recipe_json));
  return absl::OkStatus();
}

absl::Status AddQuantState(const std::string& dir, unsigned seed) {
  ASSIGN_OR_RETURN(exporter::Checkpoint ck, exporter::OpenCheckpoint(dir));
  if (!ck.recipe) return absl::InvalidArgumentError(dir + ": no recipe.json");
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> clip(0.6f, 1.0f), act(0.02f, 0.03f);
  safetensors::SafetensorsWriter w;
  for (const auto& t : ck.weights.tensors()) {
    ASSIGN_OR_RETURN(std::vector<float> x, ck.weights.ReadFloat(t.name));
    RETURN_IF_ERROR(w.AddF32(t.name, t.shape, x));
    if (!absl::EndsWith(t.name, ".weight") || t.shape.size() != 2) continue;
    const std::string module = t.name.substr(0, t.name.size() - 7);
    const LayerQuant lq = ck.recipe->Resolve(module);
    if (lq.weight.enabled() && lq.weight.has_stored_scale() && lq.weight.is_block()) {
      // Learned q4_0: one d per block, the reference's m/-8 times a clip ratio.
      const int64_t rows = t.shape[0], cols = t.shape[1], nb = cols / kQK4_0;
      std::vector<float> s(rows * nb);
      for (int64_t i = 0; i < rows * nb; ++i) {
        uint8_t q[kQK4_0];
        Q4_0Codes(&x[i * kQK4_0], q, &s[i]);
        s[i] *= clip(rng);
      }
      for (int64_t b = 0; b < nb; ++b) s[nb + b] = -s[nb + b];
      RETURN_IF_ERROR(w.AddF32(module + ".weight_scale", {rows, nb}, s));
    } else if (lq.weight.enabled() && lq.weight.has_stored_scale()) {
      const int64_t rows = t.shape[0], cols = t.shape[1];
      std::vector<float> s(rows);  // [rows, 1]
      for (int64_t r = 0; r < rows; ++r) {
        float amax = 0;
        for (int64_t c = 0; c < cols; ++c) amax = std::max(amax, std::fabs(x[r * cols + c]));
        s[r] = amax / lq.weight.Qp() * clip(rng);
      }
      s[1] = -s[1];
      RETURN_IF_ERROR(w.AddF32(module + ".weight_scale", {rows, 1}, s));
    }
    if (lq.input.enabled() && module != "model.embed_tokens") {
      RETURN_IF_ERROR(w.AddF32(module + ".input_scale", {1}, std::vector<float>{act(rng)}));
    }
  }
  for (int64_t l = 0; l < ck.config.num_hidden_layers; ++l) {
    const std::string a = "model.layers." + std::to_string(l) + ".self_attn.";
    if (!ck.recipe->Resolve(a + "k_cache").cache.enabled()) continue;
    RETURN_IF_ERROR(w.AddF32(a + "k_scale", {1}, std::vector<float>{act(rng)}));
    RETURN_IF_ERROR(w.AddF32(a + "v_scale", {1}, std::vector<float>{act(rng)}));
  }
  return w.Write(dir + "/model.safetensors");
}

std::string RecipeQ4_0Learned() {
  return R"json({
  "recipe_version": 1,
  "name": "q4_0_learned",
  "description": "Q4_0 with learned block scales: linears and embeddings (test)",
  "export_format": "gguf",
  "rules": [
    {"match": ["model.layers.*.self_attn.*_proj", "model.layers.*.mlp.*_proj", "model.embed_tokens"],
     "weight": {"scheme": "q4_0", "scale_rule": "learned"}},
    {"match": "lm_head", "weight": {"scheme": "q8_0"}, "optional": true}
  ]
})json";
}

std::string RecipeQ4_0Q2Head() {
  return R"json({
  "recipe_version": 1,
  "name": "q4_0_q2head",
  "description": "Q4_0 body, Q2_0 output head, Q8_0 embeddings (test)",
  "export_format": "gguf",
  "rules": [
    {"match": ["model.layers.*.self_attn.*_proj", "model.layers.*.mlp.*_proj"],
     "weight": {"scheme": "q4_0"}},
    {"match": "lm_head", "weight": {"scheme": "q2_0"}, "optional": true},
    {"match": "model.embed_tokens", "weight": {"scheme": "q8_0"}}
  ]
})json";
}

std::string RecipeQ4_0() {
  return R"json({
  "recipe_version": 1,
  "name": "q4_0",
  "export_format": "gguf",
  "rules": [
    {"match": ["model.layers.*.self_attn.*_proj", "model.layers.*.mlp.*_proj"],
     "weight": {"scheme": "q4_0"}},
    {"match": "lm_head", "weight": {"scheme": "q4_0"}, "optional": true}
  ]
})json";
}

}  // namespace qatk::testing
