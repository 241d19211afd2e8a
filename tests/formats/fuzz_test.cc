// Robustness of the GGUF and safetensors readers on damaged files: every
// truncation point and a few thousand seeded random mutations of a small
// valid image must give a clean error or a valid parse (never a crash, hang
// or sanitizer report). Also built under ASan+UBSan (QATK_SANITIZE=ON).
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "formats/gguf/gguf.h"
#include "formats/model_config.h"
#include "formats/quant/recipe.h"
#include "formats/safetensors/safetensors.h"
#include "formats/util/file_io.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/formats/test_util.h"

namespace qatk {
namespace {

constexpr int kMutations = 3000;

std::vector<uint8_t> Slurp(const std::string& path) {
  auto s = ReadFileToString(path);
  EXPECT_TRUE(s.ok()) << s.status();
  std::remove(path.c_str());
  return s.ok() ? std::vector<uint8_t>(s->begin(), s->end()) : std::vector<uint8_t>{};
}

std::vector<uint8_t> SmallGguf() {
  const std::string path = testing::TempPath("fuzz.gguf");
  auto w = gguf::GgufWriter::Create(path);
  EXPECT_TRUE(w.ok());
  EXPECT_TRUE(w->AddKv("general.architecture", gguf::Value::Str("llama")).ok());
  EXPECT_TRUE(w->AddKv("llama.block_count", gguf::Value::U32(1)).ok());
  EXPECT_TRUE(w->AddKv("llama.rope.freq_base", gguf::Value::F32(10000.0f)).ok());
  EXPECT_TRUE(w->AddKv("tokenizer.ggml.tokens", gguf::Value::StrArray({"<unk>", "<s>", "a", "bc"})).ok());
  EXPECT_TRUE(w->AddKv("tokenizer.ggml.scores", gguf::Value::F32Array({0, 0, -1, -2})).ok());
  EXPECT_TRUE(w->AddKv("tokenizer.ggml.token_type", gguf::Value::I32Array({2, 3, 1, 1})).ok());
  EXPECT_TRUE(w->AddKv("flag", gguf::Value::Bool(true)).ok());
  EXPECT_TRUE(w->AddTensorInfo("token_embd.weight", GgmlType::kQ4_0, {32, 4}).ok());
  EXPECT_TRUE(w->AddTensorInfo("output_norm.weight", GgmlType::kF32, {8}).ok());
  EXPECT_TRUE(w->AddTensorInfo("output.weight", GgmlType::kQ8_0, {32, 2}).ok());
  std::vector<uint8_t> data(4 * 18 + 32 + 2 * 34);
  std::iota(data.begin(), data.end(), 1);
  EXPECT_TRUE(w->WriteTensorData(data.data(), 72).ok());
  EXPECT_TRUE(w->WriteTensorData(data.data() + 72, 32).ok());
  EXPECT_TRUE(w->WriteTensorData(data.data() + 104, 68).ok());
  EXPECT_TRUE(w->Finish().ok());
  return Slurp(path);
}

std::vector<uint8_t> SmallSafetensors() {
  const std::string path = testing::TempPath("fuzz.safetensors");
  safetensors::SafetensorsWriter w;
  w.SetMetadata("format", "pt");
  const float a[6] = {1, 2, 3, 4, 5, 6};
  const uint16_t h[4] = {0x3C00, 0xC000, 0x7BFF, 0x0001};
  const int64_t i[1] = {42};
  EXPECT_TRUE(w.AddF32("model.norm.weight", {6}, a).ok());
  EXPECT_TRUE(w.Add("model.embed_tokens.weight", safetensors::DType::kF16, {2, 2}, h, 8).ok());
  EXPECT_TRUE(w.Add("step", safetensors::DType::kI64, {}, i, 8).ok());
  EXPECT_TRUE(w.Write(path).ok());
  return Slurp(path);
}

// Touches everything a valid parse exposes, so ASan sees any bad view.
uint64_t WalkGguf(const std::vector<uint8_t>& bytes) {
  auto f = gguf::GgufFile::Parse(bytes, "fuzz.gguf");
  if (!f.ok()) {
    EXPECT_FALSE(f.status().message().empty());
    return 0;
  }
  uint64_t sum = f->metadata().size();
  for (const auto& kv : f->metadata()) sum += kv.first.size() + kv.second.ArraySize();
  for (const gguf::TensorInfo& t : f->tensors()) {
    const uint8_t* p = f->TensorData(t);
    for (uint64_t i = 0; i < t.nbytes; ++i) sum += p[i];
  }
  return sum;
}

uint64_t WalkSafetensors(const std::vector<uint8_t>& bytes) {
  auto f = safetensors::SafetensorsFile::Parse(bytes, "fuzz.safetensors");
  if (!f.ok()) {
    EXPECT_FALSE(f.status().message().empty());
    return 0;
  }
  uint64_t sum = f->metadata().size();
  for (const safetensors::TensorView& t : f->tensors()) {
    for (uint64_t i = 0; i < t.nbytes; ++i) sum += t.data[i];
    auto fl = f->ReadFloat(t.name);
    if (fl.ok()) sum += fl->size();
  }
  return sum;
}

// Mutates 1-4 bytes: random values, bit flips, or "interesting" bytes that
// turn lengths and counts into huge or negative numbers.
std::vector<uint8_t> Mutate(const std::vector<uint8_t>& in, std::mt19937* rng) {
  static const uint8_t kInteresting[] = {0x00, 0x01, 0x7F, 0x80, 0xFF, 0x3F, 0x40, 0x09, 0x08, 0x0C};
  std::vector<uint8_t> b = in;
  const int n = 1 + (*rng)() % 4;
  for (int k = 0; k < n; ++k) {
    const size_t pos = (*rng)() % b.size();
    switch ((*rng)() % 3) {
      case 0: b[pos] = static_cast<uint8_t>((*rng)()); break;
      case 1: b[pos] ^= static_cast<uint8_t>(1u << ((*rng)() % 8)); break;
      default: b[pos] = kInteresting[(*rng)() % sizeof(kInteresting)]; break;
    }
  }
  return b;
}

template <typename Walk>
void TruncateEverywhere(const std::vector<uint8_t>& image, Walk walk, int* n_ok) {
  for (size_t k = 0; k < image.size(); ++k) {
    // Exact-size heap copy: reading past the end is an ASan report.
    const std::vector<uint8_t> prefix(image.begin(), image.begin() + k);
    if (walk(prefix) > 0) ++*n_ok;
  }
}

TEST(FuzzTest, GgufTruncationsAndMutations) {
  const std::vector<uint8_t> image = SmallGguf();
  ASSERT_GT(image.size(), 200u);
  ASSERT_GT(WalkGguf(image), 0u) << "the seed image must parse";
  int ok_prefixes = 0;
  TruncateEverywhere(image, WalkGguf, &ok_prefixes);
  // Only cuts inside the last tensor's padding can still be valid.
  EXPECT_LT(ok_prefixes, 32);
  std::mt19937 rng(20240611);
  int ok = 0;
  for (int i = 0; i < kMutations; ++i) ok += WalkGguf(Mutate(image, &rng)) > 0;
  RecordProperty("gguf_mutations_still_valid", ok);
  EXPECT_LT(ok, kMutations) << "mutations never caught: the reader checks nothing?";
}

TEST(FuzzTest, SafetensorsTruncationsAndMutations) {
  const std::vector<uint8_t> image = SmallSafetensors();
  ASSERT_GT(image.size(), 100u);
  ASSERT_GT(WalkSafetensors(image), 0u) << "the seed image must parse";
  int ok_prefixes = 0;
  TruncateEverywhere(image, WalkSafetensors, &ok_prefixes);
  EXPECT_EQ(ok_prefixes, 0) << "safetensors tensors must cover the data exactly";
  std::mt19937 rng(777);
  int ok = 0;
  for (int i = 0; i < kMutations; ++i) ok += WalkSafetensors(Mutate(image, &rng)) > 0;
  RecordProperty("safetensors_mutations_still_valid", ok);
  EXPECT_LT(ok, kMutations);
}

// JSON inputs (config.json, recipes): every truncation and kMutations byte
// mutations of the real files give a clean error or a valid parse.
std::vector<uint8_t> SourceFile(const std::string& rel) {
  auto s = ReadFileToString(std::string(QATK_SOURCE_DIR) + "/" + rel);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? std::vector<uint8_t>(s->begin(), s->end()) : std::vector<uint8_t>{};
}

uint64_t WalkConfig(const std::vector<uint8_t>& bytes) {
  const nlohmann::json j = nlohmann::json::parse(bytes.begin(), bytes.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return 0;
  auto c = ModelConfig::FromJson(j, "fuzz/config.json");
  if (!c.ok()) {
    EXPECT_FALSE(c.status().message().empty());
    return 0;
  }
  return static_cast<uint64_t>(c->num_parameters() > 0) + 1;
}

uint64_t WalkRecipe(const std::vector<uint8_t>& bytes) {
  auto r = ParseRecipe(absl::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()),
                       "fuzz/recipe.json");
  if (!r.ok()) {
    EXPECT_FALSE(r.status().message().empty());
    return 0;
  }
  return r->rules.size() + 1;
}

TEST(FuzzTest, ConfigJsonTruncationsAndMutations) {
  int executions = 0;
  for (const char* file : {"configs/models/tiny.json", "configs/models/tiny-gemma.json"}) {
    const std::vector<uint8_t> image = SourceFile(file);
    ASSERT_GT(WalkConfig(image), 0u) << file << " must parse";
    int ok_prefixes = 0;
    TruncateEverywhere(image, WalkConfig, &ok_prefixes);
    std::mt19937 rng(4242);
    for (int i = 0; i < kMutations; ++i) WalkConfig(Mutate(image, &rng));
    executions += static_cast<int>(image.size()) + kMutations;
  }
  std::printf("config.json fuzz: %d executions\n", executions);
}

TEST(FuzzTest, RecipeTruncationsAndMutations) {
  int executions = 0;
  for (const char* file : {"configs/recipes/mobile.json", "configs/recipes/q4_0_q2head.json"}) {
    const std::vector<uint8_t> image = SourceFile(file);
    ASSERT_GT(WalkRecipe(image), 0u) << file << " must parse";
    int ok_prefixes = 0;
    TruncateEverywhere(image, WalkRecipe, &ok_prefixes);
    std::mt19937 rng(99);
    for (int i = 0; i < kMutations; ++i) WalkRecipe(Mutate(image, &rng));
    executions += static_cast<int>(image.size()) + kMutations;
  }
  std::printf("recipe fuzz: %d executions\n", executions);
}

}  // namespace
}  // namespace qatk
