#include "export/gguf_export.h"

#include <dirent.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "export/checkpoint.h"
#include "export/tensor_plan.h"
#include "formats/gguf/gguf.h"
#include "formats/quant/codecs.h"
#include "formats/quant/recipe.h"
#include "formats/quant/spec.h"
#include "gtest/gtest.h"
#include "tests/export/tiny_checkpoint.h"
#include "tests/formats/test_util.h"

namespace qatk::exporter {
namespace {

using gguf::GgufFile;
using gguf::ValueType;
using testing::TinyModelOptions;

class GgufExportTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/qatk_gguf_export_XXXXXX";
    root_ = mkdtemp(tmpl);
    // Train the tokenizer once; every checkpoint copies it.
    TinyModelOptions o;
    ASSERT_TRUE(testing::WriteTinyCheckpoint(root_ + "/base", o).ok());
    tokenizer_ = root_ + "/base/tokenizer.model";
  }
  static void TearDownTestSuite() { std::system(("rm -rf " + root_).c_str()); }

  // Writes a checkpoint under root_/name and exports it; returns the GGUF path.
  static std::string Export(const std::string& name, TinyModelOptions o,
                            const std::string& outtype = "auto") {
    o.tokenizer_model = tokenizer_;
    const std::string dir = root_ + "/" + name;
    const absl::Status w = testing::WriteTinyCheckpoint(dir, o);
    EXPECT_TRUE(w.ok()) << w;
    GgufExportOptions e;
    e.model_dir = dir;
    e.out = dir + ".gguf";
    e.outtype = outtype;
    const absl::Status s = ExportGguf(e);
    EXPECT_TRUE(s.ok()) << s;
    return e.out;
  }

  static std::string root_, tokenizer_;
};
std::string GgufExportTest::root_;
std::string GgufExportTest::tokenizer_;

// Every GGUF tensor's dequantized values, with the llama q/k permutation
// undone, must equal dequantize(quantize(latent w)) of the shared codec
// exactly; norms equal w (llama) or 1 + w (Gemma).
void ExpectTensorsMatchCodec(const std::string& ckpt_dir, const std::string& gguf_path,
                             const std::string& outtype) {
  auto ck = OpenCheckpoint(ckpt_dir);
  ASSERT_TRUE(ck.ok()) << ck.status();
  auto f = GgufFile::Open(gguf_path);
  ASSERT_TRUE(f.ok()) << f.status();
  const std::vector<GgufTensorSpec> list = GgufTensorList(ck->config);
  ASSERT_EQ(f->tensors().size(), list.size());
  for (const GgufTensorSpec& t : list) {
    SCOPED_TRACE(t.hf_name);
    const gguf::TensorInfo* info = f->FindTensor(t.gguf_name);
    ASSERT_NE(info, nullptr);
    const std::vector<int64_t> ne(t.shape.rbegin(), t.shape.rend());
    ASSERT_EQ(info->ne, ne);
    auto w = ck->ReadTensor(t.hf_name, t.shape);  // [rows, cols]
    ASSERT_TRUE(w.ok());
    const int64_t cols = t.shape.back(), rows = static_cast<int64_t>(w->size()) / cols;
    std::vector<float> got(w->size());  // GGUF values in HF row order
    const uint64_t row_bytes = RowBytes(info->type, cols);
    for (int64_t r = 0; r < rows; ++r) {
      DequantizeRow(info->type, f->TensorData(*info) + r * row_bytes, got.data() + r * cols, cols);
    }
    if (t.permute_heads > 0) {
      std::vector<float> hf(got.size());
      UnpermuteRowsForNormRope(got.data(), hf.data(), t.permute_heads, ck->config.head_dim, cols);
      got.swap(hf);
    }
    std::vector<float> want = *w;
    if (t.is_norm) {
      EXPECT_EQ(info->type, GgmlType::kF32);
      if (t.add_one) for (float& v : want) v += 1.0f;
    } else {
      QuantSpec spec = ck->WeightSpec(t.module);
      if (outtype != "auto") {
        spec = QuantSpec();
        auto type = TypeFromName(outtype);
        ASSERT_TRUE(type.ok());
        if (Traits(*type).is_quantized) {
          spec.scheme = *type == GgmlType::kQ4_0   ? QuantScheme::kQ4_0
                        : *type == GgmlType::kQ8_0 ? QuantScheme::kQ8_0
                                                   : QuantScheme::kQ2_0;
          spec.rounding = Rounding::kGgml;
        } else {
          EXPECT_EQ(info->type, *type);
        }
      }
      if (spec.enabled()) {
        EXPECT_EQ(info->type, spec.ggml_type());
        std::vector<float> scales;  // learned q4_0 block scales
        if (spec.has_stored_scale()) {
          auto s = ck->ReadTensor(t.module + ".weight_scale", {rows, cols / spec.block_size()});
          ASSERT_TRUE(s.ok()) << s.status();
          scales = *s;
        }
        auto qm = QuantizeMatrix(spec, w->data(), rows, cols, scales);
        ASSERT_TRUE(qm.ok()) << qm.status();
        want = DequantizeMatrix(*qm);
      } else if (outtype == "auto") {
        EXPECT_EQ(info->type, GgmlType::kF16);
        for (int64_t r = 0; r < rows; ++r) {  // the F16 codec's round trip
          std::vector<uint8_t> b(RowBytes(GgmlType::kF16, cols));
          ASSERT_TRUE(QuantizeRow(GgmlType::kF16, want.data() + r * cols, cols, b.data()).ok());
          DequantizeRow(GgmlType::kF16, b.data(), want.data() + r * cols, cols);
        }
      }
    }
    if (!t.is_norm && outtype != "auto" && !Traits(info->type).is_quantized) {
      for (int64_t r = 0; r < rows; ++r) {
        std::vector<uint8_t> b(RowBytes(info->type, cols));
        ASSERT_TRUE(QuantizeRow(info->type, want.data() + r * cols, cols, b.data()).ok());
        DequantizeRow(info->type, b.data(), want.data() + r * cols, cols);
      }
    }
    ASSERT_EQ(got.size(), want.size());
    EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0)
        << "dequantized GGUF tensor differs from the shared codec's fake quant";
  }
}

TEST_F(GgufExportTest, QuantizedTensorsEqualFakeQuantOfLatentWeights) {
  TinyModelOptions o;
  o.recipe_json = testing::RecipeQ4_0Q2Head();
  const std::string path = Export("q4_0_q2head", o);
  ExpectTensorsMatchCodec(root_ + "/q4_0_q2head", path, "auto");
  auto f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->FindTensor("blk.0.attn_q.weight")->type, GgmlType::kQ4_0);
  EXPECT_EQ(f->FindTensor("output.weight")->type, GgmlType::kQ2_0);
  EXPECT_EQ(f->FindTensor("token_embd.weight")->type, GgmlType::kQ8_0);
  EXPECT_EQ(f->FindTensor("output_norm.weight")->type, GgmlType::kF32);
}

// Learned q4_0 block scales are written as trained, rows and scales permuted
// together for attn_q / attn_k; without the scales the export names the tensor.
TEST_F(GgufExportTest, LearnedQ4_0ScalesAreWrittenAsTrained) {
  TinyModelOptions o;
  o.tokenizer_model = tokenizer_;
  o.recipe_json = testing::RecipeQ4_0Learned();
  const std::string dir = root_ + "/q4_0_learned";
  ASSERT_TRUE(testing::WriteTinyCheckpoint(dir, o).ok());
  GgufExportOptions e;
  e.model_dir = dir;
  e.out = dir + ".gguf";
  testing::ExpectError(ExportGguf(e), absl::StatusCode::kInvalidArgument,
                       {"weight_scale is missing", "q4_0 learned"});
  EXPECT_NE(access(e.out.c_str(), F_OK), 0);
  ASSERT_TRUE(testing::AddQuantState(dir, 3).ok());
  const absl::Status s = ExportGguf(e);
  ASSERT_TRUE(s.ok()) << s;
  ExpectTensorsMatchCodec(dir, e.out, "auto");
  // The scales really differ from the block rule's, so the check above is not
  // the plain q4_0 export's.
  auto f = GgufFile::Open(e.out);
  ASSERT_TRUE(f.ok());
  const gguf::TensorInfo* emb = f->FindTensor("token_embd.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->type, GgmlType::kQ4_0);
  auto ck = OpenCheckpoint(dir);
  ASSERT_TRUE(ck.ok());
  auto w = ck->weights.ReadFloat("model.embed_tokens.weight");
  ASSERT_TRUE(w.ok());
  std::vector<uint8_t> plain(RowBytes(GgmlType::kQ4_0, static_cast<int64_t>(w->size())));
  ASSERT_TRUE(QuantizeRow(GgmlType::kQ4_0, w->data(), static_cast<int64_t>(w->size()), plain.data()).ok());
  EXPECT_NE(std::memcmp(plain.data(), f->TensorData(*emb), plain.size()), 0);
}

TEST_F(GgufExportTest, MetadataHasExactTypes) {
  TinyModelOptions o;
  o.recipe_json = testing::RecipeQ4_0();
  const std::string path = Export("meta", o);
  auto f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  const std::vector<std::pair<const char*, ValueType>> want = {
      {"general.architecture", ValueType::kString},
      {"general.name", ValueType::kString},
      {"general.file_type", ValueType::kUint32},
      {"general.quantization_version", ValueType::kUint32},
      {"llama.vocab_size", ValueType::kUint32},
      {"llama.context_length", ValueType::kUint32},
      {"llama.embedding_length", ValueType::kUint32},
      {"llama.block_count", ValueType::kUint32},
      {"llama.feed_forward_length", ValueType::kUint32},
      {"llama.attention.head_count", ValueType::kUint32},
      {"llama.attention.head_count_kv", ValueType::kUint32},
      {"llama.attention.key_length", ValueType::kUint32},
      {"llama.attention.value_length", ValueType::kUint32},
      {"llama.attention.layer_norm_rms_epsilon", ValueType::kFloat32},
      {"llama.rope.dimension_count", ValueType::kUint32},
      {"llama.rope.freq_base", ValueType::kFloat32},
      {"tokenizer.ggml.model", ValueType::kString},
      {"tokenizer.ggml.bos_token_id", ValueType::kUint32},
      {"tokenizer.ggml.eos_token_id", ValueType::kUint32},
      {"tokenizer.ggml.unknown_token_id", ValueType::kUint32},
      {"tokenizer.ggml.add_bos_token", ValueType::kBool},
      {"tokenizer.ggml.add_eos_token", ValueType::kBool},
      {"qatkit.recipe", ValueType::kString},
      {"qatkit.version", ValueType::kString},
  };
  for (const auto& [key, type] : want) {
    const gguf::Value* v = f->Find(key);
    ASSERT_NE(v, nullptr) << key;
    EXPECT_EQ(v->type, type) << key;
  }
  const std::vector<std::pair<const char*, ValueType>> arrays = {
      {"tokenizer.ggml.tokens", ValueType::kString},
      {"tokenizer.ggml.scores", ValueType::kFloat32},
      {"tokenizer.ggml.token_type", ValueType::kInt32}};
  auto ck = OpenCheckpoint(root_ + "/meta");
  ASSERT_TRUE(ck.ok());
  for (const auto& [key, type] : arrays) {
    const gguf::Value* v = f->Find(key);
    ASSERT_NE(v, nullptr) << key;
    EXPECT_EQ(v->type, ValueType::kArray) << key;
    EXPECT_EQ(v->elem_type, type) << key;
    EXPECT_EQ(static_cast<int64_t>(v->ArraySize()), ck->config.vocab_size) << key;
  }
  EXPECT_EQ(*f->GetString("general.architecture"), "llama");
  EXPECT_EQ(*f->GetString("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(*f->GetUint("general.quantization_version"), 2u);
  EXPECT_EQ(*f->GetUint("general.file_type"), 2u);  // MOSTLY_Q4_0
  EXPECT_TRUE(*f->GetBool("tokenizer.ggml.add_bos_token"));
  EXPECT_FALSE(*f->GetBool("tokenizer.ggml.add_eos_token"));
  EXPECT_EQ(*f->GetUint("tokenizer.ggml.bos_token_id"), 1u);
  EXPECT_EQ(*f->GetUint("tokenizer.ggml.eos_token_id"), 2u);
  EXPECT_EQ(*f->GetUint("tokenizer.ggml.unknown_token_id"), 0u);
  EXPECT_EQ(*f->GetUint("llama.rope.dimension_count"), 16u);
  EXPECT_EQ(*f->GetString("qatkit.recipe"), testing::RecipeQ4_0());
  const auto& types = std::get<std::vector<int64_t>>(f->Find("tokenizer.ggml.token_type")->v);
  const auto& tokens = std::get<std::vector<std::string>>(f->Find("tokenizer.ggml.tokens")->v);
  int n_byte = 0;
  for (size_t i = 0; i < types.size(); ++i) {
    if (types[i] == 6) {
      ++n_byte;
      EXPECT_EQ(tokens[i].rfind("<0x", 0), 0u) << tokens[i];
    }
  }
  EXPECT_EQ(n_byte, 256);
  EXPECT_EQ(types[0], 2);  // unk
  EXPECT_EQ(types[1], 3);  // bos: control
  EXPECT_EQ(types[2], 3);  // eos: control
}

TEST_F(GgufExportTest, RopePermutationCommutesWithBlockQuantization) {
  const int64_t heads = 3, d = 8, cols = 64, rows = heads * d;
  std::mt19937 rng(7);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> w(rows * cols), p(rows * cols), back(rows * cols);
  for (float& v : w) v = g(rng);
  PermuteRowsForNormRope(w.data(), p.data(), heads, d, cols);
  // Row 2i+j of a head comes from row j*D/2+i: for D=8, rows 0,4,1,5,2,6,3,7.
  const int64_t order[8] = {0, 4, 1, 5, 2, 6, 3, 7};
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t r = 0; r < d; ++r) {
      EXPECT_EQ(std::memcmp(&p[(h * d + r) * cols], &w[(h * d + order[r]) * cols],
                            cols * sizeof(float)),
                0);
    }
  }
  UnpermuteRowsForNormRope(p.data(), back.data(), heads, d, cols);
  EXPECT_EQ(back, w);
  for (GgmlType type : {GgmlType::kQ4_0, GgmlType::kQ8_0, GgmlType::kQ2_0}) {
    const uint64_t rb = RowBytes(type, cols);
    std::vector<uint8_t> q_of_perm(rows * rb), q_of_w(rows * rb), perm_of_q(rows * rb);
    for (int64_t r = 0; r < rows; ++r) {
      ASSERT_TRUE(QuantizeRow(type, &p[r * cols], cols, &q_of_perm[r * rb]).ok());
      ASSERT_TRUE(QuantizeRow(type, &w[r * cols], cols, &q_of_w[r * rb]).ok());
    }
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t r = 0; r < d; ++r) {
        std::memcpy(&perm_of_q[(h * d + r) * rb], &q_of_w[(h * d + order[r]) * rb], rb);
      }
    }
    EXPECT_EQ(q_of_perm, perm_of_q) << Traits(type).name;
  }
}

TEST_F(GgufExportTest, TiedEmbeddingsHaveNoOutputTensor) {
  TinyModelOptions o;
  o.tied = true;
  o.recipe_json = testing::RecipeQ4_0Q2Head();
  const std::string path = Export("tied", o);
  ExpectTensorsMatchCodec(root_ + "/tied", path, "auto");
  auto f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->FindTensor("output.weight"), nullptr);
  EXPECT_EQ(f->FindTensor("token_embd.weight")->type, GgmlType::kQ8_0);
}

TEST_F(GgufExportTest, FullPrecisionCheckpointExportsF16AndPtqTypes) {
  TinyModelOptions o;
  const std::string path = Export("fp", o);
  ExpectTensorsMatchCodec(root_ + "/fp", path, "auto");
  auto f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(*f->GetUint("general.file_type"), 1u);  // MOSTLY_F16
  EXPECT_EQ(f->Find("qatkit.recipe"), nullptr);
  for (const char* outtype : {"f32", "q4_0", "q8_0"}) {
    GgufExportOptions e;
    e.model_dir = root_ + "/fp";
    e.out = root_ + "/fp_" + outtype + ".gguf";
    e.outtype = outtype;
    ASSERT_TRUE(ExportGguf(e).ok()) << outtype;
    ExpectTensorsMatchCodec(e.model_dir, e.out, outtype);
  }
}

TEST_F(GgufExportTest, Gemma3NormsAreOnePlusWAndQkAreNotPermuted) {
  TinyModelOptions o;
  o.model_type = "gemma3_text";
  o.tied = true;
  o.recipe_json = testing::RecipeQ4_0();
  const std::string path = Export("gemma", o);
  ExpectTensorsMatchCodec(root_ + "/gemma", path, "auto");
  auto f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(*f->GetString("general.architecture"), "gemma3");
  EXPECT_NE(f->FindTensor("blk.1.attn_q_norm.weight"), nullptr);
  EXPECT_NE(f->FindTensor("blk.1.post_ffw_norm.weight"), nullptr);
  EXPECT_EQ(f->Find("gemma3.attention.sliding_window"), nullptr);
}

std::string HubConfig(const std::string& file) {
  return std::string(QATK_SOURCE_DIR) + "/tests/testdata/hf_configs/" + file;
}

// Qwen2.5: arch qwen2, q/k/v biases F32 under every outtype (recipes and
// --outtype quantize matrices only), q/k not permuted (NEOX rope), and the
// padded vocabulary's extra rows named as llama.cpp's converter names them.
TEST_F(GgufExportTest, Qwen2BiasesStayF32AndThePaddedVocabularyIsNamed) {
  TinyModelOptions o;
  o.hf_config_path = HubConfig("qwen2.5-0.5b.json");
  o.vocab_pad = 16;
  const std::string path = Export("qwen2", o, "q4_0");
  ExpectTensorsMatchCodec(root_ + "/qwen2", path, "q4_0");
  auto f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(*f->GetString("general.architecture"), "qwen2");
  EXPECT_EQ(*f->GetUint("qwen2.embedding_length"), 64u);
  for (const char* b : {"attn_q.bias", "attn_k.bias", "attn_v.bias"}) {
    const gguf::TensorInfo* t = f->FindTensor(std::string("blk.1.") + b);
    ASSERT_NE(t, nullptr) << b;
    EXPECT_EQ(t->type, GgmlType::kF32) << b;
    EXPECT_EQ(t->ne.size(), 1u) << b;
  }
  EXPECT_EQ(f->FindTensor("blk.0.attn_q.bias")->ne[0], 64);
  EXPECT_EQ(f->FindTensor("blk.0.attn_k.bias")->ne[0], 32);
  EXPECT_EQ(f->FindTensor("blk.0.attn_q.weight")->type, GgmlType::kQ4_0);
  EXPECT_EQ(f->FindTensor("output.weight"), nullptr);  // tied
  auto ck = OpenCheckpoint(root_ + "/qwen2");
  ASSERT_TRUE(ck.ok());
  for (const GgufTensorSpec& t : GgufTensorList(ck->config)) EXPECT_EQ(t.permute_heads, 0) << t.hf_name;
  const auto& tokens = std::get<std::vector<std::string>>(f->Find("tokenizer.ggml.tokens")->v);
  const auto& types = std::get<std::vector<int64_t>>(f->Find("tokenizer.ggml.token_type")->v);
  ASSERT_EQ(static_cast<int64_t>(tokens.size()), ck->config.vocab_size);
  const int64_t last = ck->config.vocab_size - 1;
  EXPECT_EQ(tokens[last], "[PAD" + std::to_string(last) + "]");
  EXPECT_EQ(types[last], 5);                             // UNUSED
  EXPECT_NE(tokens[last - 16].rfind("[PAD", 0), 0u);     // the tokenizer's own last piece
}

// Qwen3: head_dim 32 != hidden / heads (16) reaches llama.cpp through
// attention.key_length / value_length; per-head q/k norms are F32 [D].
TEST_F(GgufExportTest, Qwen3HeadDimAndQkNorms) {
  TinyModelOptions o;
  o.hf_config_path = HubConfig("qwen3-0.6b.json");
  o.head_dim = 32;
  const std::string path = Export("qwen3", o, "q8_0");
  ExpectTensorsMatchCodec(root_ + "/qwen3", path, "q8_0");
  auto f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(*f->GetString("general.architecture"), "qwen3");
  EXPECT_EQ(*f->GetUint("qwen3.attention.key_length"), 32u);
  EXPECT_EQ(*f->GetUint("qwen3.attention.value_length"), 32u);
  EXPECT_EQ(*f->GetUint("qwen3.rope.dimension_count"), 32u);
  EXPECT_EQ(*f->GetUint("qwen3.attention.head_count"), 4u);
  EXPECT_EQ(f->FindTensor("blk.0.attn_q.weight")->ne, (std::vector<int64_t>{64, 128}));
  const gguf::TensorInfo* qn = f->FindTensor("blk.1.attn_q_norm.weight");
  ASSERT_NE(qn, nullptr);
  EXPECT_EQ(qn->type, GgmlType::kF32);
  EXPECT_EQ(qn->ne, std::vector<int64_t>{32});
  EXPECT_NE(f->FindTensor("blk.1.attn_k_norm.weight"), nullptr);
  EXPECT_EQ(f->FindTensor("rope_freqs.weight"), nullptr);
}

// Configs llama.cpp's qwen2 cannot run are refused before anything is written.
TEST_F(GgufExportTest, Qwen2WithQueryWidthOtherThanHiddenIsRefused) {
  TinyModelOptions o;
  o.model_type = "qwen2";
  o.head_dim = 32;  // H * D = 128 != E = 64
  o.tokenizer_model = tokenizer_;
  const std::string dir = root_ + "/qwen2_wide";
  ASSERT_TRUE(testing::WriteTinyCheckpoint(dir, o).ok());
  GgufExportOptions e;
  e.model_dir = dir;
  e.out = dir + ".gguf";
  const absl::Status s = ExportGguf(e);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented) << s;
  EXPECT_NE(s.message().find("hidden_size"), std::string::npos) << s;
  EXPECT_NE(access(e.out.c_str(), F_OK), 0);
}

bool DirHasEntryWithPrefix(const std::string& dir, const std::string& prefix) {
  DIR* d = opendir(dir.c_str());
  bool found = false;
  while (dirent* e = readdir(d)) found |= std::string(e->d_name).rfind(prefix, 0) == 0;
  closedir(d);
  return found;
}

TEST_F(GgufExportTest, ShapeTheFormatCannotHoldNamesTheTensorAndWritesNothing) {
  TinyModelOptions o;
  o.hidden = 48;  // 48 input columns: not a multiple of the Q4_0 block (32)
  o.heads = 3;
  o.kv_heads = 1;
  o.recipe_json = testing::RecipeQ4_0();
  o.tokenizer_model = tokenizer_;
  const std::string dir = root_ + "/bad";
  ASSERT_TRUE(testing::WriteTinyCheckpoint(dir, o).ok());
  GgufExportOptions e;
  e.model_dir = dir;
  e.out = root_ + "/out_bad.gguf";
  const absl::Status s = ExportGguf(e);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("model.layers.0.self_attn.q_proj.weight"), std::string::npos) << s;
  EXPECT_NE(access(e.out.c_str(), F_OK), 0) << "output file left behind";
  EXPECT_FALSE(DirHasEntryWithPrefix(root_, "out_bad.gguf")) << "temporary file left behind";
}

TEST_F(GgufExportTest, MissingTensorIsNamed) {
  GgufExportOptions e;
  e.model_dir = root_ + "/missing";
  e.out = root_ + "/missing.gguf";
  TinyModelOptions o;
  o.tokenizer_model = tokenizer_;
  ASSERT_TRUE(testing::WriteTinyCheckpoint(e.model_dir, o).ok());
  // Rewrite the config with one more layer than the weights hold.
  auto ck = OpenCheckpoint(e.model_dir);
  ASSERT_TRUE(ck.ok());
  ModelConfig c = ck->config;
  c.num_hidden_layers += 1;
  ASSERT_TRUE(SaveModelConfig(c, e.model_dir + "/config.json").ok());
  const absl::Status s = ExportGguf(e);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  EXPECT_NE(s.message().find("model.layers.2.input_layernorm.weight"), std::string::npos) << s;
  EXPECT_NE(access(e.out.c_str(), F_OK), 0);
}

}  // namespace
}  // namespace qatk::exporter
