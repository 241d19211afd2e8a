// Robustness of the Hugging Face folder reader on damaged inputs: every
// truncation and seeded random mutations of model.safetensors.index.json and
// of each shard's header give a clean error or a valid folder (never a
// crash, hang or sanitizer report); a valid folder is then checked against
// config.json and every tensor read. Also built under ASan+UBSan.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "formats/model_config.h"
#include "formats/safetensors/hf_weights.h"
#include "formats/util/file_io.h"
#include "gtest/gtest.h"
#include "tests/formats/hf_fixture.h"
#include "tests/formats/test_util.h"

namespace qatk::safetensors {
namespace {

constexpr int kMutations = 3000;

struct Folder {
  ModelConfig config;
  std::string index;
  std::map<std::string, std::vector<uint8_t>> shards;  // file name -> image
};

Folder TinyFolder() {
  Folder f;
  auto j = testing::TinyHfConfig("qwen2.5-0.5b.json", 16);
  EXPECT_TRUE(j.ok()) << j.status();
  (*j)["hidden_size"] = 8;
  (*j)["intermediate_size"] = 8;
  (*j)["num_hidden_layers"] = 1;
  (*j)["num_attention_heads"] = 2;
  (*j)["num_key_value_heads"] = 1;
  (*j)["head_dim"] = 4;
  (*j)["max_window_layers"] = 1;
  auto fx = testing::MakeHfFixture(*j, 1);
  EXPECT_TRUE(fx.ok()) << fx.status();
  f.config = fx->config;
  const std::string dir = testing::TempPath("hf_fuzz");
  EXPECT_TRUE(testing::WriteHfFolder(dir, *j, *fx, 2, DType::kBF16).ok());
  auto index = ReadFileToString(dir + "/" + kHfIndexFile);
  EXPECT_TRUE(index.ok());
  f.index = *index;
  while (!f.index.empty() && f.index.back() == '\n') f.index.pop_back();  // a cut before it still parses
  for (int k = 1; k <= 2; ++k) {
    auto s = ReadFileToString(dir + "/" + HfShardName(k, 2));
    EXPECT_TRUE(s.ok());
    f.shards[HfShardName(k, 2)] = std::vector<uint8_t>(s->begin(), s->end());
  }
  (void)RemoveAll(dir);
  return f;
}

// Parses the index and the shards it names, checks against config.json and
// reads every tensor; > 0 when all of it succeeded.
uint64_t Walk(const std::string& index_text, const std::map<std::string, std::vector<uint8_t>>& images,
              const ModelConfig& config) {
  auto index = ParseHfIndex(index_text, "fuzz/model.safetensors.index.json");
  if (!index.ok()) {
    EXPECT_FALSE(index.status().message().empty());
    return 0;
  }
  std::vector<SafetensorsFile> shards;
  for (const std::string& name : index->shards) {
    auto it = images.find(name);
    if (it == images.end()) return 0;  // Open reports a missing shard
    auto f = SafetensorsFile::Parse(it->second, "fuzz/" + name);
    if (!f.ok()) {
      EXPECT_FALSE(f.status().message().empty());
      return 0;
    }
    shards.push_back(std::move(*f));
  }
  auto w = HfWeights::FromShards(*index, "fuzz/model.safetensors.index.json", "fuzz", std::move(shards));
  if (!w.ok()) {
    EXPECT_FALSE(w.status().message().empty());
    return 0;
  }
  const absl::Status checked = w->CheckConfig(config);
  uint64_t sum = 1;
  for (const TensorView& t : w->tensors()) {
    auto v = w->ReadFloat(t.name);
    if (v.ok()) sum += v->size();
  }
  return checked.ok() ? sum : 0;
}

std::string MutateText(const std::string& in, std::mt19937* rng) {
  static const char kInteresting[] = {'"', '{', '}', '[', ']', ':', ',', '0', '9', '-', '/', '.', '\\', 'e'};
  std::string b = in;
  const int n = 1 + (*rng)() % 4;
  for (int k = 0; k < n; ++k) {
    const size_t pos = (*rng)() % b.size();
    switch ((*rng)() % 3) {
      case 0: b[pos] = static_cast<char>((*rng)()); break;
      case 1: b[pos] ^= static_cast<char>(1u << ((*rng)() % 8)); break;
      default: b[pos] = kInteresting[(*rng)() % sizeof(kInteresting)]; break;
    }
  }
  return b;
}

TEST(HfWeightsFuzzTest, IndexTruncationsAndMutations) {
  const Folder f = TinyFolder();
  ASSERT_GT(Walk(f.index, f.shards, f.config), 0u) << "the seed folder must load";
  int executions = 0, ok = 0;
  for (size_t k = 0; k < f.index.size(); ++k, ++executions) {
    // Every cut of the JSON's closing braces or a name is an error.
    ok += Walk(f.index.substr(0, k), f.shards, f.config) > 0;
  }
  EXPECT_EQ(ok, 0) << "a truncated index loaded";
  std::mt19937 rng(99);
  ok = 0;
  for (int i = 0; i < kMutations; ++i, ++executions) {
    ok += Walk(MutateText(f.index, &rng), f.shards, f.config) > 0;
  }
  EXPECT_LT(ok, kMutations);
  std::printf("model.safetensors.index.json fuzz: %d executions, %d still valid\n", executions, ok);
}

TEST(HfWeightsFuzzTest, ShardHeaderTruncationsAndMutations) {
  const Folder f = TinyFolder();
  int executions = 0, ok = 0;
  std::mt19937 rng(123);
  for (const auto& [name, image] : f.shards) {
    uint64_t header = 0;
    std::memcpy(&header, image.data(), 8);
    const size_t header_end = std::min<size_t>(image.size(), 8 + header);
    int truncated_ok = 0;
    for (size_t k = 0; k < header_end + 16 && k < image.size(); ++k, ++executions) {
      auto images = f.shards;
      images[name] = std::vector<uint8_t>(image.begin(), image.begin() + k);
      truncated_ok += Walk(f.index, images, f.config) > 0;
    }
    EXPECT_EQ(truncated_ok, 0) << "a truncated shard loaded";
    for (int i = 0; i < kMutations; ++i, ++executions) {
      auto images = f.shards;
      std::vector<uint8_t>& b = images[name];
      // Mutations inside the length prefix and the JSON header.
      const int n = 1 + rng() % 4;
      for (int m = 0; m < n; ++m) {
        const size_t pos = rng() % header_end;
        b[pos] = rng() % 2 ? static_cast<uint8_t>(rng()) : b[pos] ^ static_cast<uint8_t>(1u << (rng() % 8));
      }
      ok += Walk(f.index, images, f.config) > 0;
    }
  }
  EXPECT_LT(ok, 2 * kMutations);
  std::printf("safetensors shard header fuzz: %d executions, %d still valid\n", executions, ok);
}

}  // namespace
}  // namespace qatk::safetensors
