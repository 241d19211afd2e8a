// Test helper: writes a small random checkpoint directory (config.json,
// model.safetensors, tokenizer.model trained per docs/formats/gguf.md ("Tokenizer metadata"), optional
// recipe.json) following docs/ARCHITECTURE.md.
#ifndef QATK_TESTS_EXPORT_TINY_CHECKPOINT_H_
#define QATK_TESTS_EXPORT_TINY_CHECKPOINT_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace qatk::testing {

struct TinyModelOptions {
  std::string model_type = "llama";  // "llama" | "qwen2" | "qwen3" | "gemma3_text"
  int64_t hidden = 64;               // E
  int64_t intermediate = 128;        // F
  int64_t layers = 2;                // L
  int64_t heads = 4;                 // H
  int64_t kv_heads = 2;              // Hkv
  int64_t head_dim = 16;             // D
  int64_t context = 256;
  bool tied = false;
  int vocab = 320;                   // SentencePiece vocab size (>= 259 + merges)
  unsigned seed = 1;
  double weight_std = 0.5;           // linears get weight_std/sqrt(in)
  double embed_std = 0;              // token embedding std; 0 = weight_std
  std::string recipe_json;           // "" = full-precision checkpoint
  std::string tokenizer_text;        // "" = SyntheticText(2000, seed)
  std::string tokenizer_model;       // existing .model to copy instead of training
  // A real Hugging Face config.json to shrink instead of the keys above: its
  // keys and values are kept except the sizes (vocab, hidden, intermediate,
  // layers, heads, kv heads, head_dim when present, context, Llama 3
  // rope_scaling.original_max_position_embeddings = rope_original_context,
  // Gemma's sliding_window and query_pre_attn_scalar = head_dim, layer_types
  // cut to `layers`) and the special ids (bos 1, eos 2: the tokenizer's).
  // model_type, tied and heads/head_dim consistency come from the file.
  std::string hf_config_path;
  bool untie = false;                // hf_config_path: tie_word_embeddings false
  int vocab_pad = 0;                 // embedding rows past the tokenizer's pieces
  int64_t rope_original_context = 64;
  int64_t sliding_window = 16;
  double bias_std = 0.5;             // q/k/v biases (qwen2)
};

absl::Status WriteTinyCheckpoint(const std::string& dir, const TinyModelOptions& o);

// Adds the quantizer state dir/recipe.json asks for to dir/model.safetensors,
// as a trainer would (docs/ARCHITECTURE.md names): `<module>.weight_scale`
// [R, 1] for mse/learned weight rules ([R, C/32] for learned q4_0: the
// reference's d per block times a clip ratio, row 1 negated) = absmax/Qp times a random clip ratio
// in [0.6, 1] (so it differs from the absmax rule) with row 1 negated (LSQ
// can train a scale below zero); `<module>.input_scale` [1] and
// `model.layers.N.self_attn.{k,v}_scale` [1] in [0.02, 0.03].
absl::Status AddQuantState(const std::string& dir, unsigned seed);

// The recipes the tests use (ARCHITECTURE.md format).
std::string RecipeQ4_0Q2Head();  // q4_0 linears, q2_0 lm_head, q8_0 embeddings
std::string RecipeQ4_0();        // q4_0 linears + lm_head, embeddings unquantized
std::string RecipeQ4_0Learned(); // learned-scale q4_0 linears and embeddings, q8_0 lm_head

}  // namespace qatk::testing

#endif  // QATK_TESTS_EXPORT_TINY_CHECKPOINT_H_
