// Hugging Face weight folders: sharded BF16 folders read back equal to one
// F32 file, transformers' layout on writing, and every inconsistency between
// index, shards and config.json an error naming the file and the tensor.
#include "formats/safetensors/hf_weights.h"

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "formats/model_arch.h"
#include "formats/util/file_io.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/formats/hf_fixture.h"
#include "tests/formats/test_util.h"

namespace qatk::safetensors {
namespace {

using qatk::testing::ExpectError;
using Json = nlohmann::ordered_json;

class HfWeightsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/qatk_hfw_XXXXXX";
    root_ = mkdtemp(tmpl);
  }
  void TearDown() override { (void)RemoveAll(root_); }

  // A tiny folder of `file`'s architecture in `shards` BF16 shards.
  std::string Folder(const std::string& file, int shards, Json* config_out = nullptr,
                     testing::HfFixture* fixture_out = nullptr) {
    auto config = testing::TinyHfConfig(file);
    EXPECT_TRUE(config.ok()) << config.status();
    auto f = testing::MakeHfFixture(*config, 7);
    EXPECT_TRUE(f.ok()) << f.status();
    const std::string dir = root_ + "/" + file + "-" + std::to_string(shards);
    const absl::Status s = testing::WriteHfFolder(dir, *config, *f, shards, DType::kBF16);
    EXPECT_TRUE(s.ok()) << s;
    if (config_out) *config_out = *config;
    if (fixture_out) *fixture_out = *f;
    return dir;
  }

  static Json ReadJson(const std::string& path) {
    auto text = ReadFileToString(path);
    EXPECT_TRUE(text.ok()) << text.status();
    return Json::parse(*text);
  }
  static void WriteJson(const std::string& path, const Json& j) {
    ASSERT_TRUE(WriteFileAtomic(path, j.dump(2)).ok());
  }
  // Rewrites shard `path` with `edit` applied to its tensor list.
  static void RewriteShard(const std::string& path,
                           const std::function<void(SafetensorsWriter*)>& extra,
                           const std::string& drop = "") {
    auto f = SafetensorsFile::Open(path);
    ASSERT_TRUE(f.ok()) << f.status();
    SafetensorsWriter w;
    for (const TensorView& t : f->tensors()) {
      if (t.name == drop) continue;
      ASSERT_TRUE(w.Add(t.name, t.dtype, t.shape, t.data, t.nbytes).ok());
    }
    extra(&w);
    ASSERT_TRUE(w.Write(path + ".new").ok());
    ASSERT_EQ(std::rename((path + ".new").c_str(), path.c_str()), 0);
  }

  std::string root_;
};

TEST_F(HfWeightsTest, ShardedBf16EqualsOneF32File) {
  for (const char* file : {"llama-3.2-1b-instruct.json", "qwen2.5-0.5b.json", "qwen3-0.6b.json"}) {
    SCOPED_TRACE(file);
    Json config;
    testing::HfFixture f;
    const std::string dir = Folder(file, 3, &config, &f);
    const std::string single = root_ + "/single-" + file;
    ASSERT_TRUE(testing::WriteHfFolder(single, config, f, 1, DType::kF32).ok());
    auto sharded = HfWeights::Open(dir);
    ASSERT_TRUE(sharded.ok()) << sharded.status();
    auto one = HfWeights::Open(single);
    ASSERT_TRUE(one.ok()) << one.status();
    EXPECT_TRUE(sharded->sharded());
    EXPECT_EQ(sharded->num_shards(), 3);
    EXPECT_EQ(sharded->path(), dir + "/model.safetensors.index.json");
    EXPECT_FALSE(one->sharded());
    EXPECT_EQ(one->path(), single + "/model.safetensors");
    ASSERT_TRUE(sharded->CheckConfig(f.config).ok()) << sharded->CheckConfig(f.config);
    ASSERT_TRUE(one->CheckConfig(f.config).ok());
    ASSERT_EQ(sharded->tensors().size(), one->tensors().size());
    ASSERT_EQ(sharded->tensors().size(), f.values.size());
    // The families' own tensors are there.
    if (f.config.has_qkv_bias()) EXPECT_NE(sharded->Find("model.layers.1.self_attn.k_proj.bias"), nullptr);
    if (f.config.has_qk_norm()) EXPECT_NE(sharded->Find("model.layers.1.self_attn.q_norm.weight"), nullptr);
    EXPECT_EQ(sharded->Find("lm_head.weight"), nullptr);  // all three are tied
    int last_shard = 0;
    for (const TensorView& t : sharded->tensors()) {
      SCOPED_TRACE(t.name);
      EXPECT_EQ(t.dtype, DType::kBF16);
      // Stable order: shard by shard.
      const std::string& p = sharded->PathOf(t.name);
      const int k = std::stoi(p.substr(p.size() - 26, 5));
      EXPECT_GE(k, last_shard);
      last_shard = k;
      auto a = sharded->ReadFloat(t.name);
      auto b = one->ReadFloat(t.name);
      ASSERT_TRUE(a.ok() && b.ok());
      EXPECT_EQ(*a, *b);
      EXPECT_EQ(*a, f.values.at(t.name));
      std::vector<float> into(a->size());
      ASSERT_TRUE(sharded->ReadInto(t.name, absl::MakeSpan(into)).ok());
      EXPECT_EQ(into, *a);
    }
    EXPECT_EQ(last_shard, 3);
  }
}

TEST_F(HfWeightsTest, WritesTransformersLayout) {
  const std::string dir = Folder("qwen3-0.6b.json", 2);
  const Json index = ReadJson(dir + "/model.safetensors.index.json");
  ASSERT_TRUE(index["metadata"]["total_size"].is_number_unsigned());
  uint64_t total = 0;
  std::string prev;
  for (const auto& [name, shard] : index["weight_map"].items()) {
    EXPECT_LT(prev, name) << "weight_map keys sorted";
    prev = name;
    const std::string s = shard.get<std::string>();
    EXPECT_TRUE(s == "model-00001-of-00002.safetensors" || s == "model-00002-of-00002.safetensors") << s;
    auto f = SafetensorsFile::Open(dir + "/" + s);
    ASSERT_TRUE(f.ok());
    EXPECT_EQ(f->metadata().at("format"), "pt");
    ASSERT_NE(f->Find(name), nullptr);
    total += f->Find(name)->nbytes;
  }
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), total);
  EXPECT_FALSE(PathExists(dir + "/model.safetensors"));
  EXPECT_EQ(HfShardName(3, 12), "model-00003-of-00012.safetensors");
}

TEST_F(HfWeightsTest, ShardPlanning) {
  std::vector<HfTensorSpec> t = {{"a", DType::kF32, {10}}, {"b", DType::kF32, {10}},
                                 {"big", DType::kF32, {100}}, {"c", DType::kF32, {5}}};
  EXPECT_EQ(PlanHfShards(t, 80), (std::vector<int>{0, 0, 1, 2}));   // big alone
  EXPECT_EQ(PlanHfShards(t, 1000), (std::vector<int>{0, 0, 0, 0}));
  EXPECT_EQ(PlanHfShards(t, 40), (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(*ParseShardSize("2GB", "--max-shard-size"), 2000000000u);
  EXPECT_EQ(*ParseShardSize("1.5GB", "--max-shard-size"), 1500000000u);
  EXPECT_EQ(*ParseShardSize("500MB", "--max-shard-size"), 500000000u);
  EXPECT_EQ(*ParseShardSize("3GiB", "--max-shard-size"), 3ull << 30);
  EXPECT_EQ(*ParseShardSize("10kb", "--max-shard-size"), 10000u);
  EXPECT_EQ(*ParseShardSize("4096", "--max-shard-size"), 4096u);
  for (const char* bad : {"", "GB", "x", "0", "-1GB", "2XB", "1e30GB", "0.1"}) {
    ExpectError(ParseShardSize(bad, "--max-shard-size").status(), absl::StatusCode::kInvalidArgument,
                {"--max-shard-size"});
  }
}

TEST_F(HfWeightsTest, MissingShardNamesTheShardAndATensor) {
  const std::string dir = Folder("llama-3.2-1b-instruct.json", 3);
  ASSERT_EQ(std::remove((dir + "/model-00002-of-00003.safetensors").c_str()), 0);
  ExpectError(HfWeights::Open(dir).status(), absl::StatusCode::kNotFound,
              {"model-00002-of-00003.safetensors", "shard is missing", "model.layers."});
}

TEST_F(HfWeightsTest, NoWeightsAtAll) {
  ASSERT_TRUE(MakeDirs(root_ + "/empty").ok());
  ExpectError(HfWeights::Open(root_ + "/empty").status(), absl::StatusCode::kNotFound,
              {"/empty", "model.safetensors.index.json"});
}

TEST_F(HfWeightsTest, IndexNamesATensorItsShardLacks) {
  const std::string dir = Folder("llama-3.2-1b-instruct.json", 3);
  Json index = ReadJson(dir + "/model.safetensors.index.json");
  index["weight_map"]["model.layers.0.mlp.extra.weight"] = "model-00001-of-00003.safetensors";
  WriteJson(dir + "/model.safetensors.index.json", index);
  ExpectError(HfWeights::Open(dir).status(), absl::StatusCode::kDataLoss,
              {"model-00001-of-00003.safetensors", "model.layers.0.mlp.extra.weight"});
}

TEST_F(HfWeightsTest, TensorInTwoShards) {
  const std::string dir = Folder("qwen2.5-0.5b.json", 3);
  const std::string s3 = dir + "/model-00003-of-00003.safetensors";
  const float one[64] = {};
  RewriteShard(s3, [&](SafetensorsWriter* w) {
    ASSERT_TRUE(w->AddF32("model.norm.weight", {64}, one).ok());
  }, "model.norm.weight");
  auto f1 = SafetensorsFile::Open(dir + "/model-00001-of-00003.safetensors");
  ASSERT_TRUE(f1.ok());
  const std::string first = f1->tensors()[0].name;
  RewriteShard(s3, [&](SafetensorsWriter* w) {
    const TensorView* t = f1->Find(first);
    ASSERT_TRUE(w->Add(t->name, t->dtype, t->shape, t->data, t->nbytes).ok());
  });
  ExpectError(HfWeights::Open(dir).status(), absl::StatusCode::kInvalidArgument,
              {"in two shards", first.c_str(), "model-00001-of-00003.safetensors",
               "model-00003-of-00003.safetensors"});
}

TEST_F(HfWeightsTest, TensorInAShardButNotTheIndex) {
  const std::string dir = Folder("qwen3-0.6b.json", 2);
  Json index = ReadJson(dir + "/model.safetensors.index.json");
  const std::string shard = index["weight_map"]["model.layers.1.self_attn.k_norm.weight"];
  index["weight_map"].erase("model.layers.1.self_attn.k_norm.weight");
  WriteJson(dir + "/model.safetensors.index.json", index);
  ExpectError(HfWeights::Open(dir).status(), absl::StatusCode::kInvalidArgument,
              {shard.c_str(), "model.layers.1.self_attn.k_norm.weight", "not in",
               "model.safetensors.index.json"});
  // Mapped to the wrong shard.
  index["weight_map"]["model.layers.1.self_attn.k_norm.weight"] =
      shard == "model-00001-of-00002.safetensors" ? "model-00002-of-00002.safetensors"
                                                   : "model-00001-of-00002.safetensors";
  WriteJson(dir + "/model.safetensors.index.json", index);
  ExpectError(HfWeights::Open(dir).status(), absl::StatusCode::kInvalidArgument,
              {shard.c_str(), "model.layers.1.self_attn.k_norm.weight", "maps it to"});
}

TEST_F(HfWeightsTest, ShapeThatContradictsConfig) {
  Json config;
  testing::HfFixture f;
  const std::string dir = Folder("qwen2.5-0.5b.json", 2, &config, &f);
  auto w = HfWeights::Open(dir);
  ASSERT_TRUE(w.ok());
  config["intermediate_size"] = 96;
  auto c = ModelConfig::FromJson(config, "config.json");
  ASSERT_TRUE(c.ok());
  ExpectError(w->CheckConfig(*c), absl::StatusCode::kInvalidArgument,
              {"model-0000", "model.layers.0.mlp.gate_proj.weight", "[128, 64]", "[96, 64]"});
  // A family's own tensor missing: qwen2's biases.
  config = *testing::TinyHfConfig("qwen2.5-0.5b.json");
  config["model_type"] = "qwen2";
  Json llama = config;
  llama["model_type"] = "llama";
  llama["architectures"] = {"LlamaForCausalLM"};
  llama.erase("use_sliding_window");
  llama.erase("sliding_window");
  llama.erase("max_window_layers");
  auto lc = ModelConfig::FromJson(llama, "config.json");
  ASSERT_TRUE(lc.ok()) << lc.status();
  auto lf = testing::MakeHfFixture(llama, 3);
  ASSERT_TRUE(lf.ok());
  ASSERT_TRUE(testing::WriteHfFolder(root_ + "/as-llama", llama, *lf, 2, DType::kBF16).ok());
  auto lw = HfWeights::Open(root_ + "/as-llama");
  ASSERT_TRUE(lw.ok());
  ExpectError(lw->CheckConfig(f.config), absl::StatusCode::kNotFound,
              {"model.safetensors.index.json", "model.layers.0.self_attn.q_proj.bias"});
}

TEST_F(HfWeightsTest, UnsupportedDtypes) {
  const std::string dir = Folder("llama-3.2-1b-instruct.json", 2);
  const std::string s2 = dir + "/model-00002-of-00002.safetensors";
  const int8_t bytes[64] = {};
  RewriteShard(s2, [&](SafetensorsWriter* w) {
    ASSERT_TRUE(w->Add("model.norm.weight", DType::kI8, {64}, bytes, 64).ok());
  }, "model.norm.weight");
  auto w = HfWeights::Open(dir);
  ASSERT_TRUE(w.ok()) << w.status();
  auto c = ModelConfig::FromJson(*testing::TinyHfConfig("llama-3.2-1b-instruct.json"), "config.json");
  ASSERT_TRUE(c.ok());
  ExpectError(w->CheckConfig(*c), absl::StatusCode::kInvalidArgument,
              {"model-00002-of-00002.safetensors", "model.norm.weight", "I8"});
  ExpectError(w->ReadFloat("model.norm.weight").status(), absl::StatusCode::kInvalidArgument,
              {"model-00002-of-00002.safetensors", "model.norm.weight", "I8"});
  // A dtype safetensors knows but qatkit does not (FP8).
  std::string text = *ReadFileToString(s2);
  const size_t at = text.find("\"I8\"");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 4, "\"U1\"");  // same length keeps the header size
  ASSERT_TRUE(WriteFileAtomic(s2, text).ok());
  ExpectError(HfWeights::Open(dir).status(), absl::StatusCode::kUnimplemented,
              {"model-00002-of-00002.safetensors", "model.norm.weight", "U1"});
  // An unknown architecture is config.json's error, naming the key.
  Json mistral = *testing::TinyHfConfig("llama-3.2-1b-instruct.json");
  mistral["model_type"] = "mistral";
  ExpectError(ModelConfig::FromJson(mistral, "config.json").status(), absl::StatusCode::kInvalidArgument,
              {"model_type", "mistral"});
}

TEST_F(HfWeightsTest, OutputHeadAgainstTieWordEmbeddings) {
  Json config;
  testing::HfFixture f;
  Folder("llama-3.2-1b-instruct.json", 1, &config, &f);
  // Tied, with an lm_head equal to the embedding: accepted.
  std::map<std::string, std::vector<float>> extra = {
      {"lm_head.weight", f.values.at("model.embed_tokens.weight")}};
  const std::string same = root_ + "/tied-same";
  // WriteHfFolder writes extras as F32 1-D: write the head with the embedding's
  // dtype and shape instead.
  {
    ASSERT_TRUE(testing::WriteHfFolder(same, config, f, 2, DType::kF32).ok());
    const std::string last = same + "/model-00002-of-00002.safetensors";
    const std::vector<float>& e = f.values.at("model.embed_tokens.weight");
    RewriteShard(last, [&](SafetensorsWriter* w) {
      ASSERT_TRUE(w->AddF32("lm_head.weight", f.shapes.at("model.embed_tokens.weight"), e).ok());
    });
    Json index = ReadJson(same + "/model.safetensors.index.json");
    index["weight_map"]["lm_head.weight"] = "model-00002-of-00002.safetensors";
    WriteJson(same + "/model.safetensors.index.json", index);
  }
  auto w = HfWeights::Open(same);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_TRUE(w->CheckConfig(f.config).ok()) << w->CheckConfig(f.config);
  // A different head contradicts tie_word_embeddings.
  {
    const std::string last = same + "/model-00002-of-00002.safetensors";
    std::vector<float> e = f.values.at("model.embed_tokens.weight");
    e[5] += 1.0f;
    RewriteShard(last, [&](SafetensorsWriter* w2) {
      ASSERT_TRUE(w2->AddF32("lm_head.weight", f.shapes.at("model.embed_tokens.weight"), e).ok());
    }, "lm_head.weight");
  }
  auto w2 = HfWeights::Open(same);
  ASSERT_TRUE(w2.ok()) << w2.status();
  ExpectError(w2->CheckConfig(f.config), absl::StatusCode::kInvalidArgument,
              {"model-00002-of-00002.safetensors", "lm_head.weight", "tie_word_embeddings"});
  // Untied without a head: missing.
  Json untied = config;
  untied["tie_word_embeddings"] = false;
  auto uc = ModelConfig::FromJson(untied, "config.json");
  ASSERT_TRUE(uc.ok());
  auto w3 = HfWeights::Open(root_ + "/llama-3.2-1b-instruct.json-1");
  ASSERT_TRUE(w3.ok());
  ExpectError(w3->CheckConfig(*uc), absl::StatusCode::kNotFound,
              {"model.safetensors", "lm_head.weight", "missing"});
}

TEST_F(HfWeightsTest, MalformedIndex) {
  const std::string dir = Folder("qwen3-0.6b.json", 2);
  const std::string ip = dir + "/model.safetensors.index.json";
  const Json good = ReadJson(ip);
  struct Case {
    const char* what;
    std::string text;
    const char* needle;
  };
  Json bad_total = good;
  bad_total["metadata"]["total_size"] = "12";
  Json no_map = good;
  no_map.erase("weight_map");
  Json not_string = good;
  not_string["weight_map"]["model.norm.weight"] = 3;
  Json escape = good;
  escape["weight_map"]["model.norm.weight"] = "../model-00001-of-00002.safetensors";
  Json empty = good;
  empty["weight_map"] = Json::object();
  std::string dup = good.dump();
  dup.insert(dup.find("\"weight_map\":{") + 14,
             "\"model.norm.weight\":\"model-00001-of-00002.safetensors\",");
  const Case cases[] = {
      {"not json", "{\"weight_map\": {", "not a JSON object"},
      {"array", "[]", "not a JSON object"},
      {"total_size", bad_total.dump(), "total_size"},
      {"no weight_map", no_map.dump(), "weight_map"},
      {"value not a string", not_string.dump(), "model.norm.weight"},
      {"path escape", escape.dump(), "../model-00001"},
      {"empty", empty.dump(), "empty"},
      {"duplicate", dup, "model.norm.weight"},
      {"deep", std::string(100, '[') + std::string(100, ']'), "nests deeper"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    ASSERT_TRUE(WriteFileAtomic(ip, c.text).ok());
    ExpectError(HfWeights::Open(dir).status(), absl::StatusCode::kInvalidArgument,
                {"model.safetensors.index.json", c.needle});
  }
}

}  // namespace
}  // namespace qatk::safetensors
