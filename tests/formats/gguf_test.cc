// GGUF writer/reader: round trips of every value type and tensor type, the
// alignment/offset rules, and rejection of malformed files with messages that
// name the key/tensor and byte offset.
#include "formats/gguf/gguf.h"

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "formats/util/file_io.h"
#include "gtest/gtest.h"
#include "tests/formats/test_util.h"

namespace qatk::gguf {
namespace {

using qatk::testing::ExpectError;
using qatk::testing::TempPath;

std::vector<std::pair<std::string, Value>> AllValueKinds() {
  std::vector<std::pair<std::string, Value>> kv;
  kv.emplace_back("t.u8", Value::Scalar(ValueType::kUint8, uint64_t{200}));
  kv.emplace_back("t.i8", Value::Scalar(ValueType::kInt8, int64_t{-100}));
  kv.emplace_back("t.u16", Value::Scalar(ValueType::kUint16, uint64_t{60000}));
  kv.emplace_back("t.i16", Value::Scalar(ValueType::kInt16, int64_t{-30000}));
  kv.emplace_back("t.u32", Value::U32(4000000000u));
  kv.emplace_back("t.i32", Value::I32(-2000000000));
  kv.emplace_back("t.f32", Value::F32(0.1f));
  kv.emplace_back("t.bool", Value::Bool(true));
  kv.emplace_back("t.str", Value::Str("h\xc3\xa9llo"));
  kv.emplace_back("t.u64", Value::U64(~uint64_t{0}));
  kv.emplace_back("t.i64", Value::Scalar(ValueType::kInt64, int64_t{-(int64_t{1} << 62)}));
  kv.emplace_back("t.f64", Value::Scalar(ValueType::kFloat64, 1.0 / 3.0));
  kv.emplace_back("t.empty_str", Value::Str(""));
  kv.emplace_back("a.str", Value::StrArray({"<unk>", "", "\xe2\x96\x81the", "<0x0A>"}));
  kv.emplace_back("a.f32", Value::F32Array({0.5f, -1.25f, 3e-8f}));
  kv.emplace_back("a.i32", Value::I32Array({3, -1, 6}));
  kv.emplace_back("a.u32", Value::U32Array({1, 2, 4000000000u}));
  kv.emplace_back("a.empty", Value::I32Array({}));
  Value u8s, i64s, f64s, bools, u16s;
  u8s.type = i64s.type = f64s.type = bools.type = u16s.type = ValueType::kArray;
  u8s.elem_type = ValueType::kUint8;
  u8s.v = std::vector<uint64_t>{0, 255, 7};
  u16s.elem_type = ValueType::kUint16;
  u16s.v = std::vector<uint64_t>{65535};
  i64s.elem_type = ValueType::kInt64;
  i64s.v = std::vector<int64_t>{-5, int64_t{1} << 40};
  f64s.elem_type = ValueType::kFloat64;
  f64s.v = std::vector<double>{2.5, -1e300};
  bools.elem_type = ValueType::kBool;
  bools.v = std::vector<bool>{true, false, true};
  kv.emplace_back("a.u8", u8s);
  kv.emplace_back("a.u16", u16s);
  kv.emplace_back("a.i64", i64s);
  kv.emplace_back("a.f64", f64s);
  kv.emplace_back("a.bool", bools);
  return kv;
}

struct TensorSpec {
  std::string name;
  GgmlType type;
  std::vector<int64_t> ne;
};

std::vector<uint8_t> PatternBytes(size_t n, int salt) {
  std::vector<uint8_t> b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(i * 31 + salt * 7 + (i >> 8));
  return b;
}

const std::vector<TensorSpec> kTensors = {
    {"token_embd.weight", GgmlType::kQ8_0, {64, 10}},
    {"blk.0.attn_q.weight", GgmlType::kQ4_0, {96, 3}},
    {"output_norm.weight", GgmlType::kF32, {7}},
    {"blk.0.ffn_up.weight", GgmlType::kQ2_0, {128, 2, 1}},
    {"half", GgmlType::kF16, {5, 3}},
    {"bhalf", GgmlType::kBF16, {3, 1, 2, 2}},
    {"empty", GgmlType::kF32, {0, 4}},
};

// Writes kTensors + AllValueKinds(); data chunks of `chunk` bytes.
void WriteSample(const std::string& path, uint32_t alignment, size_t chunk) {
  auto w = GgufWriter::Create(path, alignment);
  ASSERT_TRUE(w.ok()) << w.status();
  for (auto& [k, v] : AllValueKinds()) ASSERT_TRUE(w->AddKv(k, v).ok()) << k;
  for (const TensorSpec& t : kTensors) ASSERT_TRUE(w->AddTensorInfo(t.name, t.type, t.ne).ok()) << t.name;
  int salt = 0;
  for (const TensorSpec& t : kTensors) {
    TensorInfo info{t.name, t.type, t.ne};
    const int64_t n = info.n_elements();
    const auto bytes = PatternBytes(n / Traits(t.type).block_size * Traits(t.type).type_size, salt++);
    for (size_t off = 0; off < bytes.size(); off += chunk) {
      ASSERT_TRUE(w->WriteTensorData(bytes.data() + off, std::min(chunk, bytes.size() - off)).ok());
    }
  }
  ASSERT_TRUE(w->Finish().ok());
}

class GgufRoundTrip : public ::testing::TestWithParam<std::pair<uint32_t, size_t>> {};

TEST_P(GgufRoundTrip, ReadsBackWhatWasWritten) {
  const auto [alignment, chunk] = GetParam();
  const std::string path = TempPath("rt.gguf");
  WriteSample(path, alignment, chunk);
  auto f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->alignment(), alignment);
  EXPECT_EQ(f->data_offset() % alignment, 0u);
  const auto kv = AllValueKinds();
  const size_t extra = alignment != 32 ? 1 : 0;  // general.alignment appended
  ASSERT_EQ(f->metadata().size(), kv.size() + extra);
  for (size_t i = 0; i < kv.size(); ++i) {
    const auto& [key, got] = f->metadata()[i];
    EXPECT_EQ(key, kv[i].first);
    EXPECT_EQ(got.type, kv[i].second.type) << key;
    if (got.type == ValueType::kArray) {
      EXPECT_EQ(got.elem_type, kv[i].second.elem_type) << key;
    }
    if (kv[i].second.elem_type == ValueType::kFloat32 || kv[i].second.type == ValueType::kFloat32) {
      // stored as float: compare after float rounding
      if (got.type == ValueType::kArray) {
        const auto& a = std::get<std::vector<double>>(got.v);
        const auto& b = std::get<std::vector<double>>(kv[i].second.v);
        ASSERT_EQ(a.size(), b.size());
        for (size_t j = 0; j < a.size(); ++j) EXPECT_EQ(a[j], static_cast<float>(b[j]));
      } else {
        EXPECT_EQ(*got.AsFloat(), static_cast<float>(std::get<double>(kv[i].second.v)));
      }
    } else {
      EXPECT_TRUE(got.v == kv[i].second.v) << key;
    }
  }
  if (extra) {
    EXPECT_EQ(*f->GetUint("general.alignment"), alignment);
  }
  EXPECT_EQ(*f->GetString("t.str"), "h\xc3\xa9llo");
  EXPECT_EQ(f->Find("a.str")->ArraySize(), 4u);
  ExpectError(f->GetUint("missing.key").status(), absl::StatusCode::kNotFound, {"missing.key"});
  ExpectError(f->GetString("t.u32").status(), absl::StatusCode::kInvalidArgument, {"t.u32", "UINT32"});

  ASSERT_EQ(f->tensors().size(), kTensors.size());
  uint64_t expected_offset = 0;
  for (size_t i = 0; i < kTensors.size(); ++i) {
    const TensorInfo& t = f->tensors()[i];
    EXPECT_EQ(t.name, kTensors[i].name);
    EXPECT_EQ(t.type, kTensors[i].type);
    EXPECT_EQ(t.ne, kTensors[i].ne);
    EXPECT_EQ(t.offset, expected_offset);
    const auto want = PatternBytes(t.nbytes, static_cast<int>(i));
    if (t.nbytes > 0) {
      EXPECT_EQ(std::memcmp(f->TensorData(t), want.data(), t.nbytes), 0) << t.name;
    }
    EXPECT_EQ(reinterpret_cast<uintptr_t>(f->TensorData(t)) % alignment, 0u) << t.name;
    expected_offset += (t.nbytes + alignment - 1) / alignment * alignment;
  }
  EXPECT_EQ(f->FindTensor("half")->nbytes, 30u);
  EXPECT_EQ(f->FindTensor("nope"), nullptr);
  // Every tensor, the last included, is padded: the file ends on the alignment.
  auto bytes = ReadFileToString(path);
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(bytes->size(), f->data_offset() + expected_offset);
  std::remove(path.c_str());
}

INSTANTIATE_TEST_SUITE_P(Alignments, GgufRoundTrip,
                         ::testing::Values(std::make_pair(32u, size_t{1} << 20), std::make_pair(64u, size_t{7}),
                                           std::make_pair(4096u, size_t{1}), std::make_pair(1u, size_t{5})));

TEST(GgufWriterTest, RejectsBadDeclarations) {
  const std::string path = TempPath("bad.gguf");
  auto w = GgufWriter::Create(path);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(w->AddKv("a", Value::U32(1)).ok());
  ExpectError(w->AddKv("a", Value::U32(2)), absl::StatusCode::kInvalidArgument, {"duplicate key 'a'"});
  ExpectError(w->AddKv("", Value::U32(2)), absl::StatusCode::kInvalidArgument, {"empty"});
  Value nested;
  nested.type = ValueType::kArray;
  nested.elem_type = ValueType::kArray;
  nested.v = std::vector<uint64_t>{};
  ExpectError(w->AddKv("n", nested), absl::StatusCode::kInvalidArgument, {"'n'", "nested"});
  ExpectError(w->AddKv("r", Value::Scalar(ValueType::kUint8, uint64_t{256})), absl::StatusCode::kInvalidArgument,
              {"'r'", "UINT8"});
  ExpectError(w->AddKv("general.alignment", Value::U32(64)), absl::StatusCode::kInvalidArgument, {"alignment"});
  ASSERT_TRUE(w->AddTensorInfo("x", GgmlType::kQ4_0, {64}).ok());
  ExpectError(w->AddTensorInfo("x", GgmlType::kF32, {1}), absl::StatusCode::kInvalidArgument, {"duplicate tensor 'x'"});
  ExpectError(w->AddTensorInfo(std::string(64, 'n'), GgmlType::kF32, {1}), absl::StatusCode::kInvalidArgument,
              {"1..63 bytes"});
  ExpectError(w->AddTensorInfo("y", GgmlType::kQ4_0, {48}), absl::StatusCode::kInvalidArgument,
              {"'y'", "block size 32"});
  ExpectError(w->AddTensorInfo("z", GgmlType::kF32, {1, 1, 1, 1, 1}), absl::StatusCode::kInvalidArgument, {"'z'"});
  ExpectError(w->AddTensorInfo("neg", GgmlType::kF32, {-1}), absl::StatusCode::kInvalidArgument, {"'neg'", "negative"});
  ExpectError(w->AddTensorInfo("big", GgmlType::kF32, {int64_t{1} << 40, int64_t{1} << 40}),
              absl::StatusCode::kInvalidArgument, {"'big'", "overflow"});
  ExpectError(GgufWriter::Create(path, 48).status(), absl::StatusCode::kInvalidArgument, {"power of 2"});
}

TEST(GgufWriterTest, IncompleteDataIsNotCommitted) {
  const std::string path = TempPath("incomplete.gguf");
  std::remove(path.c_str());
  {
    auto w = GgufWriter::Create(path);
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE(w->AddTensorInfo("x", GgmlType::kF32, {4}).ok());
    const float data[5] = {1, 2, 3, 4, 5};
    ExpectError(w->WriteTensorData(data, 20), absl::StatusCode::kInvalidArgument, {"'x'", "16"});
    ASSERT_TRUE(w->WriteTensorData(data, 8).ok());
    ExpectError(w->AddKv("late", Value::U32(1)), absl::StatusCode::kFailedPrecondition, {"late"});
    ExpectError(w->Finish(), absl::StatusCode::kFailedPrecondition, {"'x'", "8 of 16"});
  }
  EXPECT_FALSE(ReadFileToString(path).ok()) << "a failed write must not leave a file";
}

// --- malformed images ------------------------------------------------------

// Little-endian byte builder for hand-made GGUF images.
struct Img {
  std::vector<uint8_t> b;
  template <typename T>
  Img& Put(T x) {
    const auto* p = reinterpret_cast<const uint8_t*>(&x);
    b.insert(b.end(), p, p + sizeof(T));
    return *this;
  }
  Img& Str(const std::string& s) {
    Put<uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  Img& Header(int64_t n_tensors, int64_t n_kv, uint32_t version = 3) {
    b.insert(b.end(), {'G', 'G', 'U', 'F'});
    return Put(version).Put(n_tensors).Put(n_kv);
  }
  Img& Tensor(const std::string& name, std::vector<int64_t> ne, int32_t type, uint64_t offset) {
    Str(name).Put<uint32_t>(ne.size());
    for (int64_t d : ne) Put(d);
    return Put(type).Put(offset);
  }
  Img& PadTo(size_t a) {
    b.resize((b.size() + a - 1) / a * a, 0);
    return *this;
  }
  Img& Zeros(size_t n) {
    b.resize(b.size() + n, 0);
    return *this;
  }
  absl::Status Parse() const { return GgufFile::Parse(b, "img.gguf").status(); }
};

TEST(GgufReaderTest, AcceptsMinimalImages) {
  EXPECT_TRUE(Img().Header(0, 0).Parse().ok());
  Img one;
  one.Header(1, 0).Tensor("w", {4}, 0, 0).PadTo(32).Zeros(16);  // last tensor unpadded: accepted
  EXPECT_TRUE(one.Parse().ok()) << one.Parse();
}

TEST(GgufReaderTest, RejectsBadHeaders) {
  ExpectError(Img().Parse(), absl::StatusCode::kInvalidArgument, {"img.gguf", "magic"});
  ExpectError(Img().Header(0, 0, 1).Parse(), absl::StatusCode::kUnimplemented, {"version 1"});
  ExpectError(Img().Header(0, 0, 4).Parse(), absl::StatusCode::kUnimplemented, {"version 4"});
  ExpectError(Img().Header(0, 0, 3u << 24).Parse(), absl::StatusCode::kUnimplemented, {"big-endian"});
  ExpectError(Img().Header(-1, 0).Parse(), absl::StatusCode::kDataLoss, {"tensor count -1", "at byte 8"});
  ExpectError(Img().Header(0, 1000).Parse(), absl::StatusCode::kDataLoss, {"metadata count 1000"});
  Img trunc;
  trunc.Header(0, 0);
  trunc.b.resize(20);
  ExpectError(trunc.Parse(), absl::StatusCode::kDataLoss, {"truncated", "metadata count", "at byte 16"});
}

TEST(GgufReaderTest, RejectsBadMetadata) {
  Img dup;
  dup.Header(0, 2).Str("k").Put<int32_t>(4).Put<uint32_t>(1).Str("k").Put<int32_t>(4).Put<uint32_t>(2);
  ExpectError(dup.Parse(), absl::StatusCode::kInvalidArgument, {"duplicate key 'k'", "at byte 41"});
  Img badtype;
  badtype.Header(0, 1).Str("k").Put<int32_t>(13).Zeros(8);
  ExpectError(badtype.Parse(), absl::StatusCode::kInvalidArgument, {"'k'", "invalid GGUF type 13"});
  Img nested;
  nested.Header(0, 1).Str("arr").Put<int32_t>(9).Put<int32_t>(9).Put<uint64_t>(0).Zeros(8);
  ExpectError(nested.Parse(), absl::StatusCode::kInvalidArgument, {"'arr'", "nested"});
  Img longstr;
  longstr.Header(0, 1).Str("s").Put<int32_t>(8).Put<uint64_t>(1000).Zeros(10);
  ExpectError(longstr.Parse(), absl::StatusCode::kDataLoss, {"'s'", "string length 1000", "remaining 10"});
  Img hugestr;
  hugestr.Header(0, 1).Str("s").Put<int32_t>(8).Put<uint64_t>(uint64_t{1} << 31);
  ExpectError(hugestr.Parse(), absl::StatusCode::kDataLoss, {"'s'", "1 GiB"});
  Img bigarr;
  bigarr.Header(0, 1).Str("a").Put<int32_t>(9).Put<int32_t>(6).Put<uint64_t>(1000).Zeros(40);
  ExpectError(bigarr.Parse(), absl::StatusCode::kDataLoss, {"'a'", "1000 FLOAT32", "remaining 40"});
  Img strarr;
  strarr.Header(0, 1).Str("a").Put<int32_t>(9).Put<int32_t>(8).Put<uint64_t>(2).Str("ok").Put<uint64_t>(99);
  ExpectError(strarr.Parse(), absl::StatusCode::kDataLoss, {"'a'[1]", "string length 99"});
  Img empty_key;
  empty_key.Header(0, 1).Str("").Put<int32_t>(4).Put<uint32_t>(1);
  ExpectError(empty_key.Parse(), absl::StatusCode::kInvalidArgument, {"empty metadata key"});
}

TEST(GgufReaderTest, RejectsBadAlignment) {
  Img wrong_type;
  wrong_type.Header(0, 1).Str("general.alignment").Put<int32_t>(10).Put<uint64_t>(64);
  ExpectError(wrong_type.Parse(), absl::StatusCode::kInvalidArgument, {"general.alignment", "UINT32", "UINT64"});
  Img not_pow2;
  not_pow2.Header(0, 1).Str("general.alignment").Put<int32_t>(4).Put<uint32_t>(48);
  ExpectError(not_pow2.Parse(), absl::StatusCode::kInvalidArgument, {"48", "power of 2"});
  Img zero;
  zero.Header(0, 1).Str("general.alignment").Put<int32_t>(4).Put<uint32_t>(0);
  ExpectError(zero.Parse(), absl::StatusCode::kInvalidArgument, {"power of 2"});
}

TEST(GgufReaderTest, RejectsBadTensorInfos) {
  auto one = [](const std::string& name, std::vector<int64_t> ne, int32_t type, uint64_t off) {
    Img i;
    i.Header(1, 0).Tensor(name, ne, type, off).PadTo(32).Zeros(4096);
    return i;
  };
  ExpectError(one("w", {32}, 3, 0).Parse(), absl::StatusCode::kUnimplemented,
              {"tensor 'w'", "unsupported ggml type 3", "at byte 45"});
  ExpectError(one("w", {32}, -1, 0).Parse(), absl::StatusCode::kUnimplemented, {"type -1"});
  ExpectError(one("w", {1, 1, 1, 1, 1}, 0, 0).Parse(), absl::StatusCode::kInvalidArgument,
              {"'w'", "5 dimensions"});
  ExpectError(one("w", {-3}, 0, 0).Parse(), absl::StatusCode::kInvalidArgument, {"'w'", "negative"});
  ExpectError(one("w", {16}, 2, 0).Parse(), absl::StatusCode::kInvalidArgument, {"'w'", "block size 32"});
  ExpectError(one("w", {int64_t{1} << 62, 8}, 0, 0).Parse(), absl::StatusCode::kInvalidArgument,
              {"'w'", "overflow"});
  ExpectError(one("w", {int64_t{1} << 62}, 0, 0).Parse(), absl::StatusCode::kInvalidArgument,
              {"'w'", "byte size overflows"});
  ExpectError(one(std::string(64, 'x'), {4}, 0, 0).Parse(), absl::StatusCode::kInvalidArgument,
              {"64 bytes (must be < 64)"});
  EXPECT_TRUE(one(std::string(63, 'x'), {4}, 0, 0).Parse().ok());
  ExpectError(one("w", {4}, 0, 32).Parse(), absl::StatusCode::kInvalidArgument,
              {"'w' has offset 32, expected 0"});
  ExpectError(one("w", {2048}, 0, 0).Parse(), absl::StatusCode::kDataLoss,
              {"'w'", "8192 bytes", "past the end"});
  Img dup;
  dup.Header(2, 0).Tensor("w", {4}, 0, 0).Tensor("w", {4}, 0, 32).PadTo(32).Zeros(64);
  ExpectError(dup.Parse(), absl::StatusCode::kInvalidArgument, {"duplicate tensor 'w'"});
  Img gap;  // second tensor must start at align_up(16) = 32, not 16
  gap.Header(2, 0).Tensor("a", {4}, 0, 0).Tensor("b", {4}, 0, 16).PadTo(32).Zeros(64);
  ExpectError(gap.Parse(), absl::StatusCode::kInvalidArgument, {"'b' has offset 16, expected 32"});
}

TEST(GgufReaderTest, OpenReportsMissingFile) {
  EXPECT_EQ(GgufFile::Open(TempPath("does_not_exist.gguf")).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace qatk::gguf
