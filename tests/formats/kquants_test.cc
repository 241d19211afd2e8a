// K-quant codecs vs llama.cpp, byte for byte:
//   - live: dlopen libggml-base.so from tests/interop/node_modules (npm
//     node-llama-cpp) and compare ggml_quantize_chunk (with and without an
//     importance matrix), dequantize_row_q{4,6}_K and quantize_row_q8_K_ref
//     with ours on the inputs below (skipped without node_modules);
//   - offline: the same comparison against tests/formats/testdata/kquants.qkf,
//     written by the live test with QATK_WRITE_KQUANT_FIXTURES=1.
#include "formats/quant/kquants.h"

#include <dlfcn.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "formats/quant/codecs.h"
#include "formats/quant/fp16.h"
#include "gtest/gtest.h"
#include "tests/formats/test_util.h"

namespace qatk {
namespace {

constexpr int kCols = 512;  // two super-blocks per row: the weights index by column

class XorShift32 {
 public:
  explicit XorShift32(uint32_t seed) : x_(seed) {}
  uint32_t Next() {
    x_ ^= x_ << 13;
    x_ ^= x_ >> 17;
    x_ ^= x_ << 5;
    return x_;
  }
  float Uniform() { return static_cast<float>(Next() >> 8) * std::ldexp(1.0f, -23) - 1.0f; }  // [-1, 1)

 private:
  uint32_t x_;
};

// Rows of kCols values: random rows at several scales, then edge cases
// (the cases of codecs_test's fixtures, per super-block and mixed within one).
std::vector<float> Inputs() {
  std::vector<float> x;
  XorShift32 rng(0x4B515541);
  const float kScales[] = {1.0f, 0.01f, 100.0f, 3e-5f, 1000.0f, 6.0e4f};
  for (float s : kScales) {
    for (int i = 0; i < kCols; ++i) x.push_back(rng.Uniform() * s);
  }
  auto row = [&](auto f) {
    for (int i = 0; i < kCols; ++i) x.push_back(static_cast<float>(f(i)));
  };
  row([](int) { return 0.0; });
  row([](int i) { return i == kCols - 1 ? -2.5 : 0.0; });
  row([](int i) { return (i % 16) - 8 + 0.5; });             // ties
  row([](int i) { return -((i % 16) - 8 + 0.5); });
  row([](int i) { return (i % 64) - 32 + 0.5; });            // Q6_K-sized ties
  row([](int i) { return 1.0 + 0.25 * (i % 7); });           // all positive: min clamps to 0
  row([](int i) { return -1.0 - 0.25 * (i % 7); });          // all negative
  row([](int) { return 2.0; });                              // constant
  row([](int i) { return i % 3 == 0 ? 1e-40 : (i % 3 == 1 ? -3e-41 : 0.0); });  // subnormal
  row([](int i) { return 1e-36 * ((i % 5) - 2); });
  row([](int i) { return 1e-20 * ((i % 5) - 2); });          // below ggml's group epsilon
  row([](int i) { return 6e-8 * ((i % 9) - 4); });
  row([](int i) { return 6.0e4 * ((i % 11) - 5) / 5.0; });   // huge
  row([](int i) { return 1.0e6 * ((i % 7) - 3) / 3.0; });
  row([](int i) { return 3.0e37 * ((i % 7) - 3) / 3.0; });   // max - min near FLT_MAX
  // Sub-blocks of very different magnitude in one super-block.
  row([](int i) {
    const double s[] = {1.0, 1e-4, 0.0, 300.0, 1e-30, 2.0, -1.0, 5e-3};
    return s[(i / 32) % 8] * (((i * 37) % 29) - 14) / 14.0;
  });
  // One outlier per super-block, the rest small.
  row([&](int i) { return i % 256 == 100 ? 50.0 : 0.01 * ((i * 13) % 17 - 8); });
  XorShift32 r2(77);
  row([&](int i) { return (i % 32 < 4 ? 20.0 : 1.0) * r2.Uniform(); });
  return x;
}

// Importance weights per column (one imatrix entry): positive, with a few
// zeros and a wide range, as llama-imatrix produces.
std::vector<float> Weights() {
  XorShift32 rng(0x1A7812C5);
  std::vector<float> w(kCols);
  for (int i = 0; i < kCols; ++i) {
    const float u = 0.5f * (rng.Uniform() + 1.0f);
    w[i] = i % 61 == 0 ? 0.0f : u * u * (i % 5 == 0 ? 100.0f : 1.0f);
  }
  for (int i = 64; i < 96; ++i) w[i] = 0.0f;  // one all-zero sub-block
  return w;
}

// Random block bytes for dequantization, with finite fp16 scales.
std::vector<uint8_t> RandomBlocks(GgmlType t, int n_blocks, uint32_t seed) {
  XorShift32 rng(seed);
  std::vector<uint8_t> b(static_cast<size_t>(n_blocks) * Traits(t).type_size);
  for (uint8_t& v : b) v = static_cast<uint8_t>(rng.Next() >> 24);
  for (int i = 0; i < n_blocks; ++i) {
    uint8_t* blk = b.data() + static_cast<size_t>(i) * Traits(t).type_size;
    const uint16_t d = Fp32ToFp16(rng.Uniform() * 0.1f), dmin = Fp32ToFp16(rng.Uniform() * 0.1f);
    if (t == GgmlType::kQ4_K) {
      std::memcpy(blk, &d, 2);
      std::memcpy(blk + 2, &dmin, 2);
    } else {
      std::memcpy(blk + 208, &d, 2);
    }
  }
  return b;
}

// Our outputs for every case, by name (the fixture's keys).
std::map<std::string, std::vector<uint8_t>> Ours() {
  const std::vector<float> x = Inputs(), w = Weights();
  const int64_t rows = static_cast<int64_t>(x.size()) / kCols;
  std::map<std::string, std::vector<uint8_t>> out;
  for (GgmlType t : {GgmlType::kQ4_K, GgmlType::kQ6_K}) {
    for (bool im : {false, true}) {
      std::vector<uint8_t> q(rows * RowBytes(t, kCols));
      EXPECT_TRUE(QuantizeRows(t, x.data(), rows, kCols, im ? w.data() : nullptr, q.data()).ok());
      out[std::string(Traits(t).name) + (im ? "_imatrix" : "")] = q;
    }
    const std::vector<uint8_t> rb = RandomBlocks(t, 8, t == GgmlType::kQ4_K ? 5 : 6);
    std::vector<float> y(8 * kQK_K);
    DequantizeRow(t, rb.data(), y.data(), static_cast<int64_t>(y.size()));
    std::vector<uint8_t> yb(y.size() * 4);
    std::memcpy(yb.data(), y.data(), yb.size());
    out[std::string("dequant_") + Traits(t).name] = yb;
  }
  std::vector<BlockQ8_K> q8(x.size() / kQK_K);
  QuantizeRowQ8_K(x.data(), q8.data(), static_cast<int64_t>(x.size()));
  std::vector<uint8_t> qb(q8.size() * sizeof(BlockQ8_K));
  std::memcpy(qb.data(), q8.data(), qb.size());
  out["q8_K"] = qb;
  return out;
}

// The same from libggml-base.so; empty when the library is absent.
struct Ggml {
  void* h = nullptr;
  size_t (*quantize_chunk)(int, const float*, void*, int64_t, int64_t, int64_t, const float*) = nullptr;
  void (*dequant_q4_K)(const void*, float*, int64_t) = nullptr;
  void (*dequant_q6_K)(const void*, float*, int64_t) = nullptr;
  void (*q8_K_ref)(const float*, void*, int64_t) = nullptr;
};

std::string GgmlBasePath() {
  return std::string(QATK_SOURCE_DIR) +
         "/tests/interop/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libggml-base.so";
}

bool LoadGgml(Ggml* g, std::string* why) {
  const std::string path = GgmlBasePath();
  if (!std::ifstream(path).good()) {
    *why = "no " + path + " (npm ci in tests/interop)";
    return false;
  }
  g->h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (g->h == nullptr) {
    *why = dlerror();
    return false;
  }
  g->quantize_chunk = reinterpret_cast<decltype(g->quantize_chunk)>(dlsym(g->h, "ggml_quantize_chunk"));
  g->dequant_q4_K = reinterpret_cast<decltype(g->dequant_q4_K)>(dlsym(g->h, "dequantize_row_q4_K"));
  g->dequant_q6_K = reinterpret_cast<decltype(g->dequant_q6_K)>(dlsym(g->h, "dequantize_row_q6_K"));
  g->q8_K_ref = reinterpret_cast<decltype(g->q8_K_ref)>(dlsym(g->h, "quantize_row_q8_K_ref"));
  if (!g->quantize_chunk || !g->dequant_q4_K || !g->dequant_q6_K || !g->q8_K_ref) {
    *why = "libggml-base.so lacks a K-quant symbol";
    return false;
  }
  return true;
}

std::map<std::string, std::vector<uint8_t>> Theirs(const Ggml& g) {
  const std::vector<float> x = Inputs(), w = Weights();
  const int64_t rows = static_cast<int64_t>(x.size()) / kCols;
  std::map<std::string, std::vector<uint8_t>> out;
  for (GgmlType t : {GgmlType::kQ4_K, GgmlType::kQ6_K}) {
    for (bool im : {false, true}) {
      std::vector<uint8_t> q(rows * RowBytes(t, kCols));
      g.quantize_chunk(static_cast<int>(t), x.data(), q.data(), 0, rows, kCols, im ? w.data() : nullptr);
      out[std::string(Traits(t).name) + (im ? "_imatrix" : "")] = q;
    }
    const std::vector<uint8_t> rb = RandomBlocks(t, 8, t == GgmlType::kQ4_K ? 5 : 6);
    std::vector<float> y(8 * kQK_K);
    (t == GgmlType::kQ4_K ? g.dequant_q4_K : g.dequant_q6_K)(rb.data(), y.data(),
                                                             static_cast<int64_t>(y.size()));
    std::vector<uint8_t> yb(y.size() * 4);
    std::memcpy(yb.data(), y.data(), yb.size());
    out[std::string("dequant_") + Traits(t).name] = yb;
  }
  std::vector<BlockQ8_K> q8(x.size() / kQK_K);
  std::memset(q8.data(), 0, q8.size() * sizeof(BlockQ8_K));  // ggml skips bsums of all-zero blocks
  g.q8_K_ref(x.data(), q8.data(), static_cast<int64_t>(x.size()));
  std::vector<uint8_t> qb(q8.size() * sizeof(BlockQ8_K));
  std::memcpy(qb.data(), q8.data(), qb.size());
  out["q8_K"] = qb;
  return out;
}

size_t UnitBytes(const std::string& name) {
  if (name.rfind("q4_K", 0) == 0) return sizeof(BlockQ4_K);
  if (name.rfind("q6_K", 0) == 0) return sizeof(BlockQ6_K);
  if (name == "q8_K") return sizeof(BlockQ8_K);
  return 4;
}

void ExpectSame(const std::map<std::string, std::vector<uint8_t>>& want,
                const std::map<std::string, std::vector<uint8_t>>& got) {
  ASSERT_EQ(want.size(), got.size());
  for (const auto& [name, w] : want) {
    const auto it = got.find(name);
    ASSERT_NE(it, got.end()) << name;
    ASSERT_EQ(w.size(), it->second.size()) << name;
    for (size_t i = 0; i < w.size(); ++i) {
      ASSERT_EQ(w[i], it->second[i]) << name << ": byte " << i << " (block/value " << i / UnitBytes(name)
                                     << ", row " << i / UnitBytes(name) / (kCols / kQK_K) << ")";
    }
  }
}

const char kFixture[] = "/tests/formats/testdata/kquants.qkf";

// File: "QKF1" | u32 n_cases | per case: u32 name_len | name | u32 n | n bytes.
void WriteFixture(const std::map<std::string, std::vector<uint8_t>>& m) {
  std::ofstream f(std::string(QATK_SOURCE_DIR) + kFixture, std::ios::binary);
  const uint32_t n = static_cast<uint32_t>(m.size());
  f.write("QKF1", 4);
  f.write(reinterpret_cast<const char*>(&n), 4);
  for (const auto& [name, bytes] : m) {
    const uint32_t nl = static_cast<uint32_t>(name.size()), nb = static_cast<uint32_t>(bytes.size());
    f.write(reinterpret_cast<const char*>(&nl), 4);
    f.write(name.data(), nl);
    f.write(reinterpret_cast<const char*>(&nb), 4);
    f.write(reinterpret_cast<const char*>(bytes.data()), nb);
  }
  ASSERT_TRUE(f.good());
}

std::map<std::string, std::vector<uint8_t>> ReadFixture() {
  std::ifstream f(std::string(QATK_SOURCE_DIR) + kFixture, std::ios::binary);
  std::map<std::string, std::vector<uint8_t>> m;
  char magic[4] = {};
  uint32_t n = 0;
  f.read(magic, 4);
  f.read(reinterpret_cast<char*>(&n), 4);
  EXPECT_TRUE(f && std::memcmp(magic, "QKF1", 4) == 0) << "bad fixture";
  for (uint32_t i = 0; f && i < n; ++i) {
    uint32_t nl = 0, nb = 0;
    f.read(reinterpret_cast<char*>(&nl), 4);
    std::string name(nl, '\0');
    f.read(name.data(), nl);
    f.read(reinterpret_cast<char*>(&nb), 4);
    std::vector<uint8_t> b(nb);
    f.read(reinterpret_cast<char*>(b.data()), nb);
    m[name] = std::move(b);
  }
  EXPECT_TRUE(f) << "truncated fixture";
  return m;
}

TEST(KQuantsGolden, MatchesLiveGgml) {
  Ggml g;
  std::string why;
  if (!LoadGgml(&g, &why)) GTEST_SKIP() << why;
  const auto theirs = Theirs(g);
  ExpectSame(theirs, Ours());
  if (const char* e = std::getenv("QATK_WRITE_KQUANT_FIXTURES"); e != nullptr && std::string(e) == "1") {
    WriteFixture(theirs);
  }
}

TEST(KQuantsGolden, MatchesCommittedFixture) { ExpectSame(ReadFixture(), Ours()); }

// The weighted search is a different algorithm: it changes some bytes.
TEST(KQuantsTest, ImatrixChangesTheResult) {
  const auto m = Ours();
  EXPECT_NE(m.at("q4_K"), m.at("q4_K_imatrix"));
  EXPECT_NE(m.at("q6_K"), m.at("q6_K_imatrix"));
}

double RelRms(GgmlType t, const std::vector<float>& x, const float* w) {
  std::vector<uint8_t> q(RowBytes(t, static_cast<int64_t>(x.size())));
  EXPECT_TRUE(QuantizeRows(t, x.data(), 1, static_cast<int64_t>(x.size()), w, q.data()).ok());
  std::vector<float> y(x.size());
  DequantizeRow(t, q.data(), y.data(), static_cast<int64_t>(y.size()));
  double e = 0, s = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    e += (x[i] - y[i]) * static_cast<double>(x[i] - y[i]);
    s += x[i] * static_cast<double>(x[i]);
  }
  return std::sqrt(e / s);
}

TEST(KQuantsTest, RoundTripErrorIsSmall) {
  XorShift32 rng(3);
  std::vector<float> x(4096);
  for (float& v : x) v = rng.Uniform() + rng.Uniform() + rng.Uniform();
  const std::vector<float> ones(x.size(), 1.0f);
  EXPECT_LT(RelRms(GgmlType::kQ4_K, x, nullptr), 0.08);
  EXPECT_LT(RelRms(GgmlType::kQ6_K, x, nullptr), 0.02);
  EXPECT_LT(RelRms(GgmlType::kQ4_K, x, ones.data()), 0.08);
  EXPECT_LT(RelRms(GgmlType::kQ6_K, x, ones.data()), 0.02);
}

TEST(KQuantsTest, TypeTable) {
  EXPECT_EQ(RowBytes(GgmlType::kQ4_K, 512), 288u);
  EXPECT_EQ(RowBytes(GgmlType::kQ6_K, 256), 210u);
  EXPECT_EQ(*TypeFromName("q4_K"), GgmlType::kQ4_K);
  EXPECT_EQ(*TypeFromName("q6_K"), GgmlType::kQ6_K);
}

TEST(KQuantsTest, RejectsBadInput) {
  std::vector<float> x(256, 1.0f);
  std::vector<float> w(256, 1.0f);
  std::vector<uint8_t> q(256);
  x[5] = std::nanf("");
  testing::ExpectError(QuantizeRows(GgmlType::kQ4_K, x.data(), 1, 256, w.data(), q.data()),
                       absl::StatusCode::kInvalidArgument, {"non-finite", "element 5"});
  testing::ExpectError(QuantizeRow(GgmlType::kQ6_K, x.data(), 256, q.data()),
                       absl::StatusCode::kInvalidArgument, {"non-finite", "element 5"});
  x[5] = 1.0f;
  w[7] = std::numeric_limits<float>::infinity();
  testing::ExpectError(QuantizeRows(GgmlType::kQ6_K, x.data(), 1, 256, w.data(), q.data()),
                       absl::StatusCode::kInvalidArgument, {"importance weight", "column 7"});
  w[7] = 1.0f;
  testing::ExpectError(QuantizeRows(GgmlType::kQ4_0, x.data(), 1, 256, w.data(), q.data()),
                       absl::StatusCode::kUnimplemented, {"q4_0"});
  testing::ExpectError(QuantizeRow(GgmlType::kQ4_K, x.data(), 128, q.data()),
                       absl::StatusCode::kInvalidArgument, {"block size 256"});
}

}  // namespace
}  // namespace qatk
