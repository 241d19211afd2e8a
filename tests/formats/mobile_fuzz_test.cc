// Fuzz-style robustness of the mobile reader: every truncation point and
// seeded random mutations of a valid file give a clean Status (never a crash
// or an out-of-bounds read; run under ASan+UBSan by scripts/test.sh), plus
// targeted corruptions with the documented status codes.
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

#include "formats/mobile/mobile_format.h"
#include "formats/util/file_io.h"
#include "formats/util/status_macros.h"
#include "gtest/gtest.h"

namespace qatk::mobile {
namespace {

std::vector<uint8_t> ValidFile() {
  const std::string path = ::testing::TempDir() + "/qatk_" + std::to_string(::getpid()) + "_fuzz_base.qmob";
  auto w = MobileWriter::Create(path);
  QATK_CHECK(w.ok(), "create");
  Tokenizer tok;
  tok.tokens = {"<unk>", "<s>", "a", "bc"};
  tok.scores = {0, 0, -1, -2};
  tok.types = {2, 3, 1, 1};
  tok.unk_id = 0, tok.bos_id = 1;
  QATK_CHECK(w->SetTokenizer(tok).ok(), "tok");
  QATK_CHECK(w->SetConfigJson(R"({"vocab_size":4})").ok(), "config");
  QATK_CHECK(w->SetRecipeJson(R"({"recipe":null})").ok(), "recipe");
  TensorInfo a{"w4", DType::kInt4Channel, {3, 5}, ScaleType::kF16, ActMethod::kCalibrated, 0.5f};
  a.act_bits = 8;
  TensorInfo b{"w2", DType::kInt2Channel, {2, 8}, ScaleType::kF32};
  TensorInfo c{"norm", DType::kF16, {4}};
  QATK_CHECK(w->DeclareTensor(a).ok() && w->DeclareTensor(b).ok() && w->DeclareTensor(c).ok(),
             "declare");
  QATK_CHECK(w->WriteCodes(std::vector<int8_t>(15, -3), std::vector<float>{0.5f, 0.25f, 1.0f}).ok(),
             "w4");
  QATK_CHECK(w->WriteCodes(std::vector<int8_t>(16, 1), std::vector<float>{0.1f, 0.2f}).ok(), "w2");
  QATK_CHECK(w->WriteFloats(std::vector<float>{1, 2, 3, 4}).ok(), "norm");
  QATK_CHECK(w->Finish().ok(), "finish");
  auto s = ReadFileToString(path);
  QATK_CHECK(s.ok(), "read");
  return std::vector<uint8_t>(s->begin(), s->end());
}

// Touches every byte the parsed file exposes, so ASan sees any bad view.
void Exercise(const MobileFile& f) {
  for (const TensorInfo& t : f.tensors()) {
    std::vector<float> row(t.row_len());
    for (uint64_t r = 0; r < t.rows(); ++r) f.DequantizeRow(t, r, row.data());
  }
}

TEST(MobileFuzzTest, ValidFileParses) {
  const auto bytes = ValidFile();
  auto f = MobileFile::Parse(bytes, "mem");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->tensors().size(), 3u);
  Exercise(*f);
}

TEST(MobileFuzzTest, EveryTruncationIsACleanError) {
  const auto bytes = ValidFile();
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + n);  // own buffer: ASan-exact
    auto f = MobileFile::Parse(cut, "cut");
    ASSERT_FALSE(f.ok()) << "truncated to " << n << " bytes parsed";
    EXPECT_EQ(f.status().code(), absl::StatusCode::kDataLoss) << n << ": " << f.status();
  }
}

TEST(MobileFuzzTest, SeededMutationsNeverCrash) {
  const auto bytes = ValidFile();
  std::mt19937 rng(12345);
  int rejected = 0;
  const int kIters = 4000;
  for (int it = 0; it < kIters; ++it) {
    std::vector<uint8_t> m = bytes;
    const int n_mut = 1 + static_cast<int>(rng() % 4);
    for (int j = 0; j < n_mut; ++j) {
      const size_t pos = rng() % m.size();
      switch (rng() % 3) {
        case 0: m[pos] ^= static_cast<uint8_t>(1u << (rng() % 8)); break;
        case 1: m[pos] = static_cast<uint8_t>(rng()); break;
        default: m[pos] = (rng() % 2) ? 0xFF : 0x00; break;
      }
    }
    auto f = MobileFile::Parse(m, "mutated");
    if (f.ok()) {
      Exercise(*f);
    } else {
      ++rejected;
      EXPECT_FALSE(f.status().message().empty());
    }
  }
  // Most mutations hit checked fields; codes/padding bytes may stay valid.
  EXPECT_GT(rejected, kIters / 4);
}

void PutU32(std::vector<uint8_t>& b, size_t off, uint32_t v) { std::memcpy(&b[off], &v, 4); }

TEST(MobileFuzzTest, TargetedCorruptionsHaveDocumentedCodes) {
  const auto good = ValidFile();
  auto code_of = [](const std::vector<uint8_t>& b) { return MobileFile::Parse(b, "x").status().code(); };
  auto b = good;
  b[0] = 'X';
  EXPECT_EQ(code_of(b), absl::StatusCode::kDataLoss);
  b = good;
  PutU32(b, 4, kVersion + 1);  // a version this reader does not know
  EXPECT_EQ(code_of(b), absl::StatusCode::kUnimplemented);
  b = good;
  PutU32(b, 12, 1);  // flags
  EXPECT_EQ(code_of(b), absl::StatusCode::kUnimplemented);
  b = good;
  b.push_back(0);  // trailing byte: file_size mismatch
  EXPECT_EQ(code_of(b), absl::StatusCode::kDataLoss);
  // Duplicate name: rename "w2" to "w4" inside the table.
  b = good;
  auto f = MobileFile::Parse(good, "x");
  ASSERT_TRUE(f.ok());
  uint64_t table_off;
  std::memcpy(&table_off, &good[80], 8);
  bool renamed = false;
  for (size_t i = table_off; i + 2 < b.size() && !renamed; ++i) {
    if (b[i] == 'w' && b[i + 1] == '2') b[i + 1] = '4', renamed = true;
  }
  ASSERT_TRUE(renamed);
  EXPECT_EQ(code_of(b), absl::StatusCode::kInvalidArgument);
  // Non-finite scale of the f32-scaled tensor.
  b = good;
  const TensorInfo* w2 = f->FindTensor("w2");
  const float inf = INFINITY;
  std::memcpy(&b[f->data_offset() + w2->scales_offset], &inf, 4);
  EXPECT_EQ(code_of(b), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace qatk::mobile
