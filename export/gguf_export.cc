#include "export/gguf_export.h"

#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "export/checkpoint.h"
#include "export/spm_vocab.h"
#include "export/tensor_plan.h"
#include "formats/gguf/gguf.h"
#include "formats/quant/codecs.h"
#include "formats/util/status_macros.h"

#ifndef QATK_VERSION
#define QATK_VERSION "unknown"
#endif

namespace qatk::exporter {
namespace {

using gguf::GgufWriter;
using gguf::Value;

constexpr char kRopeFreqsName[] = "rope_freqs.weight";

struct PlannedTensor {
  GgufTensorSpec spec;
  GgmlType type = GgmlType::kF32;
};

// Type of a 2-D weight under --outtype (see the header).
absl::StatusOr<GgmlType> WeightType(const Checkpoint& ck, const GgufTensorSpec& t,
                                    const std::string& outtype) {
  if (outtype != "auto") return TypeFromName(outtype);
  const QuantSpec spec = ck.WeightSpec(t.module);
  if (!spec.enabled()) return GgmlType::kF16;
  if (!spec.is_block() || spec.scheme == QuantScheme::kQ8_0Act) {
    return absl::InvalidArgumentError(absl::StrCat(
        ck.dir, "/recipe.json: module ", t.module, " has weight scheme ",
        DescribeQuantSpec(spec), ", which GGUF cannot store (q4_0, q8_0, q2_0 or none); ",
        "export this checkpoint with --format mobile"));
  }
  if (ck.weights.Find(t.module + ".weight_scale") != nullptr && !spec.has_stored_scale()) {
    return absl::InvalidArgumentError(absl::StrCat(
        ck.weights.path(), ": tensor ", t.module, ".weight_scale is present, but ",
        SchemeName(spec.scheme), " blocks derive their scale from the block; the GGUF would not "
        "match the trained weights"));
  }
  if (spec.has_stored_scale() && ck.weights.Find(t.module + ".weight_scale") == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        ck.weights.path(), ": tensor ", t.module, ".weight_scale is missing; recipe.json gives ",
        t.module, " ", DescribeQuantSpec(spec), ", whose block scales were trained"));
  }
  return spec.ggml_type();
}

// Chooses every tensor's type and checks every shape before anything is written.
absl::StatusOr<std::vector<PlannedTensor>> PlanTensors(const Checkpoint& ck,
                                                       const std::string& outtype) {
  std::vector<PlannedTensor> plan;
  for (const GgufTensorSpec& t : GgufTensorList(ck.config)) {
    RETURN_IF_ERROR(ck.CheckShape(t.hf_name, t.shape));
    PlannedTensor p{t, GgmlType::kF32};
    if (!t.is_norm) {
      ASSIGN_OR_RETURN(p.type, WeightType(ck, t, outtype));
    }
    const TypeTraits& tr = Traits(p.type);
    if (t.shape.back() % tr.block_size != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor ", t.hf_name, " ", ShapeString(t.shape), ": ", t.shape.back(),
          " columns are not a multiple of the ", tr.name, " block size ", tr.block_size,
          "; ", tr.name, " cannot store it (", t.gguf_name, ")"));
    }
    if (t.permute_heads > 0 && ck.config.head_dim % 2 != 0) {
      return absl::InvalidArgumentError(absl::StrCat("tensor ", t.hf_name, ": head_dim ",
                                                     ck.config.head_dim, " must be even"));
    }
    plan.push_back(p);
  }
  // Quantizer state is not part of a GGUF; anything else unexpected means the
  // checkpoint is not the model config.json describes.
  std::map<std::string, int> expected;
  for (const PlannedTensor& p : plan) expected[p.spec.hf_name] = 1;
  for (const auto& t : ck.weights.tensors()) {
    if (!expected.count(t.name) && !IsQuantizerState(t.name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          ck.weights.path(), ": unexpected tensor ", t.name, " for a ", ck.config.model_type,
          " model with ", ck.config.num_hidden_layers, " layers (tie_word_embeddings=",
          ck.config.tie_word_embeddings ? "true" : "false", ")"));
    }
  }
  return plan;
}

uint32_t FileTypeOf(const std::vector<PlannedTensor>& plan) {
  std::map<uint32_t, int64_t> elems;
  for (const PlannedTensor& p : plan) {
    if (p.spec.shape.size() == 2 && p.spec.module != "model.embed_tokens" &&
        p.spec.module != "lm_head") {
      elems[static_cast<uint32_t>(p.type)] += p.spec.shape[0] * p.spec.shape[1];
    }
  }
  uint32_t best = 0;
  int64_t best_n = -1;
  for (const auto& [type, n] : elems) {
    if (n > best_n) best = type, best_n = n;
  }
  return LlamaFileType(best);
}

absl::Status CheckGemmaSupported(const ModelConfig& c) {
  const double expected = c.num_hidden_layers == 62
                              ? static_cast<double>(c.hidden_size / c.num_attention_heads)
                              : static_cast<double>(c.head_dim);
  if (c.query_pre_attn_scalar != 0 && c.query_pre_attn_scalar != expected) {
    return absl::UnimplementedError(absl::StrCat(
        "config.json: query_pre_attn_scalar ", c.query_pre_attn_scalar,
        " cannot be expressed in GGUF: llama.cpp's gemma3 scales queries by 1/sqrt(", expected,
        ")"));
  }
  if (c.hidden_act != "gelu_pytorch_tanh") {
    return absl::InvalidArgumentError("config.json: gemma3 needs hidden_act gelu_pytorch_tanh");
  }
  return absl::OkStatus();
}

// llama.cpp's qwen2 graph sizes attn_q / attn_output by the embedding width.
absl::Status CheckQwen2Supported(const ModelConfig& c) {
  if (c.q_dim() != c.hidden_size) {
    return absl::UnimplementedError(absl::StrCat(
        "config.json: qwen2 with num_attention_heads * head_dim (", c.q_dim(),
        ") != hidden_size (", c.hidden_size, ") cannot be expressed in GGUF: llama.cpp's qwen2 "
        "needs them equal"));
  }
  return absl::OkStatus();
}

absl::Status AddModelKv(const ModelConfig& c, const std::string& name, uint32_t file_type,
                        GgufWriter* w) {
  const std::string arch = GgufArchName(c);
  auto u32 = [](int64_t v) { return Value::U32(static_cast<uint32_t>(v)); };
  auto f32 = [](double v) { return Value::F32(static_cast<float>(v)); };
  RETURN_IF_ERROR(w->AddKv("general.architecture", Value::Str(arch)));
  RETURN_IF_ERROR(w->AddKv("general.name", Value::Str(name)));
  RETURN_IF_ERROR(w->AddKv("general.file_type", Value::U32(file_type)));
  RETURN_IF_ERROR(w->AddKv("general.quantization_version", Value::U32(2)));
  const std::string p = arch + ".";
  RETURN_IF_ERROR(w->AddKv(p + "vocab_size", u32(c.vocab_size)));
  RETURN_IF_ERROR(w->AddKv(p + "context_length", u32(c.max_position_embeddings)));
  RETURN_IF_ERROR(w->AddKv(p + "embedding_length", u32(c.hidden_size)));
  RETURN_IF_ERROR(w->AddKv(p + "block_count", u32(c.num_hidden_layers)));
  RETURN_IF_ERROR(w->AddKv(p + "feed_forward_length", u32(c.intermediate_size)));
  RETURN_IF_ERROR(w->AddKv(p + "attention.head_count", u32(c.num_attention_heads)));
  RETURN_IF_ERROR(w->AddKv(p + "attention.head_count_kv", u32(c.num_key_value_heads)));
  RETURN_IF_ERROR(w->AddKv(p + "attention.key_length", u32(c.head_dim)));
  RETURN_IF_ERROR(w->AddKv(p + "attention.value_length", u32(c.head_dim)));
  RETURN_IF_ERROR(w->AddKv(p + "attention.layer_norm_rms_epsilon", f32(c.rms_norm_eps)));
  RETURN_IF_ERROR(w->AddKv(p + "rope.dimension_count", u32(c.head_dim)));
  RETURN_IF_ERROR(w->AddKv(p + "rope.freq_base", f32(c.rope_theta)));
  if (!c.is_gemma()) return absl::OkStatus();
  if (c.final_logit_softcapping && *c.final_logit_softcapping != 0) {
    RETURN_IF_ERROR(w->AddKv(p + "final_logit_softcapping", f32(*c.final_logit_softcapping)));
  }
  if (c.sliding_window > 0) {
    RETURN_IF_ERROR(w->AddKv(p + "attention.sliding_window", u32(c.sliding_window)));
    RETURN_IF_ERROR(
        w->AddKv(p + "attention.sliding_window_pattern", u32(c.sliding_window_pattern)));
    RETURN_IF_ERROR(w->AddKv(p + "rope.freq_base_swa", f32(c.rope_local_base_freq)));
  }
  return absl::OkStatus();
}

absl::Status AddTokenizerKv(const Checkpoint& ck, GgufWriter* w) {
  ASSIGN_OR_RETURN(spm::SpmVocab v, LoadCheckedVocab(ck));
  RETURN_IF_ERROR(w->AddKv("tokenizer.ggml.model", Value::Str("llama")));
  RETURN_IF_ERROR(w->AddKv("tokenizer.ggml.tokens", Value::StrArray(v.pieces)));
  RETURN_IF_ERROR(w->AddKv("tokenizer.ggml.scores", Value::F32Array(v.scores)));
  RETURN_IF_ERROR(w->AddKv("tokenizer.ggml.token_type", Value::I32Array(v.types)));
  RETURN_IF_ERROR(w->AddKv("tokenizer.ggml.bos_token_id", Value::U32(v.bos_id)));
  RETURN_IF_ERROR(w->AddKv("tokenizer.ggml.eos_token_id", Value::U32(v.eos_id)));
  if (v.unk_id >= 0) {
    RETURN_IF_ERROR(w->AddKv("tokenizer.ggml.unknown_token_id", Value::U32(v.unk_id)));
  }
  if (v.pad_id >= 0) {
    RETURN_IF_ERROR(w->AddKv("tokenizer.ggml.padding_token_id", Value::U32(v.pad_id)));
  }
  RETURN_IF_ERROR(w->AddKv("tokenizer.ggml.add_bos_token", Value::Bool(true)));
  RETURN_IF_ERROR(w->AddKv("tokenizer.ggml.add_eos_token", Value::Bool(false)));
  RETURN_IF_ERROR(w->AddKv("tokenizer.ggml.add_space_prefix", Value::Bool(v.add_dummy_prefix)));
  return w->AddKv("tokenizer.ggml.remove_extra_whitespaces",
                  Value::Bool(v.remove_extra_whitespaces));
}

// Reads, transforms and encodes one tensor row by row into the writer.
absl::Status WriteTensor(const Checkpoint& ck, const PlannedTensor& p, GgufWriter* w) {
  const GgufTensorSpec& t = p.spec;
  ASSIGN_OR_RETURN(std::vector<float> x, ck.ReadTensor(t.hf_name, t.shape));  // [rows, cols]
  const int64_t cols = t.shape.back();
  const int64_t rows = static_cast<int64_t>(x.size()) / cols;
  if (t.add_one) {
    for (float& v : x) v += 1.0f;
  }
  // Learned q4_0 scales, one per block: they travel with their rows.
  std::vector<float> scales;
  const QuantSpec spec = t.module.empty() ? QuantSpec() : ck.WeightSpec(t.module);
  const bool block_scales = spec.is_block() && spec.has_stored_scale() && p.type == spec.ggml_type();
  if (block_scales) {
    ASSIGN_OR_RETURN(scales, ck.ReadTensor(t.module + ".weight_scale", {rows, cols / spec.block_size()}));
  }
  if (t.permute_heads > 0) {
    std::vector<float> permuted(x.size());
    PermuteRowsForNormRope(x.data(), permuted.data(), t.permute_heads, ck.config.head_dim, cols);
    x.swap(permuted);
    if (block_scales) {
      std::vector<float> ps(scales.size());
      PermuteRowsForNormRope(scales.data(), ps.data(), t.permute_heads, ck.config.head_dim,
                             cols / spec.block_size());
      scales.swap(ps);
    }
  }
  if (block_scales) {
    auto qm = QuantizeMatrix(spec, x.data(), rows, cols, scales);
    if (!qm.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("tensor ", t.hf_name, ": ", qm.status().message()));
    }
    return w->WriteTensorData(qm->blocks.data(), qm->blocks.size());
  }
  std::vector<uint8_t> row(RowBytes(p.type, cols));
  for (int64_t r = 0; r < rows; ++r) {
    const absl::Status s = QuantizeRow(p.type, x.data() + r * cols, cols, row.data());
    if (!s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor ", t.hf_name, " row ", r, ": ", s.message()));
    }
    RETURN_IF_ERROR(w->WriteTensorData(row.data(), row.size()));
  }
  return absl::OkStatus();
}

std::string BaseName(const std::string& dir) {
  std::string d = dir;
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  const size_t slash = d.rfind('/');
  return slash == std::string::npos ? d : d.substr(slash + 1);
}

}  // namespace

uint32_t LlamaFileType(uint32_t ggml_type_id) {
  switch (static_cast<GgmlType>(ggml_type_id)) {
    case GgmlType::kF32: return 0;
    case GgmlType::kF16: return 1;
    case GgmlType::kQ4_0: return 2;
    case GgmlType::kQ8_0: return 7;
    case GgmlType::kQ4_K: return 15;  // MOSTLY_Q4_K_M, as llama.cpp's loader guesses it
    case GgmlType::kQ6_K: return 18;  // MOSTLY_Q6_K
    case GgmlType::kBF16: return 32;
    case GgmlType::kQ2_0: return 41;
  }
  return 1024;  // LLAMA_FTYPE_GUESSED
}

absl::Status ExportGguf(const GgufExportOptions& options) {
  const std::string& o = options.outtype;
  if (o != "auto" && o != "f32" && o != "f16" && o != "bf16" && o != "q4_0" && o != "q8_0" &&
      o != "q2_0") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--outtype ", o, ": expected auto, f32, f16, bf16, q4_0, q8_0 or q2_0"));
  }
  ASSIGN_OR_RETURN(Checkpoint ck, OpenCheckpoint(options.model_dir));
  if (ck.config.is_gemma()) RETURN_IF_ERROR(CheckGemmaSupported(ck.config));
  if (ck.config.model_type == "qwen2") RETURN_IF_ERROR(CheckQwen2Supported(ck.config));
  if (ck.config.rope_scaling && std::string(GgufArchName(ck.config)) != "llama") {
    return absl::UnimplementedError(absl::StrCat(
        "config.json: rope_scaling cannot be expressed in GGUF for ", ck.config.model_type,
        ": llama.cpp reads rope_freqs.weight for the llama architecture only"));
  }
  // Our own shape checks first: they name the tensor.
  ASSIGN_OR_RETURN(std::vector<PlannedTensor> plan, PlanTensors(ck, o));
  if (ck.recipe && o == "auto") RETURN_IF_ERROR(ck.recipe->Validate(RecipeModules(ck.config)));

  ASSIGN_OR_RETURN(GgufWriter w, GgufWriter::Create(options.out));
  const std::string name = options.name.empty() ? BaseName(options.model_dir) : options.name;
  RETURN_IF_ERROR(AddModelKv(ck.config, name, FileTypeOf(plan), &w));
  RETURN_IF_ERROR(AddTokenizerKv(ck, &w));
  RETURN_IF_ERROR(w.AddKv("qatkit.version", Value::Str(QATK_VERSION)));
  RETURN_IF_ERROR(w.AddKv("qatkit.outtype", Value::Str(o)));
  if (ck.recipe) RETURN_IF_ERROR(w.AddKv("qatkit.recipe", Value::Str(ck.recipe_json)));
  // Llama 3 rope scaling: llama.cpp's llama reads it as the per-frequency
  // divisors rope_freqs.weight (F32 [D/2]), first in the file as its
  // converter writes it; there are no rope scaling keys.
  const std::vector<float> rope_freqs =
      ck.config.rope_scaling ? ck.config.RopeFreqFactors() : std::vector<float>();
  if (!rope_freqs.empty()) {
    RETURN_IF_ERROR(w.AddTensorInfo(kRopeFreqsName, GgmlType::kF32,
                                    {static_cast<int64_t>(rope_freqs.size())}));
  }
  for (const PlannedTensor& p : plan) {
    std::vector<int64_t> ne(p.spec.shape.rbegin(), p.spec.shape.rend());
    RETURN_IF_ERROR(w.AddTensorInfo(p.spec.gguf_name, p.type, ne));
  }
  if (!rope_freqs.empty()) {
    RETURN_IF_ERROR(w.WriteTensorData(rope_freqs.data(), rope_freqs.size() * sizeof(float)));
  }
  for (const PlannedTensor& p : plan) RETURN_IF_ERROR(WriteTensor(ck, p, &w));
  return w.Finish();
}

}  // namespace qatk::exporter
