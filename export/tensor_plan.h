// The tensor set of a GGUF file for a checkpoint, as the exporters use it:
// the architecture table (formats/model_arch.h) flattened to Hugging Face
// name -> llama.cpp name, the recipe module each weight belongs to, and the
// layout transforms the llama.cpp architectures need.
//
// Dimension letters: V vocab, E hidden, F intermediate, H query heads,
// Hk kv heads, D head dim, L layers.
#ifndef QATK_EXPORT_TENSOR_PLAN_H_
#define QATK_EXPORT_TENSOR_PLAN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "formats/model_arch.h"
#include "formats/model_config.h"

namespace qatk::exporter {

struct GgufTensorSpec {
  std::string hf_name;         // "model.layers.0.self_attn.q_proj.weight"
  std::string gguf_name;       // "blk.0.attn_q.weight"
  std::string module;          // recipe module "model.layers.0.self_attn.q_proj"; "" for norms
  std::vector<int64_t> shape;  // PyTorch order: [out, in] for linears, [E] or [D] for norms
  bool is_norm = false;        // 1-D (norms, biases): stored F32, never quantized
  int64_t permute_heads = 0;   // > 0: llama q/k row permutation over this many heads
  bool add_one = false;        // Gemma (1+w) RMSNorm folding: store w + 1
};

// The llama.cpp arch name ("llama", "gemma3"): ArchDef::gguf_arch.
const char* GgufArchName(const ModelConfig& c);

// Every tensor the llama.cpp architecture expects, in file order
// (ForEachTensor of formats/model_arch.h).
std::vector<GgufTensorSpec> GgufTensorList(const ModelConfig& c);

// llama.cpp's NORM rope rotates adjacent pairs, HF rotates halves. Per head
// of D rows: dst row 2i+j = src row j*D/2+i (i < D/2, j in {0,1}).
// src, dst: [n_heads*D, cols] row-major; must not alias.
void PermuteRowsForNormRope(const float* src, float* dst, int64_t n_heads, int64_t d,
                            int64_t cols);
// The inverse (dst row j*D/2+i = src row 2i+j).
void UnpermuteRowsForNormRope(const float* src, float* dst, int64_t n_heads, int64_t d,
                              int64_t cols);

// Names of checkpoint tensors that carry quantizer state rather than model
// weights (`*.weight_scale`, `*.input_scale`, `*.k_scale`, `*.v_scale`).
bool IsQuantizerState(const std::string& hf_name);

}  // namespace qatk::exporter

#endif  // QATK_EXPORT_TENSOR_PLAN_H_
