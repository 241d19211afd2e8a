// qat export --format hf and Hugging Face folders as export input: sharded
// BF16 folders built from the hub's configs (llama tied, qwen2 biases, qwen3
// q/k norms) survive import -> export -> import bit for bit, a QAT
// checkpoint keeps its quantization in qatkit_quantization.json, bad folders
// write nothing, GGUF export reads sharded BF16, and random folders have the
// config's exact shapes.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "export/checkpoint.h"
#include "export/gguf_export.h"
#include "export/mobile_export.h"
#include "export/safetensors_export.h"
#include "export/tensor_plan.h"
#include "formats/gguf/gguf.h"
#include "formats/mobile/mobile_format.h"
#include "formats/model_arch.h"
#include "formats/quant/codecs.h"
#include "formats/safetensors/hf_weights.h"
#include "formats/util/file_io.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/export/spm_train_util.h"
#include "tests/export/tiny_checkpoint.h"
#include "tests/formats/hf_fixture.h"

namespace qatk::exporter {
namespace {

using Json = nlohmann::ordered_json;
using safetensors::DType;
using safetensors::HfWeights;
using safetensors::TensorView;

class HfExportTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/qatk_hf_export_XXXXXX";
    root_ = mkdtemp(tmpl);
    ASSERT_TRUE(WriteFileAtomic(root_ + "/text.txt", testing::SyntheticText(2000, 1)).ok());
    ASSERT_EQ(testing::TrainSpmBpe(root_ + "/text.txt", root_ + "/spm", 320), "");
  }
  static void TearDownTestSuite() { (void)RemoveAll(root_); }

  // A sharded BF16 folder with tokenizer and generation files.
  static std::string Folder(const std::string& file, int shards, Json* config_out = nullptr,
                            testing::HfFixture* f_out = nullptr) {
    auto config = testing::TinyHfConfig(file);
    EXPECT_TRUE(config.ok()) << config.status();
    auto f = testing::MakeHfFixture(*config, 11);
    EXPECT_TRUE(f.ok()) << f.status();
    const std::string dir = root_ + "/" + file + "-" + std::to_string(shards);
    (void)RemoveAll(dir);
    EXPECT_TRUE(testing::WriteHfFolder(dir, *config, *f, shards, DType::kBF16).ok());
    auto tok = ReadFileToString(root_ + "/spm.model");
    EXPECT_TRUE(tok.ok());
    EXPECT_TRUE(WriteFileAtomic(dir + "/tokenizer.model", *tok).ok());
    EXPECT_TRUE(WriteFileAtomic(dir + "/tokenizer_config.json", "{\"add_bos_token\": true}\n").ok());
    EXPECT_TRUE(WriteFileAtomic(dir + "/generation_config.json", "{\"do_sample\": true}\n").ok());
    if (config_out) *config_out = *config;
    if (f_out) *f_out = *f;
    return dir;
  }

  static Json ReadJson(const std::string& path) {
    auto text = ReadFileToString(path);
    EXPECT_TRUE(text.ok()) << text.status();
    return text.ok() ? Json::parse(*text) : Json();
  }

  static absl::Status Export(const std::string& in, const std::string& out, const std::string& dtype,
                             uint64_t max_shard = 5000000000) {
    SafetensorsExportOptions o;
    o.model_dir = in;
    o.out = out;
    o.dtype = dtype;
    o.max_shard_bytes = max_shard;
    return ExportHf(o);
  }

  // Every tensor of `a` in `b` with the same dtype, shape and bytes.
  static void ExpectSameTensors(const std::string& a_dir, const std::string& b_dir) {
    auto a = HfWeights::Open(a_dir);
    auto b = HfWeights::Open(b_dir);
    ASSERT_TRUE(a.ok() && b.ok()) << a.status() << b.status();
    ASSERT_EQ(a->tensors().size(), b->tensors().size());
    for (const TensorView& t : a->tensors()) {
      SCOPED_TRACE(t.name);
      const TensorView* u = b->Find(t.name);
      ASSERT_NE(u, nullptr);
      EXPECT_EQ(t.dtype, u->dtype);
      EXPECT_EQ(t.shape, u->shape);
      ASSERT_EQ(t.nbytes, u->nbytes);
      EXPECT_EQ(std::memcmp(t.data, u->data, t.nbytes), 0);
    }
  }

  static bool NoDebris(const std::string& out) {
    const std::string parent = out.substr(0, out.rfind('/'));
    const std::string base = out.substr(out.rfind('/') + 1);
    for (const char* suffix : {".tmp-", ".old-"}) {
      const std::string p = parent + "/" + base + suffix + std::to_string(getpid());
      if (PathExists(p)) return false;
    }
    return !PathExists(out);
  }

  static std::string root_;
};
std::string HfExportTest::root_;

TEST_F(HfExportTest, Bf16RoundTripIsBitIdentical) {
  for (const char* file : {"llama-3.2-1b-instruct.json", "qwen2.5-0.5b.json", "qwen3-0.6b.json"}) {
    SCOPED_TRACE(file);
    Json config;
    const std::string in = Folder(file, 3, &config);
    const std::string out = root_ + "/out-bf16-" + file;
    // A limit that splits the output.
    auto w = HfWeights::Open(in);
    ASSERT_TRUE(w.ok());
    uint64_t total = 0;
    for (const TensorView& t : w->tensors()) total += t.nbytes;
    const absl::Status s = Export(in, out, "bf16", total / 2 + 1);
    ASSERT_TRUE(s.ok()) << s;
    ExpectSameTensors(in, out);
    auto ow = HfWeights::Open(out);
    ASSERT_TRUE(ow.ok());
    const int n = ow->num_shards();
    EXPECT_GE(n, 2);
    for (int k = 1; k <= n; ++k) {
      EXPECT_TRUE(PathExists(out + "/" + safetensors::HfShardName(k, n))) << k;
    }
    EXPECT_TRUE(PathExists(out + "/model.safetensors.index.json"));
    EXPECT_EQ(ReadJson(out + "/config.json"), config);  // every key, torch_dtype bfloat16 as before
    for (const char* side : {"tokenizer.model", "tokenizer_config.json", "generation_config.json"}) {
      EXPECT_EQ(*ReadFileToString(in + "/" + side), *ReadFileToString(out + "/" + side)) << side;
    }
    EXPECT_FALSE(PathExists(out + "/qatkit_quantization.json"));
    // And once more from the export.
    const std::string again = out + "-again";
    ASSERT_TRUE(Export(out, again, "bf16").ok());
    ExpectSameTensors(in, again);
    EXPECT_TRUE(PathExists(again + "/model.safetensors"));  // fits in one shard
    EXPECT_FALSE(PathExists(again + "/model.safetensors.index.json"));
    EXPECT_EQ(ReadJson(again + "/config.json"), config);
  }
}

TEST_F(HfExportTest, F32RoundTrip) {
  Json config;
  testing::HfFixture f;
  const std::string in = Folder("qwen2.5-0.5b.json", 2, &config, &f);
  const std::string out = root_ + "/out-f32";
  ASSERT_TRUE(Export(in, out, "f32").ok());
  auto w = HfWeights::Open(out);
  ASSERT_TRUE(w.ok());
  for (const auto& [name, values] : f.values) {
    SCOPED_TRACE(name);
    ASSERT_NE(w->Find(name), nullptr);
    EXPECT_EQ(w->Find(name)->dtype, DType::kF32);
    EXPECT_EQ(*w->ReadFloat(name), values);
  }
  Json want = config;
  want["torch_dtype"] = "float32";
  EXPECT_EQ(ReadJson(out + "/config.json"), want);
  ASSERT_TRUE(Export(out, out + "-again", "f32", 20000).ok());
  ExpectSameTensors(out, out + "-again");
  // Back to BF16: the original bytes.
  ASSERT_TRUE(Export(out, out + "-bf16", "bf16").ok());
  ExpectSameTensors(in, out + "-bf16");
}

TEST_F(HfExportTest, FolderWithoutTokenizerModel) {
  auto config = testing::TinyHfConfig("qwen3-0.6b.json");
  ASSERT_TRUE(config.ok());
  auto f = testing::MakeHfFixture(*config, 4);
  ASSERT_TRUE(f.ok());
  const std::string in = root_ + "/no-tok";
  ASSERT_TRUE(testing::WriteHfFolder(in, *config, *f, 2, DType::kBF16).ok());
  ASSERT_TRUE(WriteFileAtomic(in + "/tokenizer.json", "{\"model\": {}}").ok());
  ASSERT_TRUE(Export(in, root_ + "/no-tok-hf", "bf16").ok());
  ExpectSameTensors(in, root_ + "/no-tok-hf");
  EXPECT_EQ(*ReadFileToString(root_ + "/no-tok-hf/tokenizer.json"), "{\"model\": {}}");
  EXPECT_FALSE(PathExists(root_ + "/no-tok-hf/tokenizer.model"));
  SafetensorsExportOptions o;
  o.model_dir = in;
  o.out = root_ + "/no-tok-st";
  const absl::Status s = ExportSafetensors(o);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_TRUE(PathExists(o.out + "/model.safetensors"));
  EXPECT_FALSE(PathExists(o.out + "/tokenizer.model"));
}

TEST_F(HfExportTest, BadFoldersWriteNothing) {
  struct Case {
    const char* what;
    std::function<void(const std::string&)> damage;
    absl::StatusCode code;
    std::vector<const char*> needles;
  };
  const Case cases[] = {
      {"missing shard",
       [](const std::string& d) { std::remove((d + "/model-00002-of-00003.safetensors").c_str()); },
       absl::StatusCode::kNotFound, {"model-00002-of-00003.safetensors", "model."}},
      {"index names a tensor the shard lacks",
       [](const std::string& d) {
         Json j = ReadJson(d + "/model.safetensors.index.json");
         j["weight_map"]["model.layers.9.mlp.up_proj.weight"] = "model-00003-of-00003.safetensors";
         ASSERT_TRUE(WriteFileAtomic(d + "/model.safetensors.index.json", j.dump()).ok());
       },
       absl::StatusCode::kDataLoss, {"model-00003-of-00003.safetensors", "model.layers.9.mlp.up_proj.weight"}},
      {"shape contradicts config.json",
       [](const std::string& d) {
         Json j = ReadJson(d + "/config.json");
         j["intermediate_size"] = 96;
         ASSERT_TRUE(WriteFileAtomic(d + "/config.json", j.dump()).ok());
       },
       absl::StatusCode::kInvalidArgument, {".safetensors", "model.layers.0.mlp.gate_proj.weight", "[96, 64]"}},
      {"malformed index",
       [](const std::string& d) { ASSERT_TRUE(WriteFileAtomic(d + "/model.safetensors.index.json", "{").ok()); },
       absl::StatusCode::kInvalidArgument, {"model.safetensors.index.json"}},
      {"unsupported architecture",
       [](const std::string& d) {
         Json j = ReadJson(d + "/config.json");
         j["model_type"] = "mistral";
         ASSERT_TRUE(WriteFileAtomic(d + "/config.json", j.dump()).ok());
       },
       absl::StatusCode::kInvalidArgument, {"config.json", "model_type"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const std::string in = Folder("llama-3.2-1b-instruct.json", 3);
    c.damage(in);
    for (const char* format : {"hf", "gguf"}) {
      SCOPED_TRACE(format);
      const std::string out = root_ + "/bad-out";
      absl::Status s;
      if (std::string(format) == "hf") {
        s = Export(in, out, "bf16");
      } else {
        GgufExportOptions g;
        g.model_dir = in;
        g.out = out;
        g.outtype = "f32";
        s = ExportGguf(g);
      }
      EXPECT_EQ(s.code(), c.code) << s;
      for (const char* n : c.needles) EXPECT_NE(s.message().find(n), std::string::npos) << n << ": " << s;
      EXPECT_TRUE(NoDebris(out));
    }
  }
}

TEST_F(HfExportTest, ReplacesOnlyAnHfFolder) {
  const std::string in = Folder("qwen3-0.6b.json", 3);
  const std::string out = root_ + "/replace";
  ASSERT_TRUE(Export(in, out, "bf16", 30000).ok());
  auto w = HfWeights::Open(out);
  ASSERT_TRUE(w.ok());
  ASSERT_GT(w->num_shards(), 1);
  // One shard now: the old shards and index are gone.
  ASSERT_TRUE(Export(in, out, "bf16").ok());
  EXPECT_TRUE(PathExists(out + "/model.safetensors"));
  EXPECT_FALSE(PathExists(out + "/model.safetensors.index.json"));
  EXPECT_FALSE(PathExists(out + "/model-00001-of-00002.safetensors"));
  // A folder with other files is left alone.
  ASSERT_TRUE(WriteFileAtomic(out + "/notes.txt", "mine").ok());
  const absl::Status s = Export(in, out, "f32");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("notes.txt"), std::string::npos) << s;
  EXPECT_TRUE(PathExists(out + "/notes.txt"));
  EXPECT_EQ(HfWeights::Open(out)->tensors()[0].dtype, DType::kBF16);
}

TEST_F(HfExportTest, QatCheckpointKeepsItsQuantization) {
  testing::TinyModelOptions o;
  o.recipe_json = testing::RecipeQ4_0Learned();
  const std::string ck = root_ + "/qat";
  ASSERT_TRUE(testing::WriteTinyCheckpoint(ck, o).ok());
  ASSERT_TRUE(testing::AddQuantState(ck, 3).ok());
  const std::string out = root_ + "/qat-hf";
  ASSERT_TRUE(Export(ck, out, "f32", 40000).ok());
  // The same fake-quantized tensors as the plain safetensors export.
  SafetensorsExportOptions so;
  so.model_dir = ck;
  so.out = root_ + "/qat-plain.safetensors";
  ASSERT_TRUE(ExportSafetensors(so).ok());
  auto plain = HfWeights::OpenFile(so.out);
  auto hf = HfWeights::Open(out);
  ASSERT_TRUE(plain.ok() && hf.ok());
  EXPECT_GT(hf->num_shards(), 1);
  ASSERT_EQ(plain->tensors().size(), hf->tensors().size());
  for (const TensorView& t : plain->tensors()) {
    SCOPED_TRACE(t.name);
    EXPECT_EQ(*plain->ReadFloat(t.name), *hf->ReadFloat(t.name));
  }
  // Recipe and every quantizer-state tensor, values exact.
  const Json q = ReadJson(out + "/qatkit_quantization.json");
  EXPECT_EQ(q["format"], "qatkit-quantization");
  EXPECT_EQ(q["recipe"], Json::parse(*ReadFileToString(ck + "/recipe.json")));
  auto src = HfWeights::Open(ck);
  ASSERT_TRUE(src.ok());
  int n = 0;
  for (const TensorView& t : src->tensors()) {
    if (!IsQuantizerState(t.name)) continue;
    SCOPED_TRACE(t.name);
    ++n;
    ASSERT_TRUE(q["tensors"].contains(t.name));
    EXPECT_EQ(q["tensors"][t.name]["shape"].get<std::vector<int64_t>>(), t.shape);
    EXPECT_EQ(q["tensors"][t.name]["values"].get<std::vector<float>>(), *src->ReadFloat(t.name));
  }
  EXPECT_GT(n, 0);
  EXPECT_EQ(static_cast<int>(q["tensors"].size()), n);
  EXPECT_FALSE(PathExists(out + "/recipe.json"));  // the folder loads as full precision
}

TEST_F(HfExportTest, GgufFromShardedBf16Folder) {
  testing::HfFixture f;
  const std::string in = Folder("llama-3.2-1b-instruct.json", 3, nullptr, &f);
  GgufExportOptions g;
  g.model_dir = in;
  g.out = root_ + "/sharded.gguf";
  g.outtype = "f32";
  const absl::Status s = ExportGguf(g);
  ASSERT_TRUE(s.ok()) << s;
  auto file = gguf::GgufFile::Open(g.out);
  ASSERT_TRUE(file.ok()) << file.status();
  int n = 0;
  for (const GgufTensorSpec& t : GgufTensorList(f.config)) {
    SCOPED_TRACE(t.hf_name);
    const gguf::TensorInfo* ti = file->FindTensor(t.gguf_name);
    ASSERT_NE(ti, nullptr);
    ASSERT_EQ(ti->type, GgmlType::kF32);
    std::vector<float> want = f.values.at(t.hf_name);
    if (t.permute_heads > 0) {
      std::vector<float> p(want.size());
      PermuteRowsForNormRope(want.data(), p.data(), t.permute_heads, f.config.head_dim, t.shape.back());
      want.swap(p);
    }
    if (t.add_one) {
      for (float& v : want) v += 1.0f;
    }
    std::vector<float> got(want.size());
    ASSERT_EQ(ti->nbytes, got.size() * 4);
    std::memcpy(got.data(), file->TensorData(*ti), ti->nbytes);
    EXPECT_EQ(got, want);
    ++n;
  }
  // Besides the folder's tensors only what the GGUF derives from config.json
  // (Llama 3 rope scaling's frequency factors).
  const int derived = file->FindTensor("rope_freqs.weight") != nullptr ? 1 : 0;
  EXPECT_EQ(n + derived, static_cast<int>(file->tensors().size()));
}

TEST_F(HfExportTest, MobileFromShardedBf16Folder) {
  testing::HfFixture f;
  const std::string in = Folder("llama-3.2-1b-instruct.json", 2, nullptr, &f);
  MobileExportOptions m;
  m.model_dir = in;
  m.out = root_ + "/sharded.qmob";
  const absl::Status s = ExportMobile(m);
  ASSERT_TRUE(s.ok()) << s;
  auto file = mobile::MobileFile::Open(m.out);
  ASSERT_TRUE(file.ok()) << file.status();
  // Without a recipe every tensor is stored at full precision: the folder's values.
  for (const auto& [name, values] : f.values) {
    SCOPED_TRACE(name);
    const mobile::TensorInfo* t = file->FindTensor(name);
    ASSERT_NE(t, nullptr);
    const int64_t cols = static_cast<int64_t>(t->row_len());
    std::vector<float> got(values.size());
    for (int64_t r = 0; r < static_cast<int64_t>(values.size()) / cols; ++r) {
      file->DequantizeRow(*t, r, got.data() + r * cols);
    }
    EXPECT_EQ(got, values);
  }
}

TEST_F(HfExportTest, RandomFolderHasTheConfigsShapes) {
  Json config = *testing::TinyHfConfig("qwen3-0.6b.json");
  config["initializer_range"] = 0.05;
  const std::string cfg = root_ + "/rand-config.json";
  ASSERT_TRUE(WriteFileAtomic(cfg, config.dump(2)).ok());
  RandomHfOptions r;
  r.config_path = cfg;
  r.out = root_ + "/rand";
  r.dtype = "bf16";
  r.max_shard_bytes = 40000;
  r.seed = 5;
  r.tokenizer = root_ + "/spm.model";
  ASSERT_TRUE(WriteRandomHf(r).ok());
  auto w = HfWeights::Open(r.out);
  ASSERT_TRUE(w.ok()) << w.status();
  auto c = ModelConfig::FromJson(config, cfg);
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(w->CheckConfig(*c).ok()) << w->CheckConfig(*c);
  EXPECT_EQ(w->tensors().size(), ArchTensors(*c).size());
  EXPECT_GT(w->num_shards(), 2);
  EXPECT_TRUE(PathExists(r.out + "/tokenizer.model"));
  Json want = config;
  want["torch_dtype"] = "bfloat16";
  EXPECT_EQ(ReadJson(r.out + "/config.json"), want);
  for (const TensorView& t : w->tensors()) EXPECT_EQ(t.dtype, DType::kBF16) << t.name;
  EXPECT_EQ(*w->ReadFloat("model.norm.weight"), std::vector<float>(64, 1.0f));
  // Standard deviation of the largest matrix near initializer_range.
  const std::vector<float> e = *w->ReadFloat("model.embed_tokens.weight");
  double sum = 0, sq = 0;
  for (float v : e) sum += v, sq += static_cast<double>(v) * v;
  const double mean = sum / e.size(), sd = std::sqrt(sq / e.size() - mean * mean);
  EXPECT_NEAR(sd, 0.05, 0.005);
  EXPECT_NEAR(mean, 0.0, 0.005);
  // Deterministic in the seed; another seed differs.
  r.out = root_ + "/rand2";
  ASSERT_TRUE(WriteRandomHf(r).ok());
  ExpectSameTensors(root_ + "/rand", r.out);
  r.out = root_ + "/rand3";
  r.seed = 6;
  ASSERT_TRUE(WriteRandomHf(r).ok());
  auto w3 = HfWeights::Open(r.out);
  ASSERT_TRUE(w3.ok());
  EXPECT_NE(*w3->ReadFloat("model.embed_tokens.weight"), e);
}

}  // namespace
}  // namespace qatk::exporter
