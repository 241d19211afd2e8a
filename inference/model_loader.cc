// Model loading (model_loader.h): the table-slot binding shared by both
// loaders, the GGUF loader (hyperparameters by their exact llama.cpp key
// names, the SPM vocabulary, every weight a zero-copy view into the mapping)
// and the dispatch on the file's magic.
#include "inference/model_loader.h"

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "formats/gguf/gguf.h"
#include "formats/quant/codecs.h"
#include "formats/util/status_macros.h"
#include "inference/mobile_model.h"
#include "inference/kernels/x16.h"

namespace qatk::inference {

QMatrix* BindMatrix(Model* m, const ArchTensor& t) {
  LayerWeights* l = t.layer >= 0 ? &m->layers.at(t.layer) : nullptr;
  switch (t.slot()) {
    case TensorSlot::kTokenEmbd: return &m->tok_embd;
    case TensorSlot::kOutput: return &m->output;
    case TensorSlot::kAttnQ: return &l->wq;
    case TensorSlot::kAttnK: return &l->wk;
    case TensorSlot::kAttnV: return &l->wv;
    case TensorSlot::kAttnOutput: return &l->wo;
    case TensorSlot::kFfnGate: return &l->gate;
    case TensorSlot::kFfnUp: return &l->up;
    case TensorSlot::kFfnDown: return &l->down;
    default: break;
  }
  QATK_CHECK(false, "table tensor has no runtime matrix field");
  return nullptr;
}

std::vector<float>* BindVector(Model* m, const ArchTensor& t) {
  LayerWeights* l = t.layer >= 0 ? &m->layers.at(t.layer) : nullptr;
  switch (t.slot()) {
    case TensorSlot::kOutputNorm: return &m->output_norm;
    case TensorSlot::kAttnNorm: return &l->attn_norm;
    case TensorSlot::kAttnQNorm: return &l->q_norm;
    case TensorSlot::kAttnKNorm: return &l->k_norm;
    case TensorSlot::kAttnQBias: return &l->bq;
    case TensorSlot::kAttnKBias: return &l->bk;
    case TensorSlot::kAttnVBias: return &l->bv;
    case TensorSlot::kPostAttnNorm: return &l->post_attn_norm;
    case TensorSlot::kFfnNorm: return &l->ffn_norm;
    case TensorSlot::kPostFfwNorm: return &l->post_ffw_norm;
    default: break;
  }
  QATK_CHECK(false, "table tensor has no runtime vector field");
  return nullptr;
}

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
  if (FindArchByGgufName(arch) == nullptr) {
    return absl::UnimplementedError(absl::StrCat(f.path(), ": architecture '", arch,
                                                 "' (supported: ", SupportedGgufArchs(), ")"));
  }
  c.arch = arch == "gemma3" ? Arch::kGemma3
           : arch == "qwen2" ? Arch::kQwen2
           : arch == "qwen3" ? Arch::kQwen3
                             : Arch::kLlama;
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
  // llama.cpp's qwen2 / qwen3 use NEOX rope: their q/k rows are HF's.
  if (c.arch == Arch::kQwen2 || c.arch == Arch::kQwen3) c.rope_neox = true;
  if (c.arch == Arch::kQwen3) c.qk_norm = true;
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

// The table config of a GGUF model: the fields tensor names and shapes
// depend on. The head is left untied: the loader visits it and ties it when
// the file has none.
qatk::ModelConfig TableConfig(const ModelConfig& c, const ArchDef& arch) {
  qatk::ModelConfig t;
  t.model_type = arch.model_type;
  t.vocab_size = c.n_vocab;
  t.hidden_size = c.n_embd;
  t.intermediate_size = c.n_ff;
  t.num_hidden_layers = c.n_layer;
  t.num_attention_heads = c.n_head;
  t.num_key_value_heads = c.n_head_kv;
  t.head_dim = c.head_dim;
  t.tie_word_embeddings = false;
  return t;
}

}  // namespace

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
  ASSIGN_OR_RETURN(std::string arch, f.GetString("general.architecture"));
  const qatk::ModelConfig tc = TableConfig(c, *FindArchByGgufName(arch));
  m->layers.resize(c.n_layer);
  bool tied = false;
  RETURN_IF_ERROR(ForEachTensor(tc, [&](const ArchTensor& t) -> absl::Status {
    if (t.def->tied_to_embedding && f.FindTensor(t.gguf_name) == nullptr) {
      tied = true;
      return absl::OkStatus();
    }
    if (t.quantizable()) {
      ASSIGN_OR_RETURN(*BindMatrix(m.get(), t), Matrix(f, t.gguf_name, t.shape[0], t.shape[1]));
    } else {
      ASSIGN_OR_RETURN(*BindVector(m.get(), t), Vector(f, t.gguf_name, t.shape[0]));
    }
    return absl::OkStatus();
  }));
  if (tied) m->output = m->tok_embd;
  // Llama 3 rope scaling: the per-frequency divisors (llama.cpp reads them
  // for the llama architecture only).
  if (c.arch == Arch::kLlama && f.FindTensor("rope_freqs.weight") != nullptr) {
    ASSIGN_OR_RETURN(m->rope_freqs, Vector(f, "rope_freqs.weight", c.head_dim / 2));
    for (float v : m->rope_freqs) {
      if (!(std::isfinite(v) && v > 0)) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": tensor rope_freqs.weight has a value ", v, " that is not > 0"));
      }
    }
  }
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
