// GGUF model loading: hyperparameters by their exact llama.cpp key names,
// the SPM vocabulary, and every weight as a zero-copy view into the mapping.
#include "inference/model.h"

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "formats/gguf/gguf.h"
#include "formats/quant/codecs.h"
#include "formats/util/status_macros.h"
#include "inference/kernels/x16.h"
#include "inference/mobile_model.h"

namespace qatk::inference {
namespace {

using gguf::GgufFile;

absl::StatusOr<int> GetInt(const GgufFile& f, const std::string& key, int def, bool required) {
  if (f.Find(key) == nullptr) {
    if (required) return absl::NotFoundError(absl::StrCat(f.path(), ": missing key ", key));
    return def;
  }
  ASSIGN_OR_RETURN(uint64_t v, f.GetUint(key));
  if (v > (1u << 30)) return absl::InvalidArgumentError(absl::StrCat(f.path(), ": ", key, " too large"));
  return static_cast<int>(v);
}

absl::StatusOr<float> GetF(const GgufFile& f, const std::string& key, float def) {
  if (f.Find(key) == nullptr) return def;
  ASSIGN_OR_RETURN(double v, f.GetFloat(key));
  return static_cast<float>(v);
}

absl::StatusOr<ModelConfig> ReadConfig(const GgufFile& f) {
  ModelConfig c;
  ASSIGN_OR_RETURN(std::string arch, f.GetString("general.architecture"));
  if (arch == "llama") {
    c.arch = Arch::kLlama;
  } else if (arch == "gemma3") {
    c.arch = Arch::kGemma3;
  } else {
    return absl::UnimplementedError(absl::StrCat(f.path(), ": architecture '", arch,
                                                 "' (supported: llama, gemma3)"));
  }
  const std::string p = arch + ".";
  ASSIGN_OR_RETURN(c.n_ctx_train, GetInt(f, p + "context_length", 0, true));
  ASSIGN_OR_RETURN(c.n_embd, GetInt(f, p + "embedding_length", 0, true));
  ASSIGN_OR_RETURN(c.n_layer, GetInt(f, p + "block_count", 0, true));
  ASSIGN_OR_RETURN(c.n_ff, GetInt(f, p + "feed_forward_length", 0, true));
  ASSIGN_OR_RETURN(c.n_head, GetInt(f, p + "attention.head_count", 0, true));
  ASSIGN_OR_RETURN(c.n_head_kv, GetInt(f, p + "attention.head_count_kv", c.n_head, false));
  if (c.n_head <= 0 || c.n_head_kv <= 0 || c.n_head % c.n_head_kv != 0 || c.n_layer <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(f.path(), ": bad head/layer counts"));
  }
  ASSIGN_OR_RETURN(c.head_dim, GetInt(f, p + "attention.key_length", c.n_embd / c.n_head, false));
  ASSIGN_OR_RETURN(int vdim, GetInt(f, p + "attention.value_length", c.head_dim, false));
  ASSIGN_OR_RETURN(int n_rot, GetInt(f, p + "rope.dimension_count", c.head_dim, false));
  if (vdim != c.head_dim || n_rot != c.head_dim || c.head_dim % 2 != 0) {
    return absl::UnimplementedError(absl::StrCat(
        f.path(), ": key_length, value_length and rope.dimension_count must be equal and even"));
  }
  ASSIGN_OR_RETURN(c.rms_eps, GetF(f, p + "attention.layer_norm_rms_epsilon", 1e-5f));
  ASSIGN_OR_RETURN(c.rope_base, GetF(f, p + "rope.freq_base", 10000.0f));
  c.attn_scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  if (c.arch == Arch::kGemma3) {
    c.rope_neox = true;
    c.gelu = true;
    c.qk_norm = c.post_norms = true;
    c.embed_scale = std::sqrt(static_cast<float>(c.n_embd));
    if (c.n_layer == 62) c.attn_scale = 1.0f / std::sqrt(float(c.n_embd / c.n_head));  // llama.cpp's 27B rule
    ASSIGN_OR_RETURN(c.final_softcap, GetF(f, p + "final_logit_softcapping", 0.0f));
    ASSIGN_OR_RETURN(c.sliding_window, GetInt(f, p + "attention.sliding_window", 0, false));
    ASSIGN_OR_RETURN(c.swa_pattern, GetInt(f, p + "attention.sliding_window_pattern", 6, false));
    ASSIGN_OR_RETURN(c.rope_base_swa, GetF(f, p + "rope.freq_base_swa", 10000.0f));
    if (c.swa_pattern <= 0) return absl::InvalidArgumentError("sliding_window_pattern must be > 0");
  }
  return c;
}

absl::StatusOr<Vocab> ReadVocab(const GgufFile& f) {
  Vocab v;
  ASSIGN_OR_RETURN(std::string model, f.GetString("tokenizer.ggml.model"));
  if (model != "llama") {
    return absl::UnimplementedError(
        absl::StrCat(f.path(), ": tokenizer.ggml.model '", model, "' (supported: llama)"));
  }
  const gguf::Value* tok = f.Find("tokenizer.ggml.tokens");
  if (tok == nullptr) return absl::NotFoundError(absl::StrCat(f.path(), ": missing tokenizer.ggml.tokens"));
  const auto* strs = std::get_if<std::vector<std::string>>(&tok->v);
  if (strs == nullptr) return absl::InvalidArgumentError("tokenizer.ggml.tokens is not a string array");
  v.tokens = *strs;
  const size_t n = v.tokens.size();
  v.scores.assign(n, 0.0f);
  v.types.assign(n, kTokNormal);
  if (const gguf::Value* s = f.Find("tokenizer.ggml.scores")) {
    const auto* d = std::get_if<std::vector<double>>(&s->v);
    if (d == nullptr || d->size() < n) return absl::InvalidArgumentError("tokenizer.ggml.scores: not a float array of n_vocab");
    for (size_t i = 0; i < n; ++i) v.scores[i] = static_cast<float>((*d)[i]);
  }
  if (const gguf::Value* t = f.Find("tokenizer.ggml.token_type")) {
    const auto* d = std::get_if<std::vector<int64_t>>(&t->v);
    if (d == nullptr || d->size() < n) return absl::InvalidArgumentError("tokenizer.ggml.token_type: not an int array of n_vocab");
    for (size_t i = 0; i < n; ++i) v.types[i] = static_cast<int32_t>((*d)[i]);
  }
  ASSIGN_OR_RETURN(v.bos, GetInt(f, "tokenizer.ggml.bos_token_id", 1, false));
  ASSIGN_OR_RETURN(v.eos, GetInt(f, "tokenizer.ggml.eos_token_id", 2, false));
  ASSIGN_OR_RETURN(v.unk, GetInt(f, "tokenizer.ggml.unknown_token_id", 0, false));
  if (f.Find("tokenizer.ggml.add_bos_token")) {
    ASSIGN_OR_RETURN(v.add_bos, f.GetBool("tokenizer.ggml.add_bos_token"));
  }
  if (f.Find("tokenizer.ggml.add_space_prefix")) {
    ASSIGN_OR_RETURN(v.add_space_prefix, f.GetBool("tokenizer.ggml.add_space_prefix"));
  }
  if (v.bos >= static_cast<int>(n) || v.eos >= static_cast<int>(n) || v.unk >= static_cast<int>(n)) {
    return absl::InvalidArgumentError(absl::StrCat(f.path(), ": special token id >= n_vocab"));
  }
  return v;
}

absl::StatusOr<QMatrix> Matrix(const GgufFile& f, const std::string& name, int64_t rows,
                               int64_t cols) {
  const gguf::TensorInfo* t = f.FindTensor(name);
  if (t == nullptr) return absl::NotFoundError(absl::StrCat(f.path(), ": missing tensor ", name));
  if (t->ne.size() < 2 || t->ne[0] != cols || t->ne[1] != rows || t->n_elements() != rows * cols) {
    return absl::InvalidArgumentError(absl::StrCat(f.path(), ": tensor ", name, " has shape ne[0]=",
                                                   t->ne.empty() ? 0 : t->ne[0], ", expected {",
                                                   cols, ", ", rows, "}"));
  }
  WType wt;
  if (!WTypeFromGgml(t->type, &wt)) {
    return absl::UnimplementedError(absl::StrCat(f.path(), ": tensor ", name, " type ",
                                                 Traits(t->type).name, " has no runtime kernel"));
  }
  return MakeGgufMatrix(t->type, rows, cols, f.TensorData(*t));
}

absl::StatusOr<std::vector<float>> Vector(const GgufFile& f, const std::string& name, int64_t n) {
  const gguf::TensorInfo* t = f.FindTensor(name);
  if (t == nullptr) return absl::NotFoundError(absl::StrCat(f.path(), ": missing tensor ", name));
  if (t->n_elements() != n || t->ne[0] != n) {
    return absl::InvalidArgumentError(absl::StrCat(f.path(), ": tensor ", name, " has ",
                                                   t->n_elements(), " elements, expected ", n));
  }
  std::vector<float> out(n);
  DequantizeRow(t->type, f.TensorData(*t), out.data(), n);
  return out;
}

absl::Status ReadLayer(const GgufFile& f, const ModelConfig& c, int il, LayerWeights* l) {
  const std::string p = absl::StrCat("blk.", il, ".");
  const int64_t E = c.n_embd, D = c.head_dim, q = c.n_head * D, kv = c.n_head_kv * D, F = c.n_ff;
  ASSIGN_OR_RETURN(l->wq, Matrix(f, p + "attn_q.weight", q, E));
  ASSIGN_OR_RETURN(l->wk, Matrix(f, p + "attn_k.weight", kv, E));
  ASSIGN_OR_RETURN(l->wv, Matrix(f, p + "attn_v.weight", kv, E));
  ASSIGN_OR_RETURN(l->wo, Matrix(f, p + "attn_output.weight", E, q));
  ASSIGN_OR_RETURN(l->gate, Matrix(f, p + "ffn_gate.weight", F, E));
  ASSIGN_OR_RETURN(l->up, Matrix(f, p + "ffn_up.weight", F, E));
  ASSIGN_OR_RETURN(l->down, Matrix(f, p + "ffn_down.weight", E, F));
  ASSIGN_OR_RETURN(l->attn_norm, Vector(f, p + "attn_norm.weight", E));
  ASSIGN_OR_RETURN(l->ffn_norm, Vector(f, p + "ffn_norm.weight", E));
  if (c.post_norms) {
    ASSIGN_OR_RETURN(l->post_attn_norm, Vector(f, p + "post_attention_norm.weight", E));
    ASSIGN_OR_RETURN(l->post_ffw_norm, Vector(f, p + "post_ffw_norm.weight", E));
  }
  if (c.qk_norm) {
    ASSIGN_OR_RETURN(l->q_norm, Vector(f, p + "attn_q_norm.weight", D));
    ASSIGN_OR_RETURN(l->k_norm, Vector(f, p + "attn_k_norm.weight", D));
  }
  return absl::OkStatus();
}

}  // namespace

void DequantizeMatrixRow(const QMatrix& m, int64_t r, float* out) {
  const uint8_t* row = m.Row(r);
  switch (m.type) {
    case WType::kF32: DequantizeRow(GgmlType::kF32, row, out, m.cols); return;
    case WType::kF16: DequantizeRow(GgmlType::kF16, row, out, m.cols); return;
    case WType::kBF16: DequantizeRow(GgmlType::kBF16, row, out, m.cols); return;
    case WType::kQ8_0: DequantizeRow(GgmlType::kQ8_0, row, out, m.cols); return;
    case WType::kQ4_0: DequantizeRow(GgmlType::kQ4_0, row, out, m.cols); return;
    case WType::kQ2_0: DequantizeRow(GgmlType::kQ2_0, row, out, m.cols); return;
    case WType::kQ4_K: DequantizeRow(GgmlType::kQ4_K, row, out, m.cols); return;
    case WType::kQ6_K: DequantizeRow(GgmlType::kQ6_K, row, out, m.cols); return;
    case WType::kInt8Channel: {
      const float s = m.row_scales[r];
      for (int64_t i = 0; i < m.cols; ++i) out[i] = static_cast<int8_t>(row[i]) * s;
      return;
    }
    default:
      QATK_CHECK(false, "embedding rows of this weight type are not supported");
  }
}

absl::StatusOr<std::unique_ptr<Model>> LoadGgufModel(const std::string& path,
                                                     const LoadOptions& options) {
  ASSIGN_OR_RETURN(GgufFile file, GgufFile::Open(path));
  auto owned = std::make_shared<GgufFile>(std::move(file));
  const GgufFile& f = *owned;
  auto m = std::make_unique<Model>();
  ASSIGN_OR_RETURN(m->config, ReadConfig(f));
  ASSIGN_OR_RETURN(m->vocab, ReadVocab(f));
  ModelConfig& c = m->config;
  c.n_vocab = static_cast<int>(m->vocab.tokens.size());
  ASSIGN_OR_RETURN(m->tok_embd, Matrix(f, "token_embd.weight", c.n_vocab, c.n_embd));
  if (f.FindTensor("output.weight") != nullptr) {
    ASSIGN_OR_RETURN(m->output, Matrix(f, "output.weight", c.n_vocab, c.n_embd));
  } else {
    m->output = m->tok_embd;  // tied
  }
  ASSIGN_OR_RETURN(m->output_norm, Vector(f, "output_norm.weight", c.n_embd));
  m->layers.resize(c.n_layer);
  for (int il = 0; il < c.n_layer; ++il) RETURN_IF_ERROR(ReadLayer(f, c, il, &m->layers[il]));
  uint64_t bytes = 0;
  for (const auto& t : f.tensors()) bytes += t.nbytes;
  m->file_bytes = bytes;
  m->storage = owned;
  if (options.repack) RepackForKernels(m.get());
  return m;
}

absl::StatusOr<std::unique_ptr<Model>> LoadModel(const std::string& path,
                                                 const LoadOptions& options) {
  ASSIGN_OR_RETURN(MappedFile probe, MappedFile::Open(path));
  if (probe.size() >= 4 && std::memcmp(probe.data(), "GGUF", 4) == 0) {
    return LoadGgufModel(path, options);
  }
  if (probe.size() >= 4 && std::memcmp(probe.data(), "QMOB", 4) == 0) {
    return LoadMobileModel(path, options);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("'", path, "' is neither a GGUF nor a qatkit mobile file (bad magic at offset 0)"));
}

}  // namespace qatk::inference
