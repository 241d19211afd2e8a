// Mobile file -> runtime Model (see mobile_model.h).
#include "inference/mobile_model.h"

#include <cmath>
#include <list>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "formats/model_arch.h"
#include "formats/model_config.h"
#include "formats/util/status_macros.h"
#include "inference/kernels/x16.h"
#include "inference/model_loader.h"
#include "nlohmann/json.hpp"

namespace qatk::inference {
namespace {

using mobile::DType;
using mobile::MobileFile;
using mobile::TensorInfo;

// Keeps the mapping and widened scales alive as long as the Model.
struct MobileStorage {
  MobileFile file;
  std::list<std::vector<float>> scales;  // list: stable addresses
};

absl::StatusOr<ModelConfig> ToRuntimeConfig(const qatk::ModelConfig& h) {
  ModelConfig c;
  c.arch = h.is_gemma()                 ? Arch::kGemma3
           : h.model_type == "qwen2" ? Arch::kQwen2
           : h.model_type == "qwen3" ? Arch::kQwen3
                                     : Arch::kLlama;
  c.n_vocab = static_cast<int>(h.vocab_size);
  c.n_embd = static_cast<int>(h.hidden_size);
  c.n_layer = static_cast<int>(h.num_hidden_layers);
  c.n_head = static_cast<int>(h.num_attention_heads);
  c.n_head_kv = static_cast<int>(h.num_key_value_heads);
  c.head_dim = static_cast<int>(h.head_dim);
  c.n_ff = static_cast<int>(h.intermediate_size);
  c.n_ctx_train = static_cast<int>(h.max_position_embeddings);
  c.rms_eps = static_cast<float>(h.rms_norm_eps);
  c.rope_base = static_cast<float>(h.rope_theta);
  c.rope_base_swa = static_cast<float>(h.rope_local_base_freq);
  c.rope_neox = true;  // HF q/k layout (rotate_half), not permuted
  c.gelu = h.hidden_act == "gelu_pytorch_tanh";
  c.attn_scale = static_cast<float>(h.attention_scale());
  c.qk_norm = h.has_qk_norm();
  if (h.is_gemma()) {
    c.embed_scale = std::sqrt(static_cast<float>(c.n_embd));
    c.post_norms = true;
    c.final_softcap = static_cast<float>(h.final_logit_softcapping.value_or(0.0));
    c.sliding_window = static_cast<int>(h.sliding_window);
    c.swa_pattern = static_cast<int>(h.sliding_window_pattern);
  }
  return c;
}

Vocab ToVocab(const mobile::Tokenizer& t) {
  Vocab v;
  v.tokens = t.tokens;
  v.scores = t.scores;
  v.types = t.types;
  v.bos = t.bos_id, v.eos = t.eos_id, v.unk = t.unk_id < 0 ? 0 : t.unk_id;
  v.add_bos = t.add_bos;
  v.add_space_prefix = t.add_space_prefix;
  return v;
}

class Loader {
 public:
  explicit Loader(MobileStorage* s) : s_(s), f_(s->file) {}

  absl::StatusOr<const TensorInfo*> Find(const std::string& name) const {
    const TensorInfo* t = f_.FindTensor(name);
    if (t == nullptr) return absl::NotFoundError(absl::StrCat(f_.path(), ": missing tensor '", name, "'"));
    return t;
  }

  absl::StatusOr<QMatrix> Matrix(const std::string& name, int64_t rows, int64_t cols) {
    ASSIGN_OR_RETURN(const TensorInfo* t, Find(name));
    if (t->dims != std::vector<uint64_t>{static_cast<uint64_t>(rows), static_cast<uint64_t>(cols)}) {
      return absl::InvalidArgumentError(absl::StrCat(f_.path(), ": tensor '", name,
                                                     "' has the wrong shape, expected [", rows,
                                                     ", ", cols, "]"));
    }
    s_->scales.emplace_back();
    return MobileMatrix(f_, *t, &s_->scales.back());
  }

  // A 1-D tensor of n values as fp32 (+1 for (1 + w) norms: add_one).
  absl::StatusOr<std::vector<float>> Vector(const std::string& name, int64_t n, bool add_one) {
    ASSIGN_OR_RETURN(const TensorInfo* t, Find(name));
    if (t->dims != std::vector<uint64_t>{static_cast<uint64_t>(n)} || mobile::IsIntChannel(t->dtype)) {
      return absl::InvalidArgumentError(absl::StrCat(f_.path(), ": tensor '", name,
                                                     "' must be F32/F16 of shape [", n, "]"));
    }
    std::vector<float> v(n);
    for (int64_t i = 0; i < n; ++i) f_.DequantizeRow(*t, i, &v[i]);
    if (add_one) {
      for (float& x : v) x += 1.0f;
    }
    return v;
  }

  // Static KV scale (0 when absent).
  absl::StatusOr<float> KvScale(const std::string& name) {
    const TensorInfo* t = f_.FindTensor(name);
    if (t == nullptr) return 0.0f;
    if (t->dtype != DType::kF32 || t->numel() != 1) {
      return absl::InvalidArgumentError(absl::StrCat(f_.path(), ": tensor '", name, "' must be F32 [1]"));
    }
    float v;
    f_.DequantizeRow(*t, 0, &v);
    if (!(std::isfinite(v) && v > 0)) {
      return absl::InvalidArgumentError(absl::StrCat(f_.path(), ": tensor '", name, "' = ", v, " is not > 0"));
    }
    return v;
  }

  // The static scale of one cache point; the key scale's act_* fields
  // describe the int8 cache codes.
  absl::Status Cache(const ArchCache& k, LayerWeights* l);

 private:
  MobileStorage* s_;
  const MobileFile& f_;
};

absl::Status Loader::Cache(const ArchCache& k, LayerWeights* l) {
  ASSIGN_OR_RETURN(float scale, KvScale(k.scale_name));
  if (k.def->kind == CacheKind::kValue) {
    l->v_scale = scale;
    return absl::OkStatus();
  }
  l->k_scale = scale;
  if (const TensorInfo* t = f_.FindTensor(k.scale_name); t != nullptr && t->act_bits > 0) {
    l->kv_spec.bits = t->act_bits;
    l->kv_spec.narrow_range = t->act_narrow;
    l->kv_spec.rounding = t->act_rounding == mobile::Rounding::kHalfEven ? Rounding::kHalfEven
                                                                         : Rounding::kHalfAwayFromZero;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<QMatrix> MobileMatrix(const MobileFile& f, const TensorInfo& t,
                                     std::vector<float>* scales) {
  QMatrix m;
  m.rows = static_cast<int64_t>(t.rows());
  m.cols = static_cast<int64_t>(t.row_len());
  m.data = f.Codes(t);
  switch (t.dtype) {
    case DType::kF32: return MakeGgufMatrix(GgmlType::kF32, m.rows, m.cols, m.data);
    case DType::kF16: return MakeGgufMatrix(GgmlType::kF16, m.rows, m.cols, m.data);
    case DType::kInt8Channel: m.type = WType::kInt8Channel; break;
    case DType::kInt4Channel: m.type = WType::kInt4Channel; break;
    case DType::kInt2Channel: m.type = WType::kInt2Channel; break;
  }
  m.row_bytes = mobile::PackedRowBytes(t.dtype, t.row_len());
  if (t.scale_type == mobile::ScaleType::kF32) {
    m.row_scales = reinterpret_cast<const float*>(f.ScalesData(t));  // 64-byte aligned
  } else {
    scales->resize(t.rows());
    for (uint64_t r = 0; r < t.rows(); ++r) (*scales)[r] = f.Scale(t, r);
    m.row_scales = scales->data();
  }
  m.act_scale = t.act_scale;
  if (t.act_method != mobile::ActMethod::kNone) {
    m.act_bits = t.act_bits;
    m.act_narrow = t.act_narrow;
    m.act_rounding = t.act_rounding == mobile::Rounding::kHalfEven ? Rounding::kHalfEven
                                                                   : Rounding::kHalfAwayFromZero;
  }
  return m;
}

absl::StatusOr<std::unique_ptr<Model>> LoadMobileModel(const std::string& path,
                                                       const LoadOptions& options) {
  auto storage = std::make_shared<MobileStorage>();
  ASSIGN_OR_RETURN(storage->file, MobileFile::Open(path));
  const MobileFile& f = storage->file;
  const nlohmann::json j = nlohmann::json::parse(f.config_json(), nullptr, false);
  ASSIGN_OR_RETURN(qatk::ModelConfig hf, qatk::ModelConfig::FromJson(j, path + ": config"));
  RETURN_IF_ERROR(hf.Validate());
  auto m = std::make_unique<Model>();
  ASSIGN_OR_RETURN(m->config, ToRuntimeConfig(hf));
  const ModelConfig& c = m->config;
  if (f.tokenizer().model != "llama") {
    return absl::UnimplementedError(absl::StrCat(path, ": tokenizer model '", f.tokenizer().model,
                                                 "' (supported: llama)"));
  }
  m->vocab = ToVocab(f.tokenizer());
  if (static_cast<int64_t>(m->vocab.tokens.size()) != c.n_vocab) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": tokenizer has ", m->vocab.tokens.size(),
                                                   " tokens but config vocab_size is ", c.n_vocab));
  }
  Loader ld(storage.get());
  m->layers.resize(c.n_layer);
  // The head is visited even when tied: a file that has one uses it.
  qatk::ModelConfig table = hf;
  table.tie_word_embeddings = false;
  bool tied = false;
  RETURN_IF_ERROR(ForEachTensor(table, [&](const ArchTensor& t) -> absl::Status {
    if (t.def->tied_to_embedding && f.FindTensor(t.hf_name) == nullptr) {
      if (!hf.tie_word_embeddings) {
        return absl::NotFoundError(
            absl::StrCat(path, ": missing tensor '", t.hf_name, "' (config says untied)"));
      }
      tied = true;
      return absl::OkStatus();
    }
    if (!t.quantizable()) {
      ASSIGN_OR_RETURN(*BindVector(m.get(), t), ld.Vector(t.hf_name, t.shape[0], t.add_one));
      return absl::OkStatus();
    }
    QMatrix* w = BindMatrix(m.get(), t);
    ASSIGN_OR_RETURN(*w, ld.Matrix(t.hf_name, t.shape[0], t.shape[1]));
    if (t.role() == TensorRole::kEmbedding && w->type != WType::kF32 && w->type != WType::kF16 &&
        w->type != WType::kInt8Channel) {
      return absl::UnimplementedError(absl::StrCat(path, ": tensor '", t.hf_name, "' is ",
                                                   WTypeName(w->type),
                                                   "; embeddings must be F32, F16 or INT8_CHANNEL"));
    }
    return absl::OkStatus();
  }));
  if (tied) m->output = m->tok_embd;
  if (hf.rope_scaling) m->rope_freqs = hf.RopeFreqFactors();
  for (const ArchCache& k : ArchCaches(hf)) RETURN_IF_ERROR(ld.Cache(k, &m->layers[k.layer]));
  m->file_bytes = f.file_size();
  m->storage = storage;
  if (options.repack) RepackForKernels(m.get());
  return m;
}

}  // namespace qatk::inference
