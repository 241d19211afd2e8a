// The architecture table (formats/model_arch.h) against its three users,
// for llama, qwen2, qwen3 and gemma3 configs, tied and untied: the checkpoint (the
// safetensors a tiny checkpoint holds), the exporters (the GGUF and mobile
// files' tensors) and the runtime loaders (which file tensor each Model
// field was loaded from) must agree with it on every tensor: names, shapes,
// order and count.
#include "formats/model_arch.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "export/checkpoint.h"
#include "export/gguf_export.h"
#include "export/mobile_export.h"
#include "export/tensor_plan.h"
#include "formats/gguf/gguf.h"
#include "formats/mobile/mobile_format.h"
#include "gtest/gtest.h"
#include "inference/forward.h"
#include "inference/mobile_model.h"
#include "inference/model_loader.h"
#include "tests/export/tiny_checkpoint.h"

namespace qatk {
namespace {

using testing::TinyModelOptions;

struct Case {
  const char* model_type;
  bool tied;
};
void PrintTo(const Case& c, std::ostream* os) {
  *os << c.model_type << (c.tied ? " tied" : " untied");
}

class ModelArchTest : public ::testing::TestWithParam<Case> {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/qatk_model_arch_XXXXXX";
    root_ = mkdtemp(tmpl);
    // Train the tokenizer once; every checkpoint copies it.
    ASSERT_TRUE(testing::WriteTinyCheckpoint(root_ + "/base", TinyModelOptions()).ok());
    tokenizer_ = root_ + "/base/tokenizer.model";
  }
  static void TearDownTestSuite() { std::system(("rm -rf " + root_).c_str()); }

  // A checkpoint of the case; sets dir_ and config_.
  void SetUp() override {
    TinyModelOptions o;
    o.model_type = GetParam().model_type;
    o.tied = GetParam().tied;
    o.tokenizer_model = tokenizer_;
    dir_ = root_ + "/" + o.model_type + (o.tied ? "_tied" : "_untied");
    ASSERT_TRUE(testing::WriteTinyCheckpoint(dir_, o).ok());
    auto ck = exporter::OpenCheckpoint(dir_);
    ASSERT_TRUE(ck.ok()) << ck.status();
    config_ = ck->config;
    tensors_ = ArchTensors(config_);
  }

  static std::string root_, tokenizer_;
  std::string dir_;
  ModelConfig config_;
  std::vector<ArchTensor> tensors_;
};
std::string ModelArchTest::root_;
std::string ModelArchTest::tokenizer_;

int64_t Expected(const ModelConfig& c) {
  const int64_t per_layer = c.is_gemma()                ? 13
                            : c.model_type == "qwen2" ? 12
                            : c.model_type == "qwen3" ? 11
                                                      : 9;
  return 2 + (c.tie_word_embeddings ? 0 : 1) + c.num_hidden_layers * per_layer;
}

TEST_P(ModelArchTest, CheckpointHoldsTheTableTensors) {
  ASSERT_EQ(static_cast<int64_t>(tensors_.size()), Expected(config_));
  auto ck = exporter::OpenCheckpoint(dir_);
  ASSERT_TRUE(ck.ok()) << ck.status();
  std::map<std::string, std::vector<int64_t>> file;
  for (const auto& t : ck->weights.tensors()) file[t.name] = t.shape;
  ASSERT_EQ(file.size(), tensors_.size());
  for (const ArchTensor& t : tensors_) {
    ASSERT_TRUE(file.count(t.hf_name)) << t.hf_name;
    EXPECT_EQ(file[t.hf_name], t.shape) << t.hf_name;
  }
  // The recipe modules are the table's matrices and cache points.
  const std::vector<ModuleShape> modules = exporter::RecipeModules(config_);
  size_t matrices = 0;
  for (const ArchTensor& t : tensors_) matrices += t.quantizable() ? 1 : 0;
  EXPECT_EQ(modules.size(), matrices + ArchCaches(config_).size());
}

TEST_P(ModelArchTest, GgufExportAndLoaderAgreeWithTable) {
  exporter::GgufExportOptions e;
  e.model_dir = dir_;
  e.out = dir_ + ".gguf";
  ASSERT_TRUE(exporter::ExportGguf(e).ok());
  auto f = gguf::GgufFile::Open(e.out);
  ASSERT_TRUE(f.ok()) << f.status();
  // The file: the table's tensors in table order, GGUF names, reversed shapes.
  ASSERT_EQ(f->tensors().size(), tensors_.size());
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const gguf::TensorInfo& g = f->tensors()[i];
    const ArchTensor& t = tensors_[i];
    EXPECT_EQ(g.name, t.gguf_name);
    EXPECT_EQ(g.ne, std::vector<int64_t>(t.shape.rbegin(), t.shape.rend())) << t.gguf_name;
  }
  // The exporters' flat list is the table.
  const std::vector<exporter::GgufTensorSpec> plan = exporter::GgufTensorList(config_);
  ASSERT_EQ(plan.size(), tensors_.size());
  for (size_t i = 0; i < plan.size(); ++i) {
    EXPECT_EQ(plan[i].hf_name, tensors_[i].hf_name);
    EXPECT_EQ(plan[i].shape, tensors_[i].shape);
  }

  // The loader: every Model field views (matrices, zero-copy without repack)
  // or copies (F32 vectors) the file tensor of its table row, and every file
  // tensor backs some field. The loader maps the file itself: views are
  // compared by their offset from the token embedding's.
  auto m = inference::LoadGgufModel(e.out, inference::LoadOptions{false});
  ASSERT_TRUE(m.ok()) << m.status();
  const uint8_t* base = static_cast<const uint8_t*>((*m)->tok_embd.data);
  const uint8_t* file_base = f->TensorData(*f->FindTensor("token_embd.weight"));
  std::set<const void*> viewed;
  for (const ArchTensor& t : tensors_) {
    const gguf::TensorInfo* g = f->FindTensor(t.gguf_name);
    ASSERT_NE(g, nullptr) << t.gguf_name;
    if (t.quantizable()) {
      const inference::QMatrix& q = *inference::BindMatrix(m->get(), t);
      EXPECT_EQ(q.rows, t.shape[0]) << t.gguf_name;
      EXPECT_EQ(q.cols, t.shape[1]) << t.gguf_name;
      EXPECT_EQ(static_cast<const uint8_t*>(q.data) - base, f->TensorData(*g) - file_base)
          << t.gguf_name;
      viewed.insert(f->TensorData(*g));
    } else {
      const std::vector<float>& v = *inference::BindVector(m->get(), t);
      ASSERT_EQ(static_cast<int64_t>(v.size()), t.shape[0]) << t.gguf_name;
      EXPECT_EQ(std::memcmp(v.data(), f->TensorData(*g), v.size() * sizeof(float)), 0)
          << t.gguf_name;
      viewed.insert(f->TensorData(*g));
    }
  }
  EXPECT_EQ(viewed.size(), f->tensors().size());
  const inference::Model& model = **m;
  EXPECT_EQ(static_cast<int64_t>(model.layers.size()), config_.num_hidden_layers);
  if (config_.tie_word_embeddings) {
    EXPECT_EQ(model.output.data, model.tok_embd.data);
  }
}

TEST_P(ModelArchTest, MobileExportAndLoaderAgreeWithTable) {
  exporter::MobileExportOptions e;
  e.model_dir = dir_;
  e.out = dir_ + ".qmob";
  ASSERT_TRUE(exporter::ExportMobile(e).ok());
  auto f = mobile::MobileFile::Open(e.out);
  ASSERT_TRUE(f.ok()) << f.status();
  // No recipe: no cache scales, just the table's tensors by their HF names.
  ASSERT_EQ(f->tensors().size(), tensors_.size());
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const mobile::TensorInfo& mt = f->tensors()[i];
    const ArchTensor& t = tensors_[i];
    EXPECT_EQ(mt.name, t.hf_name);
    EXPECT_EQ(mt.dims, std::vector<uint64_t>(t.shape.begin(), t.shape.end())) << t.hf_name;
  }
  auto m = inference::LoadMobileModel(e.out, inference::LoadOptions{false});
  ASSERT_TRUE(m.ok()) << m.status();
  const uint8_t* base = static_cast<const uint8_t*>((*m)->tok_embd.data);
  const uint8_t* file_base = f->Codes(*f->FindTensor("model.embed_tokens.weight"));
  std::set<std::string> loaded;
  for (const ArchTensor& t : tensors_) {
    const mobile::TensorInfo* mt = f->FindTensor(t.hf_name);
    ASSERT_NE(mt, nullptr) << t.hf_name;
    if (t.quantizable()) {
      const inference::QMatrix& q = *inference::BindMatrix(m->get(), t);
      EXPECT_EQ(q.rows, t.shape[0]) << t.hf_name;
      EXPECT_EQ(q.cols, t.shape[1]) << t.hf_name;
      EXPECT_EQ(static_cast<const uint8_t*>(q.data) - base, f->Codes(*mt) - file_base)
          << t.hf_name;
    } else {
      const std::vector<float>& v = *inference::BindVector(m->get(), t);
      ASSERT_EQ(static_cast<int64_t>(v.size()), t.shape[0]) << t.hf_name;
      std::vector<float> want(v.size());
      for (size_t i = 0; i < want.size(); ++i) f->DequantizeRow(*mt, i, &want[i]);
      if (t.add_one) {
        for (float& x : want) x += 1.0f;
      }
      EXPECT_EQ(v, want) << t.hf_name;
    }
    loaded.insert(t.hf_name);
  }
  EXPECT_EQ(loaded.size(), f->tensors().size());
}

INSTANTIATE_TEST_SUITE_P(Archs, ModelArchTest,
                         ::testing::Values(Case{"llama", false}, Case{"llama", true},
                                           Case{"qwen2", true}, Case{"qwen3", false},
                                           Case{"gemma3_text", false}, Case{"gemma3_text", true}),
                         [](const auto& info) {
                           return std::string(info.param.model_type == std::string("gemma3_text")
                                                  ? "gemma3"
                                                  : info.param.model_type) +
                                  (info.param.tied ? "_tied" : "_untied");
                         });

// Llama 3 rope scaling: the GGUF's extra rope_freqs.weight (first, F32
// [D/2]) holds the config's frequency factors, and both runtime loaders give
// the model those factors (the mobile file from its config.json).
TEST(RopeScalingTest, FrequencyFactorsReachBothRuntimes) {
  char tmpl[] = "/tmp/qatk_rope_scaling_XXXXXX";
  const std::string root = mkdtemp(tmpl);
  TinyModelOptions o;
  o.hf_config_path = std::string(QATK_SOURCE_DIR) + "/tests/testdata/hf_configs/llama-3.2-1b-instruct.json";
  o.rope_original_context = 64;
  const std::string dir = root + "/llama3";
  ASSERT_TRUE(testing::WriteTinyCheckpoint(dir, o).ok());
  auto ck = exporter::OpenCheckpoint(dir);
  ASSERT_TRUE(ck.ok()) << ck.status();
  ASSERT_TRUE(ck->config.rope_scaling.has_value());
  const std::vector<float> factors = ck->config.RopeFreqFactors();
  ASSERT_EQ(static_cast<int64_t>(factors.size()), o.head_dim / 2);
  // Scaling changes the angles: some factor is not 1.
  EXPECT_NE(*std::max_element(factors.begin(), factors.end()), 1.0f);

  exporter::GgufExportOptions e;
  e.model_dir = dir;
  e.out = dir + ".gguf";
  e.outtype = "q4_0";
  ASSERT_TRUE(exporter::ExportGguf(e).ok());
  auto f = gguf::GgufFile::Open(e.out);
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ(f->tensors().size(), ArchTensors(ck->config).size() + 1);
  const gguf::TensorInfo& rf = f->tensors()[0];
  EXPECT_EQ(rf.name, "rope_freqs.weight");
  EXPECT_EQ(rf.type, GgmlType::kF32);
  EXPECT_EQ(rf.ne, std::vector<int64_t>{o.head_dim / 2});
  std::vector<float> stored(factors.size());
  std::memcpy(stored.data(), f->TensorData(rf), stored.size() * sizeof(float));
  EXPECT_EQ(stored, factors);
  auto g = inference::LoadGgufModel(e.out);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ((*g)->rope_freqs, factors);

  exporter::MobileExportOptions me;
  me.model_dir = dir;
  me.out = dir + ".qmob";
  ASSERT_TRUE(exporter::ExportMobile(me).ok());
  auto m = inference::LoadMobileModel(me.out);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((*m)->rope_freqs, factors);
  std::system(("rm -rf " + root).c_str());
}

// The hub families through both runtime paths: a GGUF (llama.cpp's layouts:
// llama q/k permuted for NORM rope, rope_freqs.weight) and a mobile file (HF
// layouts, NEOX rope, factors from config.json) of one F16 checkpoint give
// the same logits.
TEST(HubFamiliesTest, GgufAndMobileRuntimesAgree) {
  char tmpl[] = "/tmp/qatk_families_XXXXXX";
  const std::string root = mkdtemp(tmpl);
  const std::string hf = std::string(QATK_SOURCE_DIR) + "/tests/testdata/hf_configs/";
  struct Family {
    const char* config;
    int64_t head_dim;
  };
  for (const Family& fam : {Family{"llama-3.2-1b-instruct.json", 16}, Family{"smollm2-135m.json", 16},
                            Family{"qwen2.5-0.5b.json", 16}, Family{"qwen3-0.6b.json", 32},
                            Family{"gemma-3-1b-it.json", 16}}) {
    SCOPED_TRACE(fam.config);
    TinyModelOptions o;
    o.hf_config_path = hf + fam.config;
    o.head_dim = fam.head_dim;
    o.weight_std = 1.0;
    o.embed_std = 0.5;
    o.vocab_pad = 8;
    const std::string dir = root + "/" + fam.config;
    ASSERT_TRUE(testing::WriteTinyCheckpoint(dir, o).ok());
    exporter::GgufExportOptions e;
    e.model_dir = dir;
    e.out = dir + ".gguf";
    e.outtype = "f16";  // what the mobile export stores unquantized weights as
    ASSERT_TRUE(exporter::ExportGguf(e).ok());
    exporter::MobileExportOptions me;
    me.model_dir = dir;
    me.out = dir + ".qmob";
    ASSERT_TRUE(exporter::ExportMobile(me).ok());
    auto g = inference::LoadGgufModel(e.out);
    auto m = inference::LoadMobileModel(me.out);
    ASSERT_TRUE(g.ok()) << g.status();
    ASSERT_TRUE(m.ok()) << m.status();
    const std::vector<int32_t> toks = {1, 17, 90, 3, 55, 42, 7, 81, 5, 60, 200, 31};
    inference::ThreadPool pool(2);
    std::vector<std::vector<float>> logits;
    for (const inference::Model* model : {g->get(), m->get()}) {
      auto s = inference::Session::Create(*model, 32, inference::KvType::kF32, pool);
      ASSERT_TRUE(s.ok()) << s.status();
      ASSERT_TRUE((*s)->Eval(toks.data(), static_cast<int>(toks.size()), true).ok());
      const int64_t n = static_cast<int64_t>(toks.size()) * model->config.n_vocab;
      logits.emplace_back((*s)->logits(), (*s)->logits() + n);
    }
    ASSERT_EQ(logits[0].size(), logits[1].size());
    double max_abs = 0, max_err = 0;
    for (size_t i = 0; i < logits[0].size(); ++i) {
      max_abs = std::max(max_abs, double(std::fabs(logits[0][i])));
      max_err = std::max(max_err, double(std::fabs(logits[0][i] - logits[1][i])));
    }
    EXPECT_GT(max_abs, 0.5);
    EXPECT_LE(max_err, 1e-4 * max_abs);
  }
  std::system(("rm -rf " + root).c_str());
}

}  // namespace
}  // namespace qatk
