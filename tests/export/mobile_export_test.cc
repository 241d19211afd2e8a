// Mobile export: file contents against the shared codec, quantizer state
// carried exactly, clean errors, and the runtime running the exported file
// against an independent float reference (plain loops below).
#include "export/mobile_export.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "export/checkpoint.h"
#include "export/gguf_export.h"
#include "export/tensor_plan.h"
#include "absl/strings/match.h"
#include "formats/mobile/mobile_format.h"
#include "formats/model_config.h"
#include "formats/quant/recipe.h"
#include "formats/quant/spec.h"
#include "formats/safetensors/safetensors.h"
#include "formats/util/file_io.h"
#include "gtest/gtest.h"
#include "inference/forward.h"
#include "inference/model_loader.h"
#include "inference/thread_pool.h"
#include "nlohmann/json.hpp"
#include "tests/export/tiny_checkpoint.h"

namespace qatk::exporter {
namespace {

using mobile::MobileFile;
using mobile::TensorInfo;
using testing::TinyModelOptions;

std::string MobileRecipe() {
  auto r = ReadFileToString(std::string(QATK_SOURCE_DIR) + "/configs/recipes/mobile.json");
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : "";
}

// Weight-only int4 / int2-head / int8-embedding recipe (absmax, no state).
std::string WeightOnlyRecipe() {
  return R"json({"recipe_version": 1, "name": "w4", "export_format": "mobile", "rules": [
    {"match": "lm_head", "optional": true, "weight": {"scheme": "int_channel", "bits": 2}},
    {"match": ["model.layers.*_proj"], "weight": {"scheme": "int_channel", "bits": 4}},
    {"match": "model.embed_tokens", "weight": {"scheme": "int_channel", "bits": 8}}]})json";
}

bool Exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

class MobileExportTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/qatk_mobile_export_XXXXXX";
    root_ = mkdtemp(tmpl);
    TinyModelOptions o;
    ASSERT_TRUE(testing::WriteTinyCheckpoint(root_ + "/base", o).ok());
    tokenizer_ = root_ + "/base/tokenizer.model";
  }
  static void TearDownTestSuite() { std::system(("rm -rf " + root_).c_str()); }

  // A checkpoint under root_/name (with quantizer state when `state`).
  static std::string Checkpoint(const std::string& name, TinyModelOptions o, bool state) {
    o.tokenizer_model = tokenizer_;
    const std::string dir = root_ + "/" + name;
    const absl::Status w = testing::WriteTinyCheckpoint(dir, o);
    EXPECT_TRUE(w.ok()) << w;
    if (state) {
      const absl::Status q = testing::AddQuantState(dir, o.seed + 100);
      EXPECT_TRUE(q.ok()) << q;
    }
    return dir;
  }
  static absl::Status Export(const std::string& dir) {
    MobileExportOptions e;
    e.model_dir = dir;
    e.out = dir + ".qmob";
    return ExportMobile(e);
  }

  static std::string root_, tokenizer_;
};
std::string MobileExportTest::root_;
std::string MobileExportTest::tokenizer_;

// Every tensor of the file against the latent checkpoint: quantized rows must
// equal FakeQuantizeWithScale(latent row, Store(stored or rule scale))
// exactly, and the stored scale must be that scale; norms are the latent
// values. Returns the number of rows whose stored scale is not the absmax
// rule's (so the test knows the stored weight_scale was used).
int ExpectFileMatchesCodec(const std::string& dir, const std::string& path) {
  auto ck = OpenCheckpoint(dir);
  EXPECT_TRUE(ck.ok()) << ck.status();
  auto f = MobileFile::Open(path);
  EXPECT_TRUE(f.ok()) << f.status();
  if (!ck.ok() || !f.ok()) return 0;
  int rows_not_absmax = 0;
  for (const GgufTensorSpec& t : GgufTensorList(ck->config)) {
    SCOPED_TRACE(t.hf_name);
    const TensorInfo* info = f->FindTensor(t.hf_name);
    EXPECT_NE(info, nullptr);
    if (info == nullptr) continue;
    EXPECT_EQ(info->dims, std::vector<uint64_t>(t.shape.begin(), t.shape.end()));
    auto w = ck->ReadTensor(t.hf_name, t.shape);
    EXPECT_TRUE(w.ok());
    const int64_t cols = t.shape.size() == 2 ? t.shape[1] : 1, rows = t.shape[0];
    const QuantSpec spec = ck->recipe->Resolve(t.module).weight;
    std::vector<float> scales;
    if (spec.enabled() && spec.has_stored_scale()) {
      auto s = ck->weights.ReadFloat(t.module + ".weight_scale");
      EXPECT_TRUE(s.ok());
      scales = *s;
    }
    std::vector<float> got(cols), want(cols);
    for (int64_t r = 0; r < rows; ++r) {
      const float* x = w->data() + r * cols;
      f->DequantizeRow(*info, r, got.data());
      if (!spec.enabled()) {
        std::copy(x, x + cols, want.begin());
      } else {
        const float rule = ChooseScale(spec, x, cols);
        const float s = scales.empty() ? rule : StoreScale(spec, scales[r]);
        rows_not_absmax += s != ChooseScaleAbsmax(spec, x, cols);
        FakeQuantizeWithScale(spec, x, cols, s, want.data());
        EXPECT_EQ(f->Scale(*info, r), s) << "row " << r;
      }
      // Zero difference (== on values: a 0 code may come back as -0 or +0).
      const int64_t k = std::mismatch(got.begin(), got.end(), want.begin()).first - got.begin();
      if (k != cols) {
        ADD_FAILURE() << "row " << r << " col " << k << ": file " << got[k] << ", codec "
                      << want[k] << " (x " << x[k] << ", scale " << f->Scale(*info, r) << ")";
        return rows_not_absmax;
      }
    }
  }
  return rows_not_absmax;
}

TEST_F(MobileExportTest, CodesTimesScalesEqualSharedCodec) {
  TinyModelOptions o;
  o.recipe_json = MobileRecipe();
  const std::string dir = Checkpoint("mobile", o, true);
  ASSERT_TRUE(Export(dir).ok()) << Export(dir);
  EXPECT_GT(ExpectFileMatchesCodec(dir, dir + ".qmob"), 0);
  auto f = MobileFile::Open(dir + ".qmob");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->FindTensor("lm_head.weight")->dtype, mobile::DType::kInt2Channel);
  EXPECT_EQ(f->FindTensor("model.layers.1.mlp.down_proj.weight")->dtype,
            mobile::DType::kInt4Channel);
  EXPECT_EQ(f->FindTensor("model.embed_tokens.weight")->dtype, mobile::DType::kInt8Channel);
  EXPECT_EQ(f->FindTensor("model.norm.weight")->dtype, mobile::DType::kF32);
  const nlohmann::json rj = nlohmann::json::parse(f->recipe_json());
  EXPECT_EQ(rj["recipe"]["name"], "mobile");
  EXPECT_EQ(rj["provenance"]["method"], "ptq");  // no trainer_state.json
}

TEST_F(MobileExportTest, TiedGemmaStoresEmbeddingOnce) {
  TinyModelOptions o;
  o.model_type = "gemma3_text";
  o.tied = true;
  o.recipe_json = MobileRecipe();
  const std::string dir = Checkpoint("gemma_tied", o, true);
  ASSERT_TRUE(Export(dir).ok()) << Export(dir);
  EXPECT_GT(ExpectFileMatchesCodec(dir, dir + ".qmob"), 0);
  auto f = MobileFile::Open(dir + ".qmob");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->FindTensor("lm_head.weight"), nullptr);
  EXPECT_EQ(f->FindTensor("model.embed_tokens.weight")->act_method, mobile::ActMethod::kNone);
}

TEST_F(MobileExportTest, ActivationAndKvScalesCarriedExactly) {
  TinyModelOptions o;
  o.recipe_json = MobileRecipe();
  const std::string dir = Checkpoint("scales", o, true);
  ASSERT_TRUE(Export(dir).ok());
  auto ck = OpenCheckpoint(dir);
  auto f = MobileFile::Open(dir + ".qmob");
  ASSERT_TRUE(ck.ok() && f.ok());
  int linears = 0, kv = 0;
  for (const auto& t : ck->weights.tensors()) {
    const bool input = absl::EndsWith(t.name, ".input_scale");
    const bool cache = absl::EndsWith(t.name, "_attn.k_scale") || absl::EndsWith(t.name, "_attn.v_scale");
    if (!input && !cache) continue;
    SCOPED_TRACE(t.name);
    const float v = (*ck->weights.ReadFloat(t.name))[0];
    const std::string module =
        input ? t.name.substr(0, t.name.size() - 12)
              : t.name.substr(0, t.name.size() - 7) + (t.name[t.name.size() - 7] == 'k' ? "k_cache" : "v_cache");
    const LayerQuant lq = ck->recipe->Resolve(module);
    const QuantSpec& spec = input ? lq.input : lq.cache;
    const TensorInfo* info = f->FindTensor(input ? module + ".weight" : t.name);
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(info->act_scale, StoreScale(spec, v));
    EXPECT_EQ(info->act_method, mobile::ActMethod::kCalibrated);
    EXPECT_EQ(info->act_bits, 8);
    EXPECT_EQ(info->act_narrow, spec.narrow_range);
    if (cache) {
      float stored = 0;
      f->DequantizeRow(*info, 0, &stored);
      EXPECT_EQ(stored, StoreScale(spec, v));
    }
    (input ? linears : kv)++;
  }
  EXPECT_EQ(linears, 2 * 7 + 1);
  EXPECT_EQ(kv, 2 * 2);
}

// Rewrites dir/model.safetensors with `name` dropped or its shape changed.
void EditTensor(const std::string& dir, const std::string& name, bool drop) {
  auto f = safetensors::SafetensorsFile::Open(dir + "/model.safetensors");
  ASSERT_TRUE(f.ok());
  safetensors::SafetensorsWriter w;
  bool found = false;
  for (const auto& t : f->tensors()) {
    auto x = f->ReadFloat(t.name);
    ASSERT_TRUE(x.ok());
    if (t.name != name) {
      ASSERT_TRUE(w.AddF32(t.name, t.shape, *x).ok());
      continue;
    }
    found = true;
    if (drop) continue;
    std::vector<int64_t> shape = t.shape;
    shape[0] -= 1;
    x->resize(x->size() - x->size() / t.shape[0]);
    ASSERT_TRUE(w.AddF32(t.name, shape, *x).ok());
  }
  ASSERT_TRUE(found) << name;
  ASSERT_TRUE(w.Write(dir + "/model.safetensors").ok());
}

bool DirHasTemporaries(const std::string& root, const std::string& prefix) {
  DIR* d = opendir(root.c_str());
  bool found = false;
  while (dirent* e = readdir(d)) {
    const std::string n = e->d_name;
    if (n.rfind(prefix, 0) == 0 && n != prefix) found = true;
  }
  closedir(d);
  return found;
}

TEST_F(MobileExportTest, BadStateIsAnErrorNamingTheTensorAndLeavesNoFile) {
  struct Case {
    std::string tensor;
    bool drop;
    absl::StatusCode code;
  };
  const std::vector<Case> cases = {
      {"model.layers.1.mlp.up_proj.input_scale", true, absl::StatusCode::kNotFound},
      {"model.layers.0.self_attn.v_scale", true, absl::StatusCode::kNotFound},
      {"lm_head.weight_scale", true, absl::StatusCode::kNotFound},
      {"model.layers.0.self_attn.o_proj.weight_scale", false, absl::StatusCode::kInvalidArgument},
      {"model.layers.1.self_attn.k_proj.weight", false, absl::StatusCode::kInvalidArgument},
  };
  int i = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.tensor);
    TinyModelOptions o;
    o.recipe_json = MobileRecipe();
    const std::string name = "bad" + std::to_string(i++);
    const std::string dir = Checkpoint(name, o, true);
    EditTensor(dir, c.tensor, c.drop);
    const absl::Status s = Export(dir);
    EXPECT_EQ(s.code(), c.code) << s;
    EXPECT_NE(s.message().find(c.tensor), std::string::npos) << s;
    EXPECT_FALSE(Exists(dir + ".qmob"));
    EXPECT_FALSE(DirHasTemporaries(root_, name + ".qmob"));
  }
}

TEST_F(MobileExportTest, UnusedStateAndBlockRecipesAreErrors) {
  TinyModelOptions o;
  o.recipe_json = WeightOnlyRecipe();
  const std::string dir = Checkpoint("unused", o, false);
  safetensors::SafetensorsWriter w;
  {
    auto f = safetensors::SafetensorsFile::Open(dir + "/model.safetensors");
    ASSERT_TRUE(f.ok());
    for (const auto& t : f->tensors()) ASSERT_TRUE(w.AddF32(t.name, t.shape, *f->ReadFloat(t.name)).ok());
  }
  ASSERT_TRUE(w.AddF32("model.layers.0.mlp.gate_proj.input_scale", {1}, std::vector<float>{0.1f}).ok());
  ASSERT_TRUE(w.Write(dir + "/model.safetensors").ok());
  absl::Status s = Export(dir);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("model.layers.0.mlp.gate_proj.input_scale"), std::string::npos) << s;

  o.recipe_json = testing::RecipeQ4_0();
  s = Export(Checkpoint("q4", o, false));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("q4_0"), std::string::npos) << s;
  EXPECT_FALSE(Exists(root_ + "/q4.qmob"));
}

// ---- runtime ---------------------------------------------------------------

std::vector<float> RuntimeLogits(const std::string& path, const std::vector<int32_t>& toks) {
  auto m = inference::LoadModel(path);
  EXPECT_TRUE(m.ok()) << m.status();
  if (!m.ok()) return {};
  inference::ThreadPool pool(1);
  auto s = inference::Session::Create(**m, 32, inference::KvType::kF32, pool);
  EXPECT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE((*s)->Eval(toks.data(), static_cast<int>(toks.size()), true).ok());
  const int V = (*m)->config.n_vocab;
  return std::vector<float>((*s)->logits(), (*s)->logits() + toks.size() * V);
}

const std::vector<int32_t> kTokens = {1, 37, 250, 5, 99, 123, 4, 301, 77, 12, 64, 200};

// Independent llama forward in double over the file's dequantized weights
// (HF layout: rotate-half rope). With act_quant, the input of every linear
// that has an act_scale goes through the spec codec's fake quant first
// (FakeQuantizeWithScale with the recipe's input spec and the file's scale).
class RefLlama {
 public:
  RefLlama(const MobileFile& f, bool act_quant) : f_(f), act_quant_(act_quant) {
    c_ = *ModelConfig::FromJson(nlohmann::json::parse(f.config_json()), "config");
    recipe_ = *ParseRecipe(nlohmann::json::parse(f.recipe_json())["recipe"].dump());
  }
  std::vector<double> Logits(const std::vector<int32_t>& toks) {
    const int64_t T = toks.size(), E = c_.hidden_size;
    std::vector<std::vector<double>> x(T, std::vector<double>(E));
    std::vector<float> row(E);
    for (int64_t t = 0; t < T; ++t) {
      f_.DequantizeRow(*f_.FindTensor("model.embed_tokens.weight"), toks[t], row.data());
      std::copy(row.begin(), row.end(), x[t].begin());
    }
    for (int64_t l = 0; l < c_.num_hidden_layers; ++l) Layer(l, &x);
    std::vector<double> out;
    for (int64_t t = 0; t < T; ++t) {
      const std::vector<double> h = Linear("lm_head", Norm("model.norm.weight", x[t]));
      out.insert(out.end(), h.begin(), h.end());
    }
    return out;
  }

 private:
  std::vector<double> Norm(const std::string& name, const std::vector<double>& x) const {
    double ss = 0;
    for (double v : x) ss += v * v;
    const double inv = 1.0 / std::sqrt(ss / x.size() + c_.rms_norm_eps);
    std::vector<float> w(x.size());
    for (size_t i = 0; i < x.size(); ++i) f_.DequantizeRow(*f_.FindTensor(name), i, &w[i]);
    std::vector<double> y(x.size());
    for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * inv * w[i];
    return y;
  }
  // y [rows] = W [rows, cols] · actq(x [cols]).
  std::vector<double> Linear(const std::string& module, const std::vector<double>& x) const {
    const TensorInfo& t = *f_.FindTensor(module + ".weight");
    const int64_t rows = t.rows(), cols = t.row_len();
    std::vector<float> xf(x.begin(), x.end()), xq(cols), w(cols);
    if (act_quant_ && t.act_method != mobile::ActMethod::kNone) {
      FakeQuantizeWithScale(recipe_.Resolve(module).input, xf.data(), cols, t.act_scale, xq.data());
    } else {
      xq = xf;
    }
    std::vector<double> y(rows);
    for (int64_t r = 0; r < rows; ++r) {
      f_.DequantizeRow(t, r, w.data());
      double acc = 0;
      for (int64_t k = 0; k < cols; ++k) acc += double(w[k]) * xq[k];
      y[r] = acc;
    }
    return y;
  }
  void Rope(std::vector<double>* v, int64_t n_heads, int64_t pos) const {
    const int64_t D = c_.head_dim;
    for (int64_t h = 0; h < n_heads; ++h) {
      double* p = v->data() + h * D;
      for (int64_t i = 0; i < D / 2; ++i) {
        const double th = pos * std::pow(c_.rope_theta, -2.0 * i / D);
        const double a = p[i], b = p[i + D / 2];
        p[i] = a * std::cos(th) - b * std::sin(th);
        p[i + D / 2] = a * std::sin(th) + b * std::cos(th);
      }
    }
  }
  void Layer(int64_t l, std::vector<std::vector<double>>* x) const {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const int64_t T = x->size(), H = c_.num_attention_heads, Hk = c_.num_key_value_heads;
    const int64_t D = c_.head_dim;
    std::vector<std::vector<double>> q(T), k(T), v(T);
    for (int64_t t = 0; t < T; ++t) {
      const std::vector<double> h = Norm(p + "input_layernorm.weight", (*x)[t]);
      q[t] = Linear(p + "self_attn.q_proj", h);
      k[t] = Linear(p + "self_attn.k_proj", h);
      v[t] = Linear(p + "self_attn.v_proj", h);
      Rope(&q[t], H, t);
      Rope(&k[t], Hk, t);
    }
    for (int64_t t = 0; t < T; ++t) {
      std::vector<double> att(H * D, 0.0);
      for (int64_t h = 0; h < H; ++h) {
        const int64_t g = h / (H / Hk);
        std::vector<double> s(t + 1);
        double mx = -1e300, sum = 0;
        for (int64_t j = 0; j <= t; ++j) {
          double d = 0;
          for (int64_t i = 0; i < D; ++i) d += q[t][h * D + i] * k[j][g * D + i];
          s[j] = d / std::sqrt(double(D));
          mx = std::max(mx, s[j]);
        }
        for (double& e : s) sum += (e = std::exp(e - mx));
        for (int64_t j = 0; j <= t; ++j) {
          for (int64_t i = 0; i < D; ++i) att[h * D + i] += s[j] / sum * v[j][g * D + i];
        }
      }
      const std::vector<double> o = Linear(p + "self_attn.o_proj", att);
      for (size_t i = 0; i < o.size(); ++i) (*x)[t][i] += o[i];
      const std::vector<double> h2 = Norm(p + "post_attention_layernorm.weight", (*x)[t]);
      std::vector<double> gate = Linear(p + "mlp.gate_proj", h2);
      const std::vector<double> up = Linear(p + "mlp.up_proj", h2);
      for (size_t i = 0; i < gate.size(); ++i) gate[i] = gate[i] / (1 + std::exp(-gate[i])) * up[i];
      const std::vector<double> d = Linear(p + "mlp.down_proj", gate);
      for (size_t i = 0; i < d.size(); ++i) (*x)[t][i] += d[i];
    }
  }

  const MobileFile& f_;
  bool act_quant_;
  ModelConfig c_;
  Recipe recipe_;
};

std::vector<double> ReferenceLlama(const std::string& path, const std::vector<int32_t>& toks,
                                   bool act_quant) {
  auto f = MobileFile::Open(path);
  EXPECT_TRUE(f.ok()) << f.status();
  return RefLlama(*f, act_quant).Logits(toks);
}

TEST_F(MobileExportTest, RuntimeMatchesFloatReferenceWithStaticInt8Activations) {
  TinyModelOptions o;
  o.recipe_json = MobileRecipe();
  const std::string dir = Checkpoint("runtime", o, true);
  ASSERT_TRUE(Export(dir).ok());
  const std::vector<float> got = RuntimeLogits(dir + ".qmob", kTokens);
  ASSERT_FALSE(got.empty());
  const std::vector<double> want = ReferenceLlama(dir + ".qmob", kTokens, /*act_quant=*/true);
  const std::vector<double> no_act = ReferenceLlama(dir + ".qmob", kTokens, /*act_quant=*/false);
  double amax = 0, diff = 0, diff_no_act = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    amax = std::max(amax, std::fabs(want[i]));
    diff = std::max(diff, std::fabs(got[i] - want[i]));
    diff_no_act = std::max(diff_no_act, std::fabs(got[i] - no_act[i]));
  }
  EXPECT_LT(diff, 1e-4 * std::max(1.0, amax)) << "max |logit| " << amax;
  // The check can tell int8 activations from float ones.
  EXPECT_GT(diff_no_act, 100 * diff + 1e-3);
}

// Weight-only file vs a GGUF-F32 export of the same dequantized weights:
// both layouts (HF q/k + NEOX rope vs permuted q/k + NORM rope for llama;
// Gemma's (1+w) norms) must give the same logits.
void ExpectMatchesF32Gguf(const std::string& root, const std::string& dir) {
  const std::string deq = dir + "_deq";
  ASSERT_EQ(std::system(("mkdir -p " + deq + " && cp " + dir + "/config.json " + dir +
                         "/tokenizer.model " + deq).c_str()), 0);
  auto f = MobileFile::Open(dir + ".qmob");
  ASSERT_TRUE(f.ok());
  safetensors::SafetensorsWriter w;
  for (const TensorInfo& t : f->tensors()) {
    std::vector<float> x(t.numel());
    for (uint64_t r = 0; r < t.rows(); ++r) f->DequantizeRow(t, r, x.data() + r * t.row_len());
    ASSERT_TRUE(w.AddF32(t.name, std::vector<int64_t>(t.dims.begin(), t.dims.end()), x).ok());
  }
  ASSERT_TRUE(w.Write(deq + "/model.safetensors").ok());
  GgufExportOptions g;
  g.model_dir = deq;
  g.out = deq + ".gguf";
  g.outtype = "f32";
  ASSERT_TRUE(ExportGguf(g).ok());
  const std::vector<float> a = RuntimeLogits(dir + ".qmob", kTokens);
  const std::vector<float> b = RuntimeLogits(g.out, kTokens);
  ASSERT_EQ(a.size(), b.size());
  double amax = 0, diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    amax = std::max(amax, double(std::fabs(b[i])));
    diff = std::max(diff, double(std::fabs(a[i] - b[i])));
  }
  EXPECT_GT(amax, 0.1);
  EXPECT_LT(diff, 1e-4 * std::max(1.0, amax));
}

TEST_F(MobileExportTest, WeightOnlyLlamaMatchesF32GgufOfDequantizedWeights) {
  TinyModelOptions o;
  o.recipe_json = WeightOnlyRecipe();
  const std::string dir = Checkpoint("wo_llama", o, false);
  ASSERT_TRUE(Export(dir).ok()) << Export(dir);
  ExpectMatchesF32Gguf(root_, dir);
}

TEST_F(MobileExportTest, WeightOnlyTiedGemmaMatchesF32GgufOfDequantizedWeights) {
  TinyModelOptions o;
  o.model_type = "gemma3_text";
  o.tied = true;
  o.recipe_json = WeightOnlyRecipe();
  const std::string dir = Checkpoint("wo_gemma", o, false);
  ASSERT_TRUE(Export(dir).ok()) << Export(dir);
  ExpectMatchesF32Gguf(root_, dir);
}

}  // namespace
}  // namespace qatk::exporter
