// The runtime's model types: hyperparameters, vocabulary and zero-copy
// weight views (loading: model_loader.h).
// One Model type serves every architecture the runtime runs:
//   llama  — NORM rope (pairs (2i, 2i+1): the exporter permuted Wq/Wk),
//            SwiGLU, RMSNorm * w; optional rope frequency factors
//            (rope_freqs.weight: Llama 3 rope scaling), which divide each
//            frequency's rotation angle.
//   qwen2  — llama's block with q/k/v biases, NEOX rope (pairs (i, i+D/2)).
//   qwen3  — llama's block with per-head q/k RMSNorm (* w, before rope),
//            NEOX rope; head_dim need not be E/H.
//   gemma3 — NEOX rope (pairs (i, i+D/2)), embedding * sqrt(E), per-head
//            q/k RMSNorm, post-attention and post-FFN norms, GEGLU (tanh),
//            norms stored as 1+w, optional final logit softcap, sliding
//            window layers when gemma3.attention.sliding_window > 0.
// Dimension letters: E embedding, V vocab, H query heads, Hk kv heads,
// D head dim, F feed-forward, L layers.
#ifndef QATK_INFERENCE_MODEL_H_
#define QATK_INFERENCE_MODEL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "inference/tokenizer.h"
#include "inference/weights.h"

namespace qatk::inference {

enum class Arch { kLlama, kQwen2, kQwen3, kGemma3 };

struct ModelConfig {
  Arch arch = Arch::kLlama;
  int n_vocab = 0, n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0;
  int head_dim = 0;  // D (key_length = value_length)
  int n_ff = 0;
  int n_ctx_train = 0;
  float rms_eps = 1e-5f;
  float rope_base = 10000.0f;
  float rope_base_swa = 10000.0f;  // gemma3 sliding layers
  bool rope_neox = false;
  bool gelu = false;               // GEGLU (tanh) instead of SwiGLU
  float embed_scale = 1.0f;        // gemma3: sqrt(E)
  float attn_scale = 1.0f;         // multiplies Q·K
  float final_softcap = 0.0f;      // 0 = none
  bool qk_norm = false, post_norms = false;
  int sliding_window = 0;          // 0 = every layer global
  int swa_pattern = 6;             // layer il slides if il % pattern < pattern-1
  bool IsSlidingLayer(int il) const {
    return sliding_window > 0 && il % swa_pattern < swa_pattern - 1;
  }
};

inline QuantSpec DefaultKvSpec() {
  QuantSpec s;
  s.scheme = QuantScheme::kIntTensor;
  s.bits = 8;
  s.scale_type = ScaleType::kF32;
  return s;
}

struct LayerWeights {
  QMatrix wq, wk, wv, wo;      // [H*D, E], [Hk*D, E], [Hk*D, E], [E, H*D]
  QMatrix gate, up, down;      // [F, E], [F, E], [E, F]
  std::vector<float> attn_norm, ffn_norm;            // [E]
  std::vector<float> post_attn_norm, post_ffw_norm;  // [E] (gemma3)
  std::vector<float> q_norm, k_norm;                 // [D] (qwen3, gemma3)
  std::vector<float> bq, bk, bv;  // [H*D], [Hk*D], [Hk*D] (qwen2); empty = no bias
  float k_scale = 0.0f, v_scale = 0.0f;  // static KV scales (mobile); 0 = none
  // The cache quantizer the model was trained with (bits, range, rounding):
  // the int8 KV cache rounds exactly as the QAT graph simulated.
  QuantSpec kv_spec = DefaultKvSpec();
};

struct Model {
  ModelConfig config;
  Vocab vocab;
  QMatrix tok_embd;               // [V, E]
  QMatrix output;                 // [V, E] (= tok_embd when tied)
  std::vector<float> output_norm; // [E]
  std::vector<LayerWeights> layers;
  // [D/2] divisor of rotary frequency i's angle (llama.cpp's
  // rope_freqs.weight; Llama 3 rope scaling); empty = all 1.
  std::vector<float> rope_freqs;
  uint64_t file_bytes = 0;
  std::shared_ptr<void> storage;  // keeps the mapping alive
  std::shared_ptr<void> repacked; // weights rearranged at load (kernels/x16.h)
  // A GPU backend's copy of the weights, made by its first session and
  // shared by later ones (inference/cuda/cuda_ops.h).
  mutable std::shared_ptr<void> device_weights;
};

// Row r of an embedding matrix as fp32 (GGUF types and kInt8Channel).
void DequantizeMatrixRow(const QMatrix& m, int64_t r, float* out /*[cols]*/);

}  // namespace qatk::inference

#endif  // QATK_INFERENCE_MODEL_H_
