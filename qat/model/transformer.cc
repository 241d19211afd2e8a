#include "qat/model/transformer.h"

#include <cmath>
#include <limits>
#include <string>

#include "formats/util/status_macros.h"

namespace qatk::qat {

RMSNormImpl::RMSNormImpl(int64_t dim, double eps, bool gemma) : eps_(eps), gemma_(gemma) {
  weight = register_parameter("weight", gemma ? torch::zeros({dim}) : torch::ones({dim}));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  torch::Tensor xf = x.to(torch::kFloat32);
  torch::Tensor y = xf * torch::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps_);
  if (gemma_) return (y * (1.0 + weight.to(torch::kFloat32))).to(x.scalar_type());
  return weight * y.to(x.scalar_type());
}

std::pair<torch::Tensor, torch::Tensor> RotaryCosSin(int64_t T, int64_t D, double theta,
                                                     const torch::Device& device,
                                                     const std::vector<float>& freq_divisors) {
  auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(device);
  // inv_freq [D/2] = 1 / theta^(2i/D), computed as HF does (int64 arange -> float).
  torch::Tensor inv_freq =
      1.0 / torch::pow(theta, torch::arange(0, D, 2, f32.dtype(torch::kInt64)).to(torch::kFloat32) / D);
  if (!freq_divisors.empty()) {
    QATK_CHECK(static_cast<int64_t>(freq_divisors.size()) == D / 2, "one RoPE divisor per frequency");
    inv_freq = inv_freq / torch::tensor(freq_divisors, torch::kFloat32).to(device);
  }
  torch::Tensor pos = torch::arange(T, f32.dtype(torch::kInt64)).to(torch::kFloat32);  // [T]
  torch::Tensor freqs = torch::outer(pos, inv_freq);                                   // [T, D/2]
  torch::Tensor emb = torch::cat({freqs, freqs}, -1);                                  // [T, D]
  return {emb.cos(), emb.sin()};
}

torch::Tensor ApplyRotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  torch::Tensor rot = torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
  return x * cos + rot * sin;
}

AttentionImpl::AttentionImpl(const ModelConfig& c, int64_t layer)
    : H_(c.num_attention_heads), Hkv_(c.num_key_value_heads), D_(c.head_dim),
      window_(c.is_sliding_layer(layer) ? c.sliding_window : 0),
      theta_(c.layer_rope_theta(layer)), scale_(c.attention_scale()) {
  const int64_t E = c.hidden_size;
  const bool bias = c.has_qkv_bias();
  q_proj = register_module("q_proj", QLinear(E, H_ * D_, bias));
  k_proj = register_module("k_proj", QLinear(E, Hkv_ * D_, bias));
  v_proj = register_module("v_proj", QLinear(E, Hkv_ * D_, bias));
  o_proj = register_module("o_proj", QLinear(H_ * D_, E));
  if (c.has_qk_norm()) {
    q_norm = register_module("q_norm", RMSNorm(D_, c.rms_norm_eps, c.is_gemma()));
    k_norm = register_module("k_norm", RMSNorm(D_, c.rms_norm_eps, c.is_gemma()));
  }
  // rope_scaling is a llama option (ModelConfig::Validate): every layer scales.
  if (c.rope_scaling) rope_divisors_ = c.RopeFreqFactors();
  k_cache = register_module("k_cache", KvQuant());
  v_cache = register_module("v_cache", KvQuant());
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x) {
  const int64_t B = x.size(0), T = x.size(1);
  // q/k/v read the same x: one input quantization when their quantizers agree.
  const torch::Tensor xq = q_proj->QuantizeInput(x);
  auto project = [&](QLinear& p) {
    return q_proj->SharesInputQuantizer(*p) ? p->ForwardQuantized(xq) : p->forward(x);
  };
  torch::Tensor q = q_proj->ForwardQuantized(xq).view({B, T, H_, D_}).transpose(1, 2);  // [B, H, T, D]
  torch::Tensor k = project(k_proj).view({B, T, Hkv_, D_}).transpose(1, 2);            // [B, Hkv, T, D]
  torch::Tensor v = project(v_proj).view({B, T, Hkv_, D_}).transpose(1, 2);            // [B, Hkv, T, D]
  if (q_norm) {
    q = q_norm->forward(q);
    k = k_norm->forward(k);
  }
  auto [cos, sin] = RotaryCosSin(T, D_, theta_, x.device(), rope_divisors_);
  q = ApplyRotary(q, cos, sin);
  k = k_cache->forward(ApplyRotary(k, cos, sin));
  v = v_cache->forward(v);
  if (Hkv_ != H_) {  // GQA: query head h reads kv head h / (H / Hkv)
    k = k.repeat_interleave(H_ / Hkv_, /*dim=*/1);  // [B, H, T, D]
    v = v.repeat_interleave(H_ / Hkv_, /*dim=*/1);
  }
  torch::Tensor scores = torch::matmul(q, k.transpose(-2, -1)) * scale_;  // [B, H, T, T]
  auto opts = torch::TensorOptions().dtype(torch::kInt64).device(x.device());
  torch::Tensor i = torch::arange(T, opts).unsqueeze(1), j = torch::arange(T, opts).unsqueeze(0);
  torch::Tensor masked = j > i;  // [T, T] causal
  if (window_ > 0) masked = masked.logical_or(i - j >= window_);
  scores = scores.masked_fill(masked, -std::numeric_limits<float>::infinity());
  torch::Tensor probs = torch::softmax(scores.to(torch::kFloat32), -1).to(q.scalar_type());
  torch::Tensor out = torch::matmul(probs, v).transpose(1, 2).reshape({B, T, H_ * D_});
  return o_proj->forward(out);
}

MlpImpl::MlpImpl(const ModelConfig& c) : gelu_(c.hidden_act == "gelu_pytorch_tanh") {
  gate_proj = register_module("gate_proj", QLinear(c.hidden_size, c.intermediate_size));
  up_proj = register_module("up_proj", QLinear(c.hidden_size, c.intermediate_size));
  down_proj = register_module("down_proj", QLinear(c.intermediate_size, c.hidden_size));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) {
  const torch::Tensor xq = gate_proj->QuantizeInput(x);  // shared with up_proj when they agree
  torch::Tensor g = gate_proj->ForwardQuantized(xq);     // [B, T, F]
  g = gelu_ ? torch::gelu(g, "tanh") : torch::silu(g);
  const torch::Tensor u = gate_proj->SharesInputQuantizer(*up_proj) ? up_proj->ForwardQuantized(xq) : up_proj->forward(x);
  return down_proj->forward(g * u);
}

DecoderLayerImpl::DecoderLayerImpl(const ModelConfig& c, int64_t layer) : gemma_(c.is_gemma()) {
  const int64_t E = c.hidden_size;
  input_layernorm = register_module("input_layernorm", RMSNorm(E, c.rms_norm_eps, gemma_));
  self_attn = register_module("self_attn", Attention(c, layer));
  post_attention_layernorm = register_module("post_attention_layernorm", RMSNorm(E, c.rms_norm_eps, gemma_));
  if (gemma_) {
    pre_feedforward_layernorm = register_module("pre_feedforward_layernorm", RMSNorm(E, c.rms_norm_eps, true));
    post_feedforward_layernorm = register_module("post_feedforward_layernorm", RMSNorm(E, c.rms_norm_eps, true));
  }
  mlp = register_module("mlp", Mlp(c));
}

torch::Tensor DecoderLayerImpl::forward(const torch::Tensor& x) {
  if (!gemma_) {
    torch::Tensor h = x + self_attn->forward(input_layernorm->forward(x));
    return h + mlp->forward(post_attention_layernorm->forward(h));
  }
  torch::Tensor h = x + post_attention_layernorm->forward(self_attn->forward(input_layernorm->forward(x)));
  return h + post_feedforward_layernorm->forward(mlp->forward(pre_feedforward_layernorm->forward(h)));
}

DecoderImpl::DecoderImpl(const ModelConfig& c) : gemma_(c.is_gemma()), E_(c.hidden_size) {
  embed_tokens = register_module("embed_tokens", QEmbedding(c.vocab_size, c.hidden_size));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) layers->push_back(DecoderLayer(c, l));
  norm = register_module("norm", RMSNorm(c.hidden_size, c.rms_norm_eps, gemma_));
}

torch::Tensor DecoderImpl::EmbedInput(const torch::Tensor& ids) {
  torch::Tensor x = embed_tokens->forward(ids);  // [B, T, E]
  if (gemma_) {
    // HF: normalizer = tensor(sqrt(E), dtype=x.dtype).
    x = x * torch::tensor(std::sqrt(static_cast<double>(E_)), x.options());
  }
  return x;
}

torch::Tensor DecoderImpl::forward(const torch::Tensor& ids) {
  torch::Tensor x = EmbedInput(ids);
  for (const auto& layer : *layers) x = layer->as<DecoderLayer>()->forward(x);
  return norm->forward(x);
}

CausalLMImpl::CausalLMImpl(const ModelConfig& c) : config_(c) {
  model = register_module("model", Decoder(c));
  if (!c.tie_word_embeddings) lm_head = register_module("lm_head", QLinear(c.hidden_size, c.vocab_size));
}

torch::Tensor CausalLMImpl::forward(const torch::Tensor& ids) {
  torch::Tensor h = model->forward(ids);  // [B, T, E]
  torch::Tensor logits = lm_head ? lm_head->forward(h)
                                 : torch::matmul(h, model->embed_tokens->QuantizedWeight().t());  // [B, T, V]
  if (config_.final_logit_softcapping) {
    const double cap = *config_.final_logit_softcapping;
    logits = torch::tanh(logits / cap) * cap;
  }
  return logits;
}

void CausalLMImpl::InitWeights(uint64_t seed) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(seed);
  const double std = 0.02, out_std = 0.02 / std::sqrt(2.0 * config_.num_hidden_layers);
  for (auto& p : named_parameters()) {
    const std::string& name = p.key();
    torch::Tensor& t = p.value();
    if (name.find("norm.weight") != std::string::npos || name.find("layernorm") != std::string::npos) {
      t.fill_(config_.is_gemma() ? 0.0 : 1.0);
    } else if (name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0) {
      t.zero_();
    } else if (name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0) {
      const bool out = name.find("o_proj") != std::string::npos || name.find("down_proj") != std::string::npos;
      t.normal_(0.0, out ? out_std : std);
    }
  }
}

}  // namespace qatk::qat
