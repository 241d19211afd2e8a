// Mobile loader: the same random weights written as (a) a mobile F32 file,
// (b) a GGUF F32 file in llama.cpp's conventions (q/k permuted for llama,
// Gemma norms stored as 1+w) give the same logits, so the HF-layout mapping
// (names, NEOX rope, norm offset) is right; (c) a mobile int4/int8/int2 file
// in weight-only mode matches (a) run on its dequantized weights; static
// activation scales and the int8 KV cache run; bad files are rejected.
#include "inference/mobile_model.h"

#include <algorithm>
#include <cmath>
#include <list>
#include <map>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

#include "absl/strings/str_cat.h"
#include "formats/gguf/gguf.h"
#include "formats/mobile/mobile_format.h"
#include "formats/quant/spec.h"
#include "gtest/gtest.h"
#include "inference/forward.h"
#include "inference/kernels/matmul.h"
#include "inference/kernels/x16.h"
#include "inference/thread_pool.h"
#include "nlohmann/json.hpp"

namespace qatk::inference {
namespace {

constexpr int kV = 40, kE = 128, kH = 2, kHkv = 1, kD = 64, kF = 256, kL = 2;

struct Weights {
  bool gemma = false;
  std::map<std::string, std::vector<int64_t>> shapes;  // HF name -> PyTorch shape
  std::map<std::string, std::vector<float>> values;
};

Weights MakeWeights(bool gemma, uint32_t seed) {
  Weights w;
  w.gemma = gemma;
  std::mt19937 rng(seed);
  auto add = [&](const std::string& n, std::vector<int64_t> shape, float sigma, float mean) {
    int64_t numel = 1;
    for (int64_t d : shape) numel *= d;
    std::normal_distribution<float> dist(mean, sigma);
    std::vector<float> v(numel);
    for (auto& x : v) x = dist(rng);
    w.shapes[n] = shape;
    w.values[n] = v;
  };
  const float norm_mean = gemma ? 0.0f : 1.0f;  // Gemma stores w of (1 + w)
  add("model.embed_tokens.weight", {kV, kE}, 1.0f, 0);
  add("lm_head.weight", {kV, kE}, 0.1f, 0);
  add("model.norm.weight", {kE}, 0.1f, norm_mean);
  for (int l = 0; l < kL; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".");
    add(p + "self_attn.q_proj.weight", {kH * kD, kE}, 0.1f, 0);
    add(p + "self_attn.k_proj.weight", {kHkv * kD, kE}, 0.1f, 0);
    add(p + "self_attn.v_proj.weight", {kHkv * kD, kE}, 0.1f, 0);
    add(p + "self_attn.o_proj.weight", {kE, kH * kD}, 0.1f, 0);
    add(p + "mlp.gate_proj.weight", {kF, kE}, 0.1f, 0);
    add(p + "mlp.up_proj.weight", {kF, kE}, 0.1f, 0);
    add(p + "mlp.down_proj.weight", {kE, kF}, 0.1f, 0);
    add(p + "input_layernorm.weight", {kE}, 0.1f, norm_mean);
    add(p + "post_attention_layernorm.weight", {kE}, 0.1f, norm_mean);
    if (gemma) {
      add(p + "pre_feedforward_layernorm.weight", {kE}, 0.1f, 0);
      add(p + "post_feedforward_layernorm.weight", {kE}, 0.1f, 0);
      add(p + "self_attn.q_norm.weight", {kD}, 0.1f, 0);
      add(p + "self_attn.k_norm.weight", {kD}, 0.1f, 0);
    }
  }
  return w;
}

std::string ConfigJson(bool gemma) {
  nlohmann::json j = {{"architectures", {gemma ? "Gemma3ForCausalLM" : "LlamaForCausalLM"}},
                      {"model_type", gemma ? "gemma3_text" : "llama"}, {"vocab_size", kV},
                      {"hidden_size", kE}, {"intermediate_size", kF}, {"num_hidden_layers", kL},
                      {"num_attention_heads", kH}, {"num_key_value_heads", kHkv},
                      {"head_dim", kD}, {"max_position_embeddings", 64},
                      {"rms_norm_eps", 1e-5}, {"rope_theta", 10000.0},
                      {"tie_word_embeddings", false},
                      {"hidden_act", gemma ? "gelu_pytorch_tanh" : "silu"},
                      {"bos_token_id", 1}, {"eos_token_id", 2}};
  if (gemma) {
    j["query_pre_attn_scalar"] = kD;
    j["sliding_window"] = nullptr;
  }
  return j.dump();
}

mobile::Tokenizer MakeTokenizer() {
  mobile::Tokenizer t;
  for (int i = 0; i < kV; ++i) {
    t.tokens.push_back(i == 0 ? "<unk>" : i == 1 ? "<s>" : i == 2 ? "</s>" : absl::StrCat("t", i));
    t.scores.push_back(-static_cast<float>(i));
    t.types.push_back(i < 3 ? (i == 0 ? 2 : 3) : 1);
  }
  t.unk_id = 0, t.bos_id = 1, t.eos_id = 2;
  return t;
}

// How each 2-D tensor is stored in a mobile file.
struct IntMode {
  bool quantize = false;
  bool static_act = false;
  bool kv_scales = false;
};

int BitsFor(const std::string& name) {
  if (name == "model.embed_tokens.weight") return 8;
  if (name == "lm_head.weight") return 2;
  return 4;
}

QuantSpec WeightSpec(int bits) {
  QuantSpec s;
  s.scheme = QuantScheme::kIntChannel;
  s.bits = bits;
  s.scale_type = ScaleType::kF16;
  s.scale_rule = ScaleRule::kAbsmax;
  return s;
}

// Writes `w` as a mobile file; with mode.quantize the 2-D tensors are
// int-quantized and `w` is replaced by its dequantized values.
void WriteMobile(const std::string& path, Weights& w, const IntMode& mode) {
  auto wr = mobile::MobileWriter::Create(path);
  ASSERT_TRUE(wr.ok()) << wr.status();
  ASSERT_TRUE(wr->SetConfigJson(ConfigJson(w.gemma)).ok());
  ASSERT_TRUE(wr->SetTokenizer(MakeTokenizer()).ok());
  std::vector<std::string> kv_names;
  for (const auto& [name, shape] : w.shapes) {
    mobile::TensorInfo t{name, mobile::DType::kF32, {shape.begin(), shape.end()}};
    if (mode.quantize && shape.size() == 2) {
      const int bits = BitsFor(name);
      t.dtype = bits == 8 ? mobile::DType::kInt8Channel
                          : bits == 4 ? mobile::DType::kInt4Channel : mobile::DType::kInt2Channel;
      t.scale_type = mobile::ScaleType::kF16;
      if (mode.static_act && bits != 8) {
        t.act_method = mobile::ActMethod::kCalibrated, t.act_scale = 0.03f, t.act_bits = 8;
      }
    }
    ASSERT_TRUE(wr->DeclareTensor(t).ok()) << name;
  }
  if (mode.kv_scales) {
    for (int l = 0; l < kL; ++l) {
      for (const char* kv : {"k_scale", "v_scale"}) {
        kv_names.push_back(absl::StrCat("model.layers.", l, ".self_attn.", kv));
        mobile::TensorInfo t{kv_names.back(), mobile::DType::kF32, {1}};
        t.act_method = mobile::ActMethod::kCalibrated, t.act_scale = 0.05f, t.act_bits = 8;
        ASSERT_TRUE(wr->DeclareTensor(t).ok());
      }
    }
  }
  for (auto& [name, shape] : w.shapes) {
    std::vector<float>& v = w.values[name];
    if (mode.quantize && shape.size() == 2) {
      auto q = QuantizeMatrix(WeightSpec(BitsFor(name)), v.data(), shape[0], shape[1], {});
      ASSERT_TRUE(q.ok()) << q.status();
      ASSERT_TRUE(wr->WriteCodes(q->codes, q->scales).ok()) << name;
      v = DequantizeMatrix(*q);
    } else {
      ASSERT_TRUE(wr->WriteFloats(v).ok()) << name;
    }
  }
  for (size_t i = 0; i < kv_names.size(); ++i) {
    const float s = 0.05f;
    ASSERT_TRUE(wr->WriteFloats({&s, 1}).ok());
  }
  ASSERT_TRUE(wr->Finish().ok());
}

std::string GgufName(const std::string& hf, bool gemma) {
  static const std::map<std::string, std::string> kTop = {
      {"model.embed_tokens.weight", "token_embd.weight"},
      {"lm_head.weight", "output.weight"},
      {"model.norm.weight", "output_norm.weight"}};
  if (kTop.count(hf)) return kTop.at(hf);
  const std::string rest = hf.substr(std::string("model.layers.").size());
  const std::string il = rest.substr(0, rest.find('.'));
  const std::string leaf = rest.substr(il.size() + 1);
  std::map<std::string, std::string> m = {
      {"self_attn.q_proj.weight", "attn_q.weight"}, {"self_attn.k_proj.weight", "attn_k.weight"},
      {"self_attn.v_proj.weight", "attn_v.weight"}, {"self_attn.o_proj.weight", "attn_output.weight"},
      {"mlp.gate_proj.weight", "ffn_gate.weight"},  {"mlp.up_proj.weight", "ffn_up.weight"},
      {"mlp.down_proj.weight", "ffn_down.weight"},  {"input_layernorm.weight", "attn_norm.weight"},
      {"pre_feedforward_layernorm.weight", "ffn_norm.weight"},
      {"post_feedforward_layernorm.weight", "post_ffw_norm.weight"},
      {"self_attn.q_norm.weight", "attn_q_norm.weight"},
      {"self_attn.k_norm.weight", "attn_k_norm.weight"}};
  m["post_attention_layernorm.weight"] = gemma ? "post_attention_norm.weight" : "ffn_norm.weight";
  return "blk." + il + "." + m.at(leaf);
}

// llama.cpp's convert permutes llama's q/k rows so NORM rope applies.
std::vector<float> PermuteQk(const std::vector<float>& v, int n_head, int cols) {
  std::vector<float> out(v.size());
  for (int h = 0; h < n_head; ++h) {
    for (int half = 0; half < 2; ++half) {
      for (int i = 0; i < kD / 2; ++i) {
        const int src = h * kD + half * (kD / 2) + i, dst = h * kD + 2 * i + half;
        std::copy_n(&v[src * cols], cols, &out[dst * cols]);
      }
    }
  }
  return out;
}

void WriteGguf(const std::string& path, const Weights& w) {
  using gguf::Value;
  auto g = gguf::GgufWriter::Create(path);
  ASSERT_TRUE(g.ok()) << g.status();
  const std::string a = w.gemma ? "gemma3" : "llama";
  const mobile::Tokenizer tok = MakeTokenizer();
  std::vector<std::pair<std::string, Value>> kv = {
      {"general.architecture", Value::Str(a)},
      {a + ".context_length", Value::U32(64)},
      {a + ".embedding_length", Value::U32(kE)},
      {a + ".block_count", Value::U32(kL)},
      {a + ".feed_forward_length", Value::U32(kF)},
      {a + ".attention.head_count", Value::U32(kH)},
      {a + ".attention.head_count_kv", Value::U32(kHkv)},
      {a + ".attention.key_length", Value::U32(kD)},
      {a + ".attention.value_length", Value::U32(kD)},
      {a + ".attention.layer_norm_rms_epsilon", Value::F32(1e-5f)},
      {a + ".rope.freq_base", Value::F32(10000.0f)},
      {"tokenizer.ggml.model", Value::Str("llama")},
      {"tokenizer.ggml.tokens", Value::StrArray(tok.tokens)},
      {"tokenizer.ggml.scores", Value::F32Array(tok.scores)},
      {"tokenizer.ggml.token_type", Value::I32Array(tok.types)},
      {"tokenizer.ggml.bos_token_id", Value::U32(1)},
      {"tokenizer.ggml.eos_token_id", Value::U32(2)},
      {"tokenizer.ggml.unknown_token_id", Value::U32(0)}};
  for (auto& [k, v] : kv) ASSERT_TRUE(g->AddKv(k, v).ok()) << k;
  std::vector<std::vector<float>> data;
  for (const auto& [name, shape] : w.shapes) {
    std::vector<float> v = w.values.at(name);
    const bool is_norm = shape.size() == 1;
    if (w.gemma && is_norm) {
      for (float& x : v) x += 1.0f;
    }
    if (!w.gemma && name.find("q_proj") != std::string::npos) v = PermuteQk(v, kH, kE);
    if (!w.gemma && name.find("k_proj") != std::string::npos) v = PermuteQk(v, kHkv, kE);
    std::vector<int64_t> ne(shape.rbegin(), shape.rend());
    ASSERT_TRUE(g->AddTensorInfo(GgufName(name, w.gemma), GgmlType::kF32, ne).ok()) << name;
    data.push_back(std::move(v));
  }
  for (const auto& v : data) ASSERT_TRUE(g->WriteTensorData(v.data(), v.size() * 4).ok());
  ASSERT_TRUE(g->Finish().ok());
}

std::vector<float> Logits(const Model& m, KvType kv, ThreadPool& pool) {
  auto s = Session::Create(m, 32, kv, pool);
  EXPECT_TRUE(s.ok()) << s.status();
  if (!s.ok()) return {};
  const std::vector<int32_t> toks = {1, 5, 9, 17, 33, 3, 3, 12};
  EXPECT_TRUE((*s)->Eval(toks.data(), static_cast<int>(toks.size()), true).ok());
  return std::vector<float>((*s)->logits(), (*s)->logits() + toks.size() * kV);
}

double MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double d = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) d = std::max(d, double(std::fabs(a[i] - b[i])));
  return d;
}

// Per-process names: ctest runs the cases of this binary in parallel processes.
std::string Tmp(const std::string& n) {
  return ::testing::TempDir() + "/qatk_" + std::to_string(::getpid()) + "_" + n;
}

class MobileModelTest : public ::testing::TestWithParam<bool> {};  // param: gemma

TEST_P(MobileModelTest, F32MobileMatchesGgufConventions) {
  const bool gemma = GetParam();
  Weights w = MakeWeights(gemma, 42);
  WriteMobile(Tmp("m_f32.qmob"), w, IntMode{});
  WriteGguf(Tmp("m_f32.gguf"), w);
  auto mm = LoadMobileModel(Tmp("m_f32.qmob"));
  ASSERT_TRUE(mm.ok()) << mm.status();
  auto gm = LoadModel(Tmp("m_f32.gguf"));
  ASSERT_TRUE(gm.ok()) << gm.status();
  EXPECT_EQ((*mm)->vocab.tokens, (*gm)->vocab.tokens);
  ThreadPool pool(1);
  const auto a = Logits(**mm, KvType::kF32, pool), b = Logits(**gm, KvType::kF32, pool);
  EXPECT_LT(MaxAbsDiff(a, b), 1e-3) << (gemma ? "gemma3" : "llama");
}

TEST_P(MobileModelTest, WeightOnlyIntFileMatchesItsDequantizedWeights) {
  const bool gemma = GetParam();
  Weights w = MakeWeights(gemma, 7);
  WriteMobile(Tmp("m_int.qmob"), w, IntMode{true, false, false});  // w := dequantized
  WriteMobile(Tmp("m_deq.qmob"), w, IntMode{});
  auto qm = LoadMobileModel(Tmp("m_int.qmob"));
  ASSERT_TRUE(qm.ok()) << qm.status();
  auto fm = LoadMobileModel(Tmp("m_deq.qmob"));
  ASSERT_TRUE(fm.ok()) << fm.status();
  EXPECT_EQ((*qm)->layers[0].wq.type, WType::kInt4Channel);
  EXPECT_EQ((*qm)->output.type, WType::kInt2Channel);
  EXPECT_EQ((*qm)->tok_embd.type, WType::kInt8Channel);
  ThreadPool pool(2);
  const auto a = Logits(**qm, KvType::kF32, pool), b = Logits(**fm, KvType::kF32, pool);
  EXPECT_LT(MaxAbsDiff(a, b), 1e-3);
}

TEST_P(MobileModelTest, StaticActivationsAndInt8KvCacheRun) {
  const bool gemma = GetParam();
  Weights w = MakeWeights(gemma, 9);
  WriteMobile(Tmp("m_act.qmob"), w, IntMode{true, true, true});
  auto m = LoadMobileModel(Tmp("m_act.qmob"));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((*m)->layers[1].wq.act_scale, 0.03f);
  EXPECT_EQ((*m)->layers[1].k_scale, 0.05f);
  EXPECT_EQ((*m)->layers[1].v_scale, 0.05f);
  ThreadPool pool(1);
  const auto a = Logits(**m, KvType::kInt8, pool);
  ASSERT_FALSE(a.empty());
  for (float x : a) ASSERT_TRUE(std::isfinite(x));
  WriteMobile(Tmp("m_act_deq.qmob"), w, IntMode{});  // w was replaced by the dequantized values
  auto f = LoadMobileModel(Tmp("m_act_deq.qmob"));
  ASSERT_TRUE(f.ok());
  const auto b = Logits(**f, KvType::kF32, pool);
  EXPECT_NE(a, b);  // activation + KV quantization changed something...
  double num = 0, den = 0;  // ...but not everything
  for (size_t i = 0; i < a.size(); ++i) num += (a[i] - b[i]) * (a[i] - b[i]), den += b[i] * b[i];
  EXPECT_LT(std::sqrt(num / den), 0.5);
}

// Matrices with a static activation scale run in the x16 layout where this
// CPU has a SIMD x16 kernel (kernels/x16.h); the logits equal, bit for bit, those
// of the same model with every matrix in the file's row layout.
TEST_P(MobileModelTest, X16LayoutGivesTheRowLayoutLogitsExactly) {
  const bool gemma = GetParam();
  Weights w = MakeWeights(gemma, 11);
  const std::string path = Tmp("m_x16.qmob");
  WriteMobile(path, w, IntMode{true, true, false});
  auto m = LoadMobileModel(path);
  ASSERT_TRUE(m.ok()) << m.status();
  for (WType t : {WType::kInt4Channel, WType::kInt2Channel}) {
    const MatMulKernel* k = BestMatMulKernel(IntX16Type(t));
    const bool x16 = k != nullptr && std::string(k->target) != "scalar";
    const QMatrix& q = t == WType::kInt4Channel ? (*m)->layers[1].wq : (*m)->output;
    EXPECT_EQ(q.type, x16 ? IntX16Type(t) : t) << WTypeName(t);
  }
  auto rows = LoadMobileModel(path);
  ASSERT_TRUE(rows.ok()) << rows.status();
  auto f = mobile::MobileFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  std::list<std::vector<float>> scales;
  auto file_layout = [&](const std::string& name, QMatrix* q) {
    const mobile::TensorInfo* t = f->FindTensor(name);
    ASSERT_NE(t, nullptr) << name;
    scales.emplace_back();
    auto fm = MobileMatrix(*f, *t, &scales.back());
    ASSERT_TRUE(fm.ok()) << fm.status();
    *q = *fm;
  };
  file_layout("lm_head.weight", &(*rows)->output);
  for (int l = 0; l < kL; ++l) {
    LayerWeights& lw = (*rows)->layers[l];
    const std::string p = absl::StrCat("model.layers.", l, ".");
    file_layout(p + "self_attn.q_proj.weight", &lw.wq);
    file_layout(p + "self_attn.k_proj.weight", &lw.wk);
    file_layout(p + "self_attn.v_proj.weight", &lw.wv);
    file_layout(p + "self_attn.o_proj.weight", &lw.wo);
    file_layout(p + "mlp.gate_proj.weight", &lw.gate);
    file_layout(p + "mlp.up_proj.weight", &lw.up);
    file_layout(p + "mlp.down_proj.weight", &lw.down);
  }
  EXPECT_EQ((*rows)->layers[1].wq.type, WType::kInt4Channel);
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    EXPECT_EQ(Logits(**m, KvType::kF32, pool), Logits(**rows, KvType::kF32, pool))
        << "threads " << threads;
  }
}

INSTANTIATE_TEST_SUITE_P(Arch, MobileModelTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "gemma3" : "llama"; });

TEST(MobileModelErrorsTest, MissingTensorAndBadEmbeddingType) {
  auto wr = mobile::MobileWriter::Create(Tmp("m_bad.qmob"));
  ASSERT_TRUE(wr.ok());
  ASSERT_TRUE(wr->SetConfigJson(ConfigJson(false)).ok());
  ASSERT_TRUE(wr->SetTokenizer(MakeTokenizer()).ok());
  mobile::TensorInfo e{"model.embed_tokens.weight", mobile::DType::kInt4Channel, {kV, kE},
                       mobile::ScaleType::kF32};
  ASSERT_TRUE(wr->DeclareTensor(e).ok());
  ASSERT_TRUE(wr->WriteCodes(std::vector<int8_t>(kV * kE, 1), std::vector<float>(kV, 0.5f)).ok());
  ASSERT_TRUE(wr->Finish().ok());
  auto m = LoadMobileModel(Tmp("m_bad.qmob"));
  EXPECT_EQ(m.status().code(), absl::StatusCode::kUnimplemented) << m.status();
  EXPECT_NE(m.status().message().find("model.embed_tokens.weight"), std::string::npos);

  Weights w = MakeWeights(false, 1);
  w.shapes.erase("model.layers.1.mlp.up_proj.weight");
  WriteMobile(Tmp("m_missing.qmob"), w, IntMode{});
  m = LoadMobileModel(Tmp("m_missing.qmob"));
  EXPECT_EQ(m.status().code(), absl::StatusCode::kNotFound) << m.status();
  EXPECT_NE(m.status().message().find("model.layers.1.mlp.up_proj.weight"), std::string::npos);
}

}  // namespace
}  // namespace qatk::inference
