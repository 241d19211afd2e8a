// Reference codecs vs llama.cpp: golden bytes produced by ggml's own
// reference quantizers (scripts/gen_codec_fixtures.py, libggml-base.so from
// npm node-llama-cpp), plus property tests.
#include "formats/quant/codecs.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "formats/quant/fp16.h"
#include "gtest/gtest.h"
#include "tests/formats/test_util.h"

namespace qatk {
namespace {

// The fixture PRNG (documented in scripts/gen_codec_fixtures.py).
class XorShift32 {
 public:
  explicit XorShift32(uint32_t seed) : x_(seed) {}
  uint32_t Next() {
    x_ ^= x_ << 13;
    x_ ^= x_ >> 17;
    x_ ^= x_ << 5;
    return x_;
  }

 private:
  uint32_t x_;
};

std::vector<float> RandomValues(uint32_t seed, int n_blocks, int block) {
  static const float kScales[] = {1.0f, 0.01f, 100.0f, 3e-5f, 1000.0f, 6.0e4f};
  XorShift32 rng(seed);
  std::vector<float> out;
  for (int b = 0; b < n_blocks; ++b) {
    const float scale = kScales[b % 6];
    for (int i = 0; i < block; ++i) {
      const float u = static_cast<float>(rng.Next() >> 8) * std::ldexp(1.0f, -23) - 1.0f;
      out.push_back(u * scale);
    }
  }
  return out;
}

struct Fixture {
  uint32_t type_id = 0, n_random = 0, seed = 0;
  std::vector<float> x;
  std::vector<uint8_t> expected;
};

Fixture LoadFixture(const std::string& name) {
  std::ifstream in(std::string(QATK_SOURCE_DIR) + "/tests/formats/testdata/" + name,
                   std::ios::binary);
  Fixture f;
  char magic[4] = {};
  uint32_t n = 0, nbytes = 0;
  in.read(magic, 4);
  in.read(reinterpret_cast<char*>(&f.type_id), 4);
  in.read(reinterpret_cast<char*>(&n), 4);
  in.read(reinterpret_cast<char*>(&f.n_random), 4);
  in.read(reinterpret_cast<char*>(&f.seed), 4);
  EXPECT_TRUE(in && std::memcmp(magic, "QCF1", 4) == 0) << "bad fixture " << name;
  f.x.resize(in ? n : 0);
  in.read(reinterpret_cast<char*>(f.x.data()), f.x.size() * 4);
  in.read(reinterpret_cast<char*>(&nbytes), 4);
  f.expected.resize(in ? nbytes : 0);
  in.read(reinterpret_cast<char*>(f.expected.data()), f.expected.size());
  EXPECT_TRUE(in) << "truncated fixture " << name;
  return f;
}

class GoldenTest : public ::testing::TestWithParam<const char*> {};

TEST_P(GoldenTest, MatchesGgmlReferenceByteForByte) {
  const Fixture f = LoadFixture(GetParam());
  ASSERT_FALSE(f.x.empty());
  const TypeTraits* t = FindTypeTraits(f.type_id);
  ASSERT_NE(t, nullptr);
  // The random part must be what our copy of the PRNG produces.
  const std::vector<float> rnd = RandomValues(f.seed, f.n_random / (t->block_size == 1 ? 32 : t->block_size),
                                              t->block_size == 1 ? 32 : t->block_size);
  ASSERT_EQ(rnd.size(), f.n_random);
  EXPECT_EQ(std::memcmp(rnd.data(), f.x.data(), rnd.size() * 4), 0) << "PRNG differs from the script";
  std::vector<uint8_t> got(RowBytes(t->type, f.x.size()));
  // Inputs include +-inf for the f16/bf16 scalar cases: use the unchecked path.
  for (size_t i = 0; i < f.x.size(); ++i) {
    if (!std::isfinite(f.x[i])) {
      ASSERT_EQ(t->block_size, 1);
    }
  }
  if (t->type == GgmlType::kF16 || t->type == GgmlType::kBF16) {
    for (size_t i = 0; i < f.x.size(); ++i) {
      const uint16_t h = t->type == GgmlType::kF16 ? Fp32ToFp16(f.x[i]) : Fp32ToBf16(f.x[i]);
      std::memcpy(&got[2 * i], &h, 2);
    }
  } else if (std::string(GetParam()) == "q8_0_act.qcf") {
    // llama.cpp's x86 activation quantizer, not the _ref one.
    for (size_t b = 0; b < f.x.size() / 32; ++b) {
      QuantizeBlockQ8_0Act(f.x.data() + 32 * b, reinterpret_cast<BlockQ8_0*>(got.data()) + b);
    }
    // The row quantizer (AVX2 on this CPU when available) gives the same bytes.
    std::vector<uint8_t> row(got.size());
    QuantizeRowQ8_0Act(f.x.data(), reinterpret_cast<BlockQ8_0*>(row.data()), f.x.size() / 32);
    EXPECT_EQ(row, f.expected);
  } else {
    ASSERT_TRUE(QuantizeRow(t->type, f.x.data(), f.x.size(), got.data()).ok());
  }
  ASSERT_EQ(got.size(), f.expected.size());
  const size_t bytes_per = t->type_size;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i], f.expected[i]) << t->name << " byte " << i << " (block/element " << i / bytes_per
                                     << ", input " << f.x[(i / bytes_per) * t->block_size] << ")";
  }
}

INSTANTIATE_TEST_SUITE_P(Ggml, GoldenTest,
                         ::testing::Values("q4_0.qcf", "q8_0.qcf", "q2_0.qcf", "q8_0_act.qcf", "f16.qcf",
                                           "bf16.qcf"));

// The two Q8_0 rules are different quantizers: on the golden inputs the
// activation fixture differs from the weight fixture somewhere.
TEST(GoldenTest, ActivationRuleDiffersFromWeightRule) {
  const Fixture w = LoadFixture("q8_0.qcf"), a = LoadFixture("q8_0_act.qcf");
  ASSERT_EQ(w.expected.size(), a.expected.size());
  // Same edge blocks (after the random part) in both fixtures.
  const size_t edge = w.n_random / 32 * 34;
  EXPECT_NE(std::memcmp(w.expected.data() + edge, a.expected.data() + edge, w.expected.size() - edge), 0);
}

std::vector<float> Gaussianish(uint32_t seed, int n, float scale) {
  XorShift32 rng(seed);
  std::vector<float> v(n);
  for (float& x : v) {
    float s = 0;
    for (int k = 0; k < 4; ++k) s += static_cast<float>(rng.Next() >> 8) * std::ldexp(1.0f, -24) - 0.5f;
    x = s * scale;
  }
  return v;
}

// Max |x - dq(q(x))| per block, relative to the block's max |x|.
double WorstRelativeError(GgmlType type, const std::vector<float>& x) {
  std::vector<uint8_t> q(RowBytes(type, x.size()));
  EXPECT_TRUE(QuantizeRow(type, x.data(), x.size(), q.data()).ok());
  std::vector<float> y(x.size());
  DequantizeRow(type, q.data(), y.data(), y.size());
  const int bs = Traits(type).block_size;
  double worst = 0;
  for (size_t b = 0; b < x.size() / bs; ++b) {
    double amax = 0, err = 0;
    for (int j = 0; j < bs; ++j) {
      amax = std::max(amax, std::fabs(static_cast<double>(x[b * bs + j])));
      err = std::max(err, std::fabs(static_cast<double>(x[b * bs + j]) - y[b * bs + j]));
    }
    if (amax > 0) worst = std::max(worst, err / amax);
  }
  return worst;
}

TEST(CodecsTest, RoundTripErrorWithinBounds) {
  const std::vector<float> x = Gaussianish(7, 64 * 256, 2.0f);
  // Half a step of the code grid plus fp16 scale rounding (2^-11 relative).
  EXPECT_LE(WorstRelativeError(GgmlType::kQ8_0, x), 0.5 / 127 + 1e-3);
  // Q4_0 maps the extreme to -8; the opposite side clamps at +7: one full step.
  EXPECT_LE(WorstRelativeError(GgmlType::kQ4_0, x), 1.0 / 8 + 1e-3);
  EXPECT_LE(WorstRelativeError(GgmlType::kQ2_0, x), 0.5 + 1e-3);
  EXPECT_LE(WorstRelativeError(GgmlType::kF16, x), std::ldexp(1.0, -11));
  EXPECT_LE(WorstRelativeError(GgmlType::kBF16, x), std::ldexp(1.0, -8));
  EXPECT_EQ(WorstRelativeError(GgmlType::kF32, x), 0.0);
}

TEST(CodecsTest, Q4_0RequantizingDequantizedValuesIsIdempotent) {
  for (float scale : {1.0f, 1e-3f, 300.0f}) {
    const std::vector<float> x = Gaussianish(11, 32 * 512, scale);
    std::vector<uint8_t> q1(RowBytes(GgmlType::kQ4_0, x.size())), q2(q1.size());
    ASSERT_TRUE(QuantizeRow(GgmlType::kQ4_0, x.data(), x.size(), q1.data()).ok());
    std::vector<float> y(x.size());
    DequantizeRow(GgmlType::kQ4_0, q1.data(), y.data(), y.size());
    ASSERT_TRUE(QuantizeRow(GgmlType::kQ4_0, y.data(), y.size(), q2.data()).ok());
    EXPECT_EQ(q1, q2) << "scale " << scale;
  }
}

// Learned Q4_0 scales: with the reference's own d the bytes are the
// reference's; any other d gives clamp(trunc(x/d + 8.5), 0, 15) codes.
TEST(CodecsTest, Q4_0WithScaleIsTheReferenceAtTheReferenceScale) {
  for (float scale : {1.0f, 1e-3f, 300.0f, 1e-38f}) {
    const std::vector<float> x = Gaussianish(13, 32 * 256, scale);
    for (size_t b = 0; b < x.size() / 32; ++b) {
      uint8_t q[32];
      float d;
      Q4_0Codes(&x[32 * b], q, &d);
      BlockQ4_0 want, got;
      QuantizeBlockQ4_0(&x[32 * b], &want);
      QuantizeBlockQ4_0WithScale(&x[32 * b], d, &got);
      ASSERT_EQ(std::memcmp(&want, &got, sizeof(want)), 0) << "scale " << scale << " block " << b;
    }
  }
}

TEST(CodecsTest, Q4_0WithScaleClampsAndKeepsTheSign) {
  std::vector<float> x(32);
  for (int i = 0; i < 32; ++i) x[i] = static_cast<float>(i - 16) * 0.25f;  // -4 .. 3.75
  uint8_t q[32];
  Q4_0CodesWithScale(x.data(), 0.25f, q);  // x/d = i - 16: clamps below -8 and above 7
  for (int i = 0; i < 32; ++i) EXPECT_EQ(q[i], std::min(std::max(i - 16 + 8, 0), 15)) << i;
  Q4_0CodesWithScale(x.data(), -0.5f, q);  // a negative d mirrors the grid
  for (int i = 0; i < 32; ++i) {
    const float v = x[i] / -0.5f + 8.5f;
    EXPECT_EQ(q[i], static_cast<int>(std::trunc(std::min(std::max(v, 0.0f), 15.0f)))) << i;
  }
  Q4_0CodesWithScale(x.data(), 0.0f, q);  // d = 0: id = 0, every code 8
  for (int i = 0; i < 32; ++i) EXPECT_EQ(q[i], 8);
  BlockQ4_0 b;
  QuantizeBlockQ4_0WithScale(x.data(), 0.3f, &b);
  std::vector<float> y(32);
  DequantizeBlockQ4_0(b, y.data());
  EXPECT_EQ(y[0], -8 * Fp16ToFp32(Fp32ToFp16(0.3f)));  // -4 / 0.3 clamps to code 0
}

TEST(CodecsTest, Q4_0AllZeroBlock) {
  const std::vector<float> x(32, 0.0f);
  BlockQ4_0 b;
  QuantizeBlockQ4_0(x.data(), &b);
  EXPECT_EQ(b.d, 0x8000);  // d = 0 / -8 = -0
  for (uint8_t q : b.qs) EXPECT_EQ(q, 0x88);
}

TEST(CodecsTest, NonFiniteInputRejected) {
  for (GgmlType t : {GgmlType::kF32, GgmlType::kF16, GgmlType::kBF16, GgmlType::kQ4_0, GgmlType::kQ8_0,
                     GgmlType::kQ2_0}) {
    for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                      -std::numeric_limits<float>::infinity()}) {
      std::vector<float> x(64, 1.0f);
      x[37] = bad;
      std::vector<uint8_t> q(RowBytes(t, 64));
      testing::ExpectError(QuantizeRow(t, x.data(), 64, q.data()), absl::StatusCode::kInvalidArgument,
                           {"non-finite", "element 37"});
    }
  }
}

TEST(CodecsTest, RowNotMultipleOfBlockRejected) {
  std::vector<float> x(48, 1.0f);
  std::vector<uint8_t> q(64);
  testing::ExpectError(QuantizeRow(GgmlType::kQ2_0, x.data(), 48, q.data()),
                       absl::StatusCode::kInvalidArgument, {"block size 64"});
}

}  // namespace
}  // namespace qatk
