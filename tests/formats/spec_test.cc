// QuantSpec parsing/printing and the reference intN codec.
#include "formats/quant/spec.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "formats/quant/codecs.h"
#include "formats/quant/fp16.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/formats/test_util.h"

namespace qatk {
namespace {

using json = nlohmann::json;

QuantSpec Parse(const char* text, QuantSlot slot = QuantSlot::kWeight) {
  auto s = ParseQuantSpec(json::parse(text), slot, "t");
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *s : QuantSpec();
}

TEST(QuantSpecTest, BlockDefaults) {
  const QuantSpec q4 = Parse(R"({"scheme": "q4_0"})");
  EXPECT_EQ(q4.scheme, QuantScheme::kQ4_0);
  EXPECT_EQ(q4.bits, 4);
  EXPECT_EQ(q4.block_size(), 32);
  EXPECT_EQ(q4.Qn(), 8);
  EXPECT_EQ(q4.Qp(), 7);
  EXPECT_EQ(q4.scale_type, ScaleType::kF16);
  EXPECT_EQ(q4.ggml_type(), GgmlType::kQ4_0);
  EXPECT_EQ(Parse(R"({"scheme": "q2_0"})").block_size(), 64);
  EXPECT_EQ(Parse(R"({"scheme": "q8_0_act"})", QuantSlot::kInput).ggml_type(), GgmlType::kQ8_0);
  EXPECT_FALSE(q4.has_stored_scale());
  const QuantSpec q4l = Parse(R"({"scheme": "q4_0", "scale_rule": "learned"})");
  EXPECT_EQ(q4l.scale_rule, ScaleRule::kLearned);
  EXPECT_TRUE(q4l.has_stored_scale());
  EXPECT_EQ(q4l.ggml_type(), GgmlType::kQ4_0);
  EXPECT_EQ(DescribeQuantSpec(q4l), "q4_0 learned");
}

TEST(QuantSpecTest, IntRanges) {
  QuantSpec s = Parse(R"({"scheme": "int_channel", "bits": 4})");
  EXPECT_EQ(s.Qn(), 8);
  EXPECT_EQ(s.Qp(), 7);
  s = Parse(R"({"scheme": "int_channel", "bits": 2, "narrow_range": true})");
  EXPECT_EQ(s.Qn(), 1);
  EXPECT_EQ(s.Qp(), 1);
  s = Parse(R"({"scheme": "int_channel", "bits": 2})");
  EXPECT_EQ(s.Qn(), 2);
  EXPECT_EQ(s.Qp(), 1);
  EXPECT_FALSE(s.has_stored_scale());  // absmax
  EXPECT_TRUE(Parse(R"({"scheme": "int_channel", "scale_rule": "learned"})").has_stored_scale());
  EXPECT_TRUE(Parse(R"({"scheme": "int_tensor"})", QuantSlot::kInput).has_stored_scale());
}

TEST(QuantSpecTest, JsonRoundTrip) {
  for (const char* text : {R"({"scheme": "q4_0"})", R"({"scheme": "q4_0", "scale_rule": "learned"})", R"({"scheme": "int_channel", "bits": 3, "scale_rule": "mse"})",
                           R"({"scheme": "int_channel", "bits": 4, "rounding": "half_even", "scale_type": "f32"})"}) {
    const QuantSpec a = Parse(text);
    const QuantSpec b = Parse(QuantSpecToJson(a).dump().c_str());
    EXPECT_EQ(QuantSpecToJson(a), QuantSpecToJson(b)) << text;
    EXPECT_EQ(a.bits, b.bits);
    EXPECT_EQ(a.rounding, b.rounding);
    EXPECT_EQ(a.scale_rule, b.scale_rule);
  }
  const QuantSpec c = Parse(R"({"scheme": "int_tensor", "observer": "percentile", "percentile": 99.9})",
                            QuantSlot::kInput);
  const QuantSpec d = Parse(QuantSpecToJson(c).dump().c_str(), QuantSlot::kInput);
  EXPECT_EQ(d.observer, ObserverKind::kPercentile);
  EXPECT_DOUBLE_EQ(d.percentile, 99.9);
}

absl::Status ParseError(const char* text, QuantSlot slot = QuantSlot::kWeight) {
  return ParseQuantSpec(json::parse(text), slot, "r.json: rules[0].weight").status();
}

TEST(QuantSpecTest, ErrorsWithHints) {
  using testing::ExpectError;
  const auto kInv = absl::StatusCode::kInvalidArgument;
  ExpectError(ParseError(R"({"scheme": "q4_1"})"), kInv, {"rules[0].weight", "\"q4_1\"", "did you mean \"q4_0\""});
  ExpectError(ParseError(R"({"scheme": "int_channel", "bitz": 4})"), kInv, {"unknown key \"bitz\"", "did you mean \"bits\""});
  ExpectError(ParseError(R"({"scheme": "int_channel", "scale_rule": "lerned"})"), kInv, {"did you mean \"learned\""});
  ExpectError(ParseError(R"({"scheme": "q4_0", "bits": 3})"), kInv, {"only \"scheme\""});
  ExpectError(ParseError(R"({"scheme": "q8_0", "scale_rule": "learned"})"), kInv, {"only \"scheme\""});
  ExpectError(ParseError(R"({"scheme": "q4_0", "scale_rule": "mse"})"), kInv, {"\"learned\""});
  ExpectError(ParseError(R"({"scheme": "int_channel", "bits": 9})"), kInv, {"bits must be in 2..8"});
  ExpectError(ParseError(R"({"scheme": "int_tensor"})"), kInv, {"cannot be used for a weight"});
  ExpectError(ParseError(R"({"scheme": "q4_0"})", QuantSlot::kInput), kInv, {"cannot be used for a input"});
  ExpectError(ParseError(R"({"scheme": "int_channel", "rounding": "ggml"})"), kInv, {"ggml"});
  EXPECT_TRUE(ParseError(R"({"scheme": "int_token"})", QuantSlot::kInput).ok());
  ExpectError(ParseError(R"({"scheme": "int_token", "scale_rule": "learned"})", QuantSlot::kInput), kInv,
              {"int_token"});
  ExpectError(ParseError(R"({"bits": 4})"), kInv, {"missing \"scheme\""});
  ExpectError(ParseError(R"("q4_0")"), kInv, {"expected an object"});
  ExpectError(ParseError(R"({"scheme": "int_tensor", "percentile": 101})", QuantSlot::kInput), kInv,
              {"percentile"});
}

TEST(QuantSpecTest, ClosestName) {
  EXPECT_EQ(ClosestName("schem", {"scheme", "bits"}), "scheme");
  EXPECT_EQ(ClosestName("zzzzzzzz", {"scheme", "bits"}), "");
}

TEST(IntCodecTest, StoreScaleRoundsAndClamps) {
  QuantSpec s = Parse(R"({"scheme": "int_channel", "bits": 8})");
  EXPECT_EQ(StoreScale(s, 0.1f), RoundToFp16(0.1f));
  EXPECT_NE(StoreScale(s, 0.1f), 0.1f);
  EXPECT_EQ(StoreScale(s, 1e6f), 65504.0f);
  s.scale_type = ScaleType::kF32;
  EXPECT_EQ(StoreScale(s, 0.1f), 0.1f);
}

TEST(IntCodecTest, RoundingModes) {
  QuantSpec s = Parse(R"({"scheme": "int_channel", "bits": 8})");
  EXPECT_EQ(RoundValue(s, 2.5f), 3.0f);
  EXPECT_EQ(RoundValue(s, -2.5f), -3.0f);
  EXPECT_EQ(RoundValue(s, 0.49999997f), 0.0f);
  s.rounding = Rounding::kHalfEven;
  EXPECT_EQ(RoundValue(s, 2.5f), 2.0f);
  EXPECT_EQ(RoundValue(s, -2.5f), -2.0f);
  EXPECT_EQ(RoundValue(s, 3.5f), 4.0f);
}

TEST(IntCodecTest, AbsmaxQuantizeDequantize) {
  const QuantSpec s = Parse(R"({"scheme": "int_channel", "bits": 4, "scale_type": "f32"})");
  const float x[4] = {-1.75f, 0.0f, 0.625f, 0.375f};
  const float sc = ChooseScaleAbsmax(s, x, 4);
  EXPECT_EQ(sc, 0.25f);
  int8_t q[4];
  QuantizeWithScale(s, x, 4, sc, q);
  EXPECT_EQ(q[0], -7);
  EXPECT_EQ(q[1], 0);
  EXPECT_EQ(q[2], 3);  // 2.5 -> 3 away from zero
  EXPECT_EQ(q[3], 2);  // 1.5 -> 2
  float y[4];
  DequantizeWithScale(q, 4, sc, y);
  EXPECT_EQ(y[0], -7.0f * sc);
  EXPECT_EQ(ChooseScaleAbsmax(s, x + 1, 1), 0.0f);
}

TEST(IntCodecTest, ClampsToRange) {
  const QuantSpec s = Parse(R"({"scheme": "int_channel", "bits": 2})");
  const float x[3] = {-10.0f, 10.0f, 0.6f};
  int8_t q[3];
  QuantizeWithScale(s, x, 3, 1.0f, q);
  EXPECT_EQ(q[0], -2);
  EXPECT_EQ(q[1], 1);
  EXPECT_EQ(q[2], 1);
}

TEST(IntCodecTest, MseNeverWorseThanAbsmax) {
  std::mt19937 rng(7);
  std::student_t_distribution<float> heavy(2.0f);
  for (int bits : {2, 3, 4}) {
    QuantSpec s = Parse(R"({"scheme": "int_channel", "scale_rule": "mse"})");
    s.bits = bits;
    std::vector<float> x(512), y(512);
    for (float& v : x) v = heavy(rng);
    const float sa = ChooseScaleAbsmax(s, x.data(), 512);
    const float sm = ChooseScaleMse(s, x.data(), 512);
    EXPECT_LT(std::fabs(sm), sa) << bits;  // heavy tails: clipping pays
    EXPECT_LE(FakeQuantizeWithScale(s, x.data(), 512, sm, y.data()),
              FakeQuantizeWithScale(s, x.data(), 512, sa, y.data()));
    EXPECT_EQ(ChooseScale(s, x.data(), 512), sm);
  }
}

// int2 (-2..1) on a row with one large positive value: a positive scale can
// give it only +1*s, so the search mirrors the range (negative scale, -2 ->
// +2|s|) and the error drops; the same row negated keeps a positive scale; a
// narrow range (symmetric) never goes negative.
TEST(IntCodecTest, MseMirrorsALopsidedRange) {
  QuantSpec s = Parse(R"({"scheme": "int_channel", "bits": 2, "scale_rule": "mse"})");
  std::vector<float> x = {1.0f, 0.45f, 0.5f, -0.5f, 0.1f, -0.05f, 0.55f, 0.0f}, y(8);
  const float sm = ChooseScaleMse(s, x.data(), 8);
  EXPECT_LT(sm, 0.0f);
  float best_positive = std::numeric_limits<float>::infinity();
  for (int k = 1; k <= 100; ++k) {
    const float e = static_cast<float>(FakeQuantizeWithScale(s, x.data(), 8, StoreScale(s, 0.01f * k), y.data()));
    best_positive = std::min(best_positive, e);
  }
  EXPECT_LT(FakeQuantizeWithScale(s, x.data(), 8, sm, y.data()), 0.5 * best_positive);
  std::vector<int8_t> q(8);
  QuantizeWithScale(s, x.data(), 8, sm, q.data());
  EXPECT_EQ(q[0], -2);  // the largest value on the long side
  for (float& v : x) v = -v;
  EXPECT_EQ(ChooseScaleMse(s, x.data(), 8), -sm);
  s.narrow_range = true;
  EXPECT_GT(ChooseScaleMse(s, x.data(), 8), 0.0f);
  for (float& v : x) v = -v;
  EXPECT_GT(ChooseScaleMse(s, x.data(), 8), 0.0f);
}

TEST(IntCodecTest, QuantizeMatrixRoundTrip) {
  std::mt19937 rng(1);
  std::normal_distribution<float> n(0, 1);
  std::vector<float> w(8 * 64);
  for (float& v : w) v = n(rng);
  const QuantSpec s = Parse(R"({"scheme": "int_channel", "bits": 4})");
  auto m = QuantizeMatrix(s, w.data(), 8, 64, {});
  ASSERT_TRUE(m.ok()) << m.status();
  const std::vector<float> y = DequantizeMatrix(*m);
  for (int r = 0; r < 8; ++r) {
    EXPECT_EQ(m->scales[r], ChooseScaleAbsmax(s, &w[r * 64], 64));
    std::vector<float> want(64);
    FakeQuantizeWithScale(s, &w[r * 64], 64, m->scales[r], want.data());
    for (int c = 0; c < 64; ++c) EXPECT_EQ(y[r * 64 + c], want[c]);
  }
  // Given scales are Store()d and used.
  auto m2 = QuantizeMatrix(s, w.data(), 8, 64, std::vector<float>(8, 0.1f));
  ASSERT_TRUE(m2.ok());
  EXPECT_EQ(m2->scales[3], RoundToFp16(0.1f));
  // Block schemes give ggml rows; bad shapes and values are errors.
  const QuantSpec q4 = Parse(R"({"scheme": "q4_0"})");
  auto b = QuantizeMatrix(q4, w.data(), 8, 64, {});
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->blocks.size(), 8u * 2 * 18);
  EXPECT_FALSE(QuantizeMatrix(q4, w.data(), 8, 48, {}).ok());
  // Learned q4_0: one d per block; the bytes are QuantizeBlockQ4_0WithScale's.
  std::vector<float> d(8 * 2);
  for (size_t i = 0; i < d.size(); ++i) d[i] = 0.05f * static_cast<float>(i) - 0.4f;
  auto bl = QuantizeMatrix(q4, w.data(), 8, 64, d);
  ASSERT_TRUE(bl.ok()) << bl.status();
  for (int i = 0; i < 16; ++i) {
    BlockQ4_0 want;
    QuantizeBlockQ4_0WithScale(&w[32 * i], d[i], &want);
    EXPECT_EQ(std::memcmp(&want, bl->blocks.data() + 18 * i, 18), 0) << "block " << i;
  }
  testing::ExpectError(QuantizeMatrix(q4, w.data(), 8, 64, std::vector<float>(8, 0.1f)).status(),
                       absl::StatusCode::kInvalidArgument, {"8 scales", "16"});
  d[3] = std::numeric_limits<float>::infinity();
  testing::ExpectError(QuantizeMatrix(q4, w.data(), 8, 64, d).status(), absl::StatusCode::kInvalidArgument,
                       {"invalid scale", "row 1 block 1"});
  w[5] = std::nanf("");
  EXPECT_FALSE(QuantizeMatrix(s, w.data(), 8, 64, {}).ok());
}

}  // namespace
}  // namespace qatk
