// safetensors writer/reader round trip and rejection of malformed headers.
#include "formats/safetensors/safetensors.h"

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "formats/quant/fp16.h"
#include "formats/util/file_io.h"
#include "gtest/gtest.h"
#include "tests/formats/test_util.h"

namespace qatk::safetensors {
namespace {

using qatk::testing::ExpectError;
using qatk::testing::TempPath;

TEST(SafetensorsTest, RoundTripAllDtypes) {
  const std::string path = TempPath("rt.safetensors");
  SafetensorsWriter w;
  w.SetMetadata("format", "pt");
  w.SetMetadata("note", "qat\xc3\xa9");
  const std::vector<float> f32 = {1.5f, -2.0f, 3e-9f, 4.0f, 5.0f, 6.0f};
  ASSERT_TRUE(w.AddF32("model.embed_tokens.weight", {2, 3}, f32).ok());
  const uint16_t f16[2] = {Fp32ToFp16(0.5f), Fp32ToFp16(-3.0f)};
  ASSERT_TRUE(w.Add("h", DType::kF16, {2}, f16, 4).ok());
  const uint16_t bf16[1] = {Fp32ToBf16(2.5f)};
  ASSERT_TRUE(w.Add("b", DType::kBF16, {1}, bf16, 2).ok());
  const int8_t i8[3] = {-1, 2, -3};
  ASSERT_TRUE(w.Add("i8", DType::kI8, {3}, i8, 3).ok());
  const int32_t i32[1] = {-7};
  ASSERT_TRUE(w.Add("i32", DType::kI32, {}, i32, 4).ok());  // scalar
  const uint8_t u8[2] = {0, 255};
  ASSERT_TRUE(w.Add("u8", DType::kU8, {2, 1}, u8, 2).ok());
  const int64_t i64[2] = {int64_t{1} << 40, -1};
  ASSERT_TRUE(w.Add("i64", DType::kI64, {2}, i64, 16).ok());
  ASSERT_TRUE(w.Add("empty", DType::kF32, {0, 5}, nullptr, 0).ok());
  ASSERT_TRUE(w.Write(path).ok());

  auto bytes = ReadFileToString(path);
  ASSERT_TRUE(bytes.ok());
  uint64_t n = 0;
  std::memcpy(&n, bytes->data(), 8);
  EXPECT_EQ(n % 8, 0u) << "header padded to 8 bytes";
  EXPECT_EQ((*bytes)[8], '{');

  auto f = SafetensorsFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->metadata().at("format"), "pt");
  EXPECT_EQ(f->metadata().at("note"), "qat\xc3\xa9");
  ASSERT_EQ(f->tensors().size(), 8u);
  EXPECT_EQ(f->tensors()[0].name, "model.embed_tokens.weight");  // file order kept
  EXPECT_EQ(f->tensors()[7].name, "empty");
  EXPECT_EQ(*f->ReadFloat("model.embed_tokens.weight"), f32);
  EXPECT_EQ(*f->ReadFloat("h"), (std::vector<float>{0.5f, -3.0f}));
  EXPECT_EQ(*f->ReadFloat("b"), (std::vector<float>{2.5f}));
  const TensorView* t = f->Find("i64");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->shape, (std::vector<int64_t>{2}));
  EXPECT_EQ(std::memcmp(t->data, i64, 16), 0);
  EXPECT_EQ(f->Find("i32")->shape.size(), 0u);
  EXPECT_EQ(f->Find("i32")->n_elements(), 1);
  EXPECT_EQ(f->Find("u8")->data[1], 255);
  ExpectError(f->ReadFloat("i8").status(), absl::StatusCode::kInvalidArgument, {"'i8'", "I8"});
  ExpectError(f->ReadFloat("zz").status(), absl::StatusCode::kNotFound, {"'zz'"});
  std::remove(path.c_str());
}

TEST(SafetensorsTest, WriterRejectsBadTensors) {
  SafetensorsWriter w;
  const float x[4] = {};
  ASSERT_TRUE(w.AddF32("a", {4}, x).ok());
  ExpectError(w.AddF32("a", {4}, x), absl::StatusCode::kInvalidArgument, {"duplicate tensor 'a'"});
  ExpectError(w.Add("b", DType::kF32, {3}, x, 16), absl::StatusCode::kInvalidArgument, {"'b'", "12 bytes"});
  ExpectError(w.Add("__metadata__", DType::kF32, {4}, x, 16), absl::StatusCode::kInvalidArgument, {});
}

std::vector<uint8_t> Image(const std::string& header, size_t data_bytes) {
  std::string s(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(&s[0], &n, 8);
  s += header;
  s.append(data_bytes, '\0');
  return std::vector<uint8_t>(s.begin(), s.end());
}

absl::Status ParseImage(const std::string& header, size_t data_bytes) {
  return SafetensorsFile::Parse(Image(header, data_bytes), "img.safetensors").status();
}

TEST(SafetensorsTest, ReaderRejectsMalformedHeaders) {
  EXPECT_TRUE(ParseImage(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8).ok());
  ExpectError(SafetensorsFile::Parse(std::vector<uint8_t>(5), "x").status(), absl::StatusCode::kDataLoss,
              {"truncated"});
  std::vector<uint8_t> huge = Image("{}", 0);
  const uint64_t big = (uint64_t{200} << 20);
  std::memcpy(huge.data(), &big, 8);
  ExpectError(SafetensorsFile::Parse(huge, "x").status(), absl::StatusCode::kInvalidArgument, {"cap"});
  std::vector<uint8_t> trunc = Image("{}", 0);
  const uint64_t ten = 10;
  std::memcpy(trunc.data(), &ten, 8);
  ExpectError(SafetensorsFile::Parse(trunc, "x").status(), absl::StatusCode::kDataLoss, {"truncated", "header of 10"});
  ExpectError(ParseImage("[1,2]", 0), absl::StatusCode::kInvalidArgument, {"not a JSON object"});
  ExpectError(ParseImage("{\"a\":", 0), absl::StatusCode::kInvalidArgument, {"not a JSON object"});
  ExpectError(ParseImage(std::string(100, '[') + std::string(100, ']'), 0), absl::StatusCode::kInvalidArgument,
              {"nests deeper"});
  ExpectError(ParseImage(R"({"a":{"dtype":"F8","shape":[2],"data_offsets":[0,2]}})", 2),
              absl::StatusCode::kUnimplemented, {"'a'", "dtype 'F8'"});
  ExpectError(ParseImage(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8),
              absl::StatusCode::kInvalidArgument, {"'a'", "need 12 bytes", "span 8"});
  ExpectError(ParseImage(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8),
              absl::StatusCode::kInvalidArgument, {"'a'", "non-negative"});
  ExpectError(ParseImage(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4),
              absl::StatusCode::kDataLoss, {"'a'", "outside the data section"});
  ExpectError(ParseImage(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8),
              absl::StatusCode::kDataLoss, {"'a'"});
  ExpectError(ParseImage(R"({"a":{"dtype":"F32","shape":[2]}})", 8), absl::StatusCode::kInvalidArgument,
              {"'a'", "data_offsets"});
  ExpectError(ParseImage(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},
                              "b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})", 6),
              absl::StatusCode::kInvalidArgument, {"'b'", "overlap"});
  ExpectError(ParseImage(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},
                              "b":{"dtype":"U8","shape":[4],"data_offsets":[6,10]}})", 10),
              absl::StatusCode::kInvalidArgument, {"'b'", "gap"});
  ExpectError(ParseImage(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})", 6),
              absl::StatusCode::kInvalidArgument, {"cover 4 of the 6"});
  ExpectError(ParseImage(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},
                              "a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})", 4),
              absl::StatusCode::kInvalidArgument, {"duplicate tensor 'a'"});
  ExpectError(ParseImage(R"({"__metadata__":{"k":3}})", 0), absl::StatusCode::kInvalidArgument,
              {"__metadata__", "'k'"});
}

}  // namespace
}  // namespace qatk::safetensors
