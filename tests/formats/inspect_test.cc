// `inspect`: format detection, text table and JSON for GGUF and safetensors.
#include "formats/inspect.h"

#include <cstdio>
#include <sstream>

#include "formats/gguf/gguf.h"
#include "formats/safetensors/safetensors.h"
#include "formats/util/file_io.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/formats/test_util.h"

namespace qatk {
namespace {

using ::testing::HasSubstr;

std::string WriteGguf() {
  const std::string path = testing::TempPath("inspect.gguf");
  auto w = gguf::GgufWriter::Create(path);
  EXPECT_TRUE(w.ok());
  EXPECT_TRUE(w->AddKv("general.architecture", gguf::Value::Str("llama")).ok());
  std::vector<std::string> toks;
  for (int i = 0; i < 100; ++i) toks.push_back("tok" + std::to_string(i));
  EXPECT_TRUE(w->AddKv("tokenizer.ggml.tokens", gguf::Value::StrArray(toks)).ok());
  EXPECT_TRUE(w->AddTensorInfo("blk.0.attn_q.weight", GgmlType::kQ4_0, {64, 3}).ok());
  std::vector<uint8_t> data(2 * 18 * 3);
  EXPECT_TRUE(w->WriteTensorData(data.data(), data.size()).ok());
  EXPECT_TRUE(w->Finish().ok());
  return path;
}

TEST(InspectTest, GgufTextAndJson) {
  const std::string path = WriteGguf();
  EXPECT_EQ(*DetectFileFormat(path), FileFormat::kGguf);
  std::ostringstream text;
  ASSERT_TRUE(InspectFile(path, false, text).ok());
  EXPECT_THAT(text.str(), HasSubstr("tokenizer.ggml.tokens ARRAY[STRING] = (100) [\"tok0\""));
  EXPECT_THAT(text.str(), HasSubstr("..."));
  EXPECT_THAT(text.str(), HasSubstr("[3, 64]"));  // PyTorch order
  EXPECT_THAT(text.str(), HasSubstr("q4_0"));
  std::ostringstream js;
  ASSERT_TRUE(InspectFile(path, true, js).ok());
  const auto j = nlohmann::json::parse(js.str());
  EXPECT_EQ(j["format"], "gguf");
  EXPECT_EQ(j["path"], path);
  EXPECT_EQ(j["metadata"]["general.architecture"], "llama");
  EXPECT_EQ(j["metadata"]["tokenizer.ggml.tokens"].size(), 100u);
  ASSERT_EQ(j["tensors"].size(), 1u);
  EXPECT_EQ(j["tensors"][0]["shape"], nlohmann::json({3, 64}));
  EXPECT_EQ(j["tensors"][0]["bytes"], 108);
  std::remove(path.c_str());
}

TEST(InspectTest, SafetensorsJson) {
  const std::string path = testing::TempPath("inspect.safetensors");
  safetensors::SafetensorsWriter w;
  w.SetMetadata("format", "pt");
  const float x[6] = {};
  ASSERT_TRUE(w.AddF32("model.norm.weight", {2, 3}, x).ok());
  ASSERT_TRUE(w.Write(path).ok());
  EXPECT_EQ(*DetectFileFormat(path), FileFormat::kSafetensors);
  std::ostringstream js;
  ASSERT_TRUE(InspectFile(path, true, js).ok());
  const auto j = nlohmann::json::parse(js.str());
  EXPECT_EQ(j["format"], "safetensors");
  EXPECT_EQ(j["metadata"]["format"], "pt");
  EXPECT_EQ(j["tensors"][0]["type"], "F32");
  EXPECT_EQ(j["tensors"][0]["shape"], nlohmann::json({2, 3}));
  std::remove(path.c_str());
}

TEST(InspectTest, UnknownAndMissingFiles) {
  const std::string path = testing::TempPath("inspect.txt");
  ASSERT_TRUE(WriteFileAtomic(path, "hello world").ok());
  std::ostringstream out;
  testing::ExpectError(InspectFile(path, false, out), absl::StatusCode::kInvalidArgument, {"unknown file format"});
  std::remove(path.c_str());
  EXPECT_EQ(InspectFile(path, false, out).code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace qatk
