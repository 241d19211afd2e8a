// Llama-family decoder (Llama 3 / SmolLM2, Qwen2, Qwen3 and Gemma3 text) in
// LibTorch, configured by a ModelConfig and following the HF modelling code of
// each family (tests/qat/model/hf_reference.py is the numpy reference).
// Dimension letters: B batch, T time, E hidden, H query heads, Hkv key/value
// heads, D head dim, F ffn, V vocab.
//
// register_module names are the Hugging Face state-dict names:
//   model.embed_tokens.weight [V, E]
//   model.layers.N.input_layernorm.weight [E]
//   model.layers.N.self_attn.{q,k,v,o}_proj.weight  [H*D, E] [Hkv*D, E] [Hkv*D, E] [E, H*D]
//   model.layers.N.self_attn.{q,k,v}_proj.bias [H*D] [Hkv*D] [Hkv*D] (Qwen2)
//   model.layers.N.self_attn.{q,k}_norm.weight [D]                 (Qwen3, Gemma)
//   model.layers.N.post_attention_layernorm.weight [E]
//   model.layers.N.{pre,post}_feedforward_layernorm.weight [E]     (Gemma)
//   model.layers.N.mlp.{gate,up,down}_proj.weight [F, E] [F, E] [E, F]
//   model.norm.weight [E];  lm_head.weight [V, E] (absent when tied)
// Fake-quant points (configured by ApplyRecipe): every *_proj and lm_head
// (QLinear), model.embed_tokens (QEmbedding), and self_attn.k_cache /
// v_cache (KvQuant: k after RoPE and v, before attention).
#ifndef QATK_QAT_MODEL_TRANSFORMER_H_
#define QATK_QAT_MODEL_TRANSFORMER_H_

#include <torch/torch.h>

#include <vector>

#include "formats/model_config.h"
#include "qat/quant/qlinear.h"

namespace qatk::qat {

// HF RMSNorm: x * rsqrt(mean(x^2) + eps) * w, or * (1 + w) for Gemma
// (`gemma`: every Gemma norm, q/k norms included; Qwen3's q/k norms are plain).
class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t dim, double eps, bool gemma);
  torch::Tensor forward(const torch::Tensor& x);  // [..., dim]
  torch::Tensor weight;                           // [dim]; ones (plain) / zeros (Gemma)

 private:
  double eps_;
  bool gemma_;
};
TORCH_MODULE(RMSNorm);

// cos, sin [T, D] for positions 0..T-1 (HF layout: the D/2 frequencies twice).
// `freq_divisors` (empty, or D/2 values: ModelConfig::RopeFreqFactors) divide
// the inverse frequencies, as Llama 3's rope_scaling does.
std::pair<torch::Tensor, torch::Tensor> RotaryCosSin(int64_t T, int64_t D, double theta,
                                                     const torch::Device& device,
                                                     const std::vector<float>& freq_divisors = {});
// x [B, h, T, D] -> x*cos + rotate_half(x)*sin, rotate_half(x) = cat(-x2, x1).
torch::Tensor ApplyRotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(const ModelConfig& c, int64_t layer);
  torch::Tensor forward(const torch::Tensor& x);  // [B, T, E] -> [B, T, E]
  QLinear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  RMSNorm q_norm{nullptr}, k_norm{nullptr};  // Qwen3 and Gemma: per head, before RoPE
  KvQuant k_cache{nullptr}, v_cache{nullptr};

 private:
  int64_t H_, Hkv_, D_, window_;
  double theta_, scale_;
  std::vector<float> rope_divisors_;  // empty without rope_scaling
};
TORCH_MODULE(Attention);

class MlpImpl : public torch::nn::Module {
 public:
  explicit MlpImpl(const ModelConfig& c);
  torch::Tensor forward(const torch::Tensor& x);  // [B, T, E] -> [B, T, E]
  QLinear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};

 private:
  bool gelu_;
};
TORCH_MODULE(Mlp);

class DecoderLayerImpl : public torch::nn::Module {
 public:
  DecoderLayerImpl(const ModelConfig& c, int64_t layer);
  torch::Tensor forward(const torch::Tensor& x);  // [B, T, E]
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  RMSNorm pre_feedforward_layernorm{nullptr}, post_feedforward_layernorm{nullptr};  // Gemma
  Attention self_attn{nullptr};
  Mlp mlp{nullptr};

 private:
  bool gemma_;
};
TORCH_MODULE(DecoderLayer);

class DecoderImpl : public torch::nn::Module {  // "model"
 public:
  explicit DecoderImpl(const ModelConfig& c);
  torch::Tensor forward(const torch::Tensor& ids);  // [B, T] int64 -> hidden [B, T, E]
  // The first layer's input: the embeddings (times sqrt(E) for Gemma).
  torch::Tensor EmbedInput(const torch::Tensor& ids);  // [B, T] int64 -> [B, T, E]
  QEmbedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};

 private:
  bool gemma_;
  int64_t E_;
};
TORCH_MODULE(Decoder);

class CausalLMImpl : public torch::nn::Module {
 public:
  explicit CausalLMImpl(const ModelConfig& c);
  torch::Tensor forward(const torch::Tensor& ids);  // [B, T] int64 -> logits [B, T, V]
  // N(0, 0.02) for linears and embeddings (o_proj / down_proj scaled by
  // 1/sqrt(2L)), biases zero (HF's init), norms at identity; deterministic
  // for a seed.
  void InitWeights(uint64_t seed);
  const ModelConfig& config() const { return config_; }
  Decoder model{nullptr};
  QLinear lm_head{nullptr};  // null when tie_word_embeddings

 private:
  ModelConfig config_;
};
TORCH_MODULE(CausalLM);

}  // namespace qatk::qat

#endif  // QATK_QAT_MODEL_TRANSFORMER_H_
