// fp16/bf16 conversions: exhaustive round trip, rounding rules, specials, and
// agreement with ggml (hashes of ggml's outputs in testdata/fp16_tables.txt).
#include "formats/quant/fp16.h"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace qatk {
namespace {

bool IsHalfNaN(uint16_t h) { return (h & 0x7C00) == 0x7C00 && (h & 0x03FF) != 0; }

TEST(Fp16Test, ExhaustiveRoundTripIsIdentityForNonNaN) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = Fp16ToFp32(static_cast<uint16_t>(h));
    if (IsHalfNaN(static_cast<uint16_t>(h))) {
      EXPECT_TRUE(std::isnan(f)) << h;
      continue;
    }
    ASSERT_EQ(Fp32ToFp16(f), h) << "half 0x" << std::hex << h << " -> " << f;
  }
}

TEST(Fp16Test, KnownValues) {
  EXPECT_EQ(Fp32ToFp16(1.0f), 0x3C00);
  EXPECT_EQ(Fp32ToFp16(-2.0f), 0xC000);
  EXPECT_EQ(Fp32ToFp16(65504.0f), 0x7BFF);
  EXPECT_EQ(Fp32ToFp16(0.0f), 0x0000);
  EXPECT_EQ(Fp32ToFp16(-0.0f), 0x8000);
  EXPECT_EQ(Fp16ToFp32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(Fp16ToFp32(0x0400), std::ldexp(1.0f, -14));  // smallest normal
}

TEST(Fp16Test, RoundsToNearestEvenOnTies) {
  // 1 + 2^-11 lies halfway between 1 (even mantissa) and 1 + 2^-10.
  EXPECT_EQ(Fp32ToFp16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);
  // 1 + 3*2^-11 lies halfway between 1+2^-10 (odd) and 1+2^-9 (even).
  EXPECT_EQ(Fp32ToFp16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);
  // Just above the tie rounds up.
  EXPECT_EQ(Fp32ToFp16(std::nextafter(1.0f + std::ldexp(1.0f, -11), 2.0f)), 0x3C01);
  // Subnormal ties: 2^-25 is halfway between 0 and 2^-24 -> 0 (even).
  EXPECT_EQ(Fp32ToFp16(std::ldexp(1.0f, -25)), 0x0000);
  EXPECT_EQ(Fp32ToFp16(3 * std::ldexp(1.0f, -25)), 0x0002);
  // 65520 is the tie between 65504 and 2^16 (inf): rounds to inf.
  EXPECT_EQ(Fp32ToFp16(65519.996f), 0x7BFF);
  EXPECT_EQ(Fp32ToFp16(65520.0f), 0x7C00);
}

TEST(Fp16Test, SpecialValues) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(Fp32ToFp16(inf), 0x7C00);
  EXPECT_EQ(Fp32ToFp16(-inf), 0xFC00);
  EXPECT_EQ(Fp32ToFp16(1e6f), 0x7C00);
  EXPECT_EQ(Fp32ToFp16(std::numeric_limits<float>::quiet_NaN()), 0x7E00);
  EXPECT_TRUE(std::isinf(Fp16ToFp32(0x7C00)));
  EXPECT_TRUE(std::isnan(Fp16ToFp32(0x7E00)));
  EXPECT_EQ(Fp32ToFp16(1e-10f), 0x0000);  // underflows to +0
  EXPECT_EQ(Fp32ToFp16(-1e-10f), 0x8000);
}

TEST(Bf16Test, RoundTripAndRounding) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = Bf16ToFp32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(Fp32ToBf16(f), h) << h;
  }
  EXPECT_EQ(Fp32ToBf16(BitsFloat(0x3F808000u)), 0x3F80);  // tie -> even
  EXPECT_EQ(Fp32ToBf16(BitsFloat(0x3F818000u)), 0x3F82);  // tie -> even (up)
  EXPECT_EQ(Fp32ToBf16(BitsFloat(0x7F800001u)) & 0x7FC0, 0x7FC0);  // NaN stays NaN
}

// FNV-1a-64, the same hash gen_codec_fixtures.py stores.
uint64_t Fnv1a(const std::vector<uint8_t>& b) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (uint8_t c : b) {
    h ^= c;
    h *= 0x100000001B3ull;
  }
  return h;
}

template <typename T>
void Append(std::vector<uint8_t>* b, T v) {
  const auto* p = reinterpret_cast<const uint8_t*>(&v);
  b->insert(b->end(), p, p + sizeof(T));
}

std::map<std::string, uint64_t> ReadTables() {
  std::ifstream in(std::string(QATK_SOURCE_DIR) + "/tests/formats/testdata/fp16_tables.txt");
  std::map<std::string, uint64_t> m;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ls(line);
    std::string key, hex;
    ls >> key >> hex;
    m[key] = std::stoull(hex, nullptr, 16);
  }
  return m;
}

TEST(Fp16Test, MatchesGgmlExhaustivelyAndOnASweep) {
  const auto tables = ReadTables();
  ASSERT_EQ(tables.size(), 3u) << "testdata/fp16_tables.txt missing or malformed";
  std::vector<uint8_t> h2f, f2h, f2b;
  for (uint32_t h = 0; h < 65536; ++h) Append(&h2f, Fp16ToFp32(static_cast<uint16_t>(h)));
  for (uint32_t i = 0; i < 65536; ++i) {
    const uint32_t u = i * 65521u * 997u;
    if ((u & 0x7F800000u) == 0x7F800000u && (u & 0x7FFFFFu) != 0) continue;  // NaN
    Append(&f2h, Fp32ToFp16(BitsFloat(u)));
    Append(&f2b, Fp32ToBf16(BitsFloat(u)));
  }
  EXPECT_EQ(Fnv1a(h2f), tables.at("fp16_to_fp32_all"));
  EXPECT_EQ(Fnv1a(f2h), tables.at("fp32_to_fp16_sweep"));
  EXPECT_EQ(Fnv1a(f2b), tables.at("fp32_to_bf16_sweep"));
}

}  // namespace
}  // namespace qatk
