#include "export/tensor_plan.h"

#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "formats/util/status_macros.h"

namespace qatk::exporter {
namespace {

GgufTensorSpec Linear(const std::string& module, const std::string& gguf, int64_t out,
                      int64_t in) {
  GgufTensorSpec t;
  t.hf_name = module + ".weight";
  t.gguf_name = gguf;
  t.module = module;
  t.shape = {out, in};
  return t;
}

GgufTensorSpec Norm(const std::string& hf, const std::string& gguf, int64_t n, bool gemma) {
  GgufTensorSpec t;
  t.hf_name = hf;
  t.gguf_name = gguf;
  t.shape = {n};
  t.is_norm = true;
  t.add_one = gemma;
  return t;
}

void AppendLayer(const ModelConfig& c, int64_t l, std::vector<GgufTensorSpec>* out) {
  const bool gemma = c.is_gemma();
  const std::string hf = absl::StrCat("model.layers.", l, ".");
  const std::string gg = absl::StrCat("blk.", l, ".");
  const int64_t E = c.hidden_size, F = c.intermediate_size, D = c.head_dim;
  out->push_back(Norm(hf + "input_layernorm.weight", gg + "attn_norm.weight", E, gemma));
  GgufTensorSpec q = Linear(hf + "self_attn.q_proj", gg + "attn_q.weight", c.q_dim(), E);
  GgufTensorSpec k = Linear(hf + "self_attn.k_proj", gg + "attn_k.weight", c.kv_dim(), E);
  if (!gemma) {
    q.permute_heads = c.num_attention_heads;
    k.permute_heads = c.num_key_value_heads;
  }
  out->push_back(q);
  out->push_back(k);
  out->push_back(Linear(hf + "self_attn.v_proj", gg + "attn_v.weight", c.kv_dim(), E));
  out->push_back(Linear(hf + "self_attn.o_proj", gg + "attn_output.weight", E, c.q_dim()));
  if (gemma) {
    out->push_back(Norm(hf + "self_attn.q_norm.weight", gg + "attn_q_norm.weight", D, true));
    out->push_back(Norm(hf + "self_attn.k_norm.weight", gg + "attn_k_norm.weight", D, true));
    out->push_back(Norm(hf + "post_attention_layernorm.weight",
                        gg + "post_attention_norm.weight", E, true));
    out->push_back(Norm(hf + "pre_feedforward_layernorm.weight", gg + "ffn_norm.weight", E, true));
  } else {
    out->push_back(
        Norm(hf + "post_attention_layernorm.weight", gg + "ffn_norm.weight", E, false));
  }
  out->push_back(Linear(hf + "mlp.gate_proj", gg + "ffn_gate.weight", F, E));
  out->push_back(Linear(hf + "mlp.up_proj", gg + "ffn_up.weight", F, E));
  out->push_back(Linear(hf + "mlp.down_proj", gg + "ffn_down.weight", E, F));
  if (gemma) {
    out->push_back(Norm(hf + "post_feedforward_layernorm.weight", gg + "post_ffw_norm.weight",
                        E, true));
  }
}

}  // namespace

const char* GgufArchName(const ModelConfig& c) { return c.is_gemma() ? "gemma3" : "llama"; }

std::vector<GgufTensorSpec> GgufTensorList(const ModelConfig& c) {
  std::vector<GgufTensorSpec> out;
  out.push_back(Linear("model.embed_tokens", "token_embd.weight", c.vocab_size, c.hidden_size));
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) AppendLayer(c, l, &out);
  out.push_back(Norm("model.norm.weight", "output_norm.weight", c.hidden_size, c.is_gemma()));
  if (!c.tie_word_embeddings) {
    out.push_back(Linear("lm_head", "output.weight", c.vocab_size, c.hidden_size));
  }
  return out;
}

void PermuteRowsForNormRope(const float* src, float* dst, int64_t n_heads, int64_t d,
                            int64_t cols) {
  QATK_CHECK(d % 2 == 0, "head_dim must be even for rope");
  const int64_t half = d / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        const float* s = src + (h * d + j * half + i) * cols;
        float* t = dst + (h * d + 2 * i + j) * cols;
        std::memcpy(t, s, sizeof(float) * cols);
      }
    }
  }
}

void UnpermuteRowsForNormRope(const float* src, float* dst, int64_t n_heads, int64_t d,
                              int64_t cols) {
  QATK_CHECK(d % 2 == 0, "head_dim must be even for rope");
  const int64_t half = d / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        const float* s = src + (h * d + 2 * i + j) * cols;
        float* t = dst + (h * d + j * half + i) * cols;
        std::memcpy(t, s, sizeof(float) * cols);
      }
    }
  }
}

bool IsQuantizerState(const std::string& hf_name) {
  return absl::EndsWith(hf_name, ".weight_scale") || absl::EndsWith(hf_name, ".input_scale") ||
         absl::EndsWith(hf_name, ".k_scale") || absl::EndsWith(hf_name, ".v_scale");
}

}  // namespace qatk::exporter
