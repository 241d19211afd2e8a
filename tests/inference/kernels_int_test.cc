// Mobile int kernels: every target this CPU supports gives bit-identical
// outputs to the scalar oracle (same int32 accumulators), and the oracle
// equals an independent int64 computation from the reference activation codec
// and the mobile format's unpacking.
#include "inference/kernels/int.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "formats/mobile/mobile_format.h"
#include "formats/quant/spec.h"
#include "formats/util/cpu_features.h"
#include "gtest/gtest.h"
#include "inference/kernels/matmul.h"
#include "inference/kernels/x16.h"
#include "inference/thread_pool.h"

namespace qatk::inference {
namespace {

mobile::DType ToMobile(WType t) {
  return t == WType::kInt8Channel   ? mobile::DType::kInt8Channel
         : t == WType::kInt4Channel ? mobile::DType::kInt4Channel
                                    : mobile::DType::kInt2Channel;
}

struct IntMatrix {
  QMatrix m;
  std::vector<int8_t> codes;     // [rows, cols]
  std::vector<uint8_t> packed;   // [rows, row_bytes]
  std::vector<float> scales;     // [rows]
};

// extreme: every code at its minimum (worst case for saturation).
IntMatrix MakeMatrix(WType t, int64_t rows, int64_t cols, uint32_t seed, bool extreme) {
  const mobile::DType dt = ToMobile(t);
  IntMatrix x;
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> code(mobile::CodeMin(dt), mobile::CodeMax(dt));
  x.codes.resize(rows * cols);
  for (auto& c : x.codes) c = static_cast<int8_t>(extreme ? mobile::CodeMin(dt) : code(rng));
  const uint64_t rb = mobile::PackedRowBytes(dt, cols);
  x.packed.resize(rb * rows);
  for (int64_t r = 0; r < rows; ++r) {
    mobile::PackRow(dt, &x.codes[r * cols], cols, &x.packed[r * rb]);
    x.scales.push_back(0.001f * static_cast<float>(1 + (rng() % 100)));
  }
  x.m.type = t;
  x.m.rows = rows;
  x.m.cols = cols;
  x.m.data = x.packed.data();
  x.m.row_bytes = rb;
  x.m.row_scales = x.scales.data();
  x.m.act_scale = 0.05f;
  return x;
}

std::vector<float> Activations(int n, uint32_t seed, float sigma) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, sigma);
  std::vector<float> v(n);
  for (auto& f : v) f = d(rng);
  return v;
}

std::vector<float> RunKernel(const MatMulKernel& k, const QMatrix& w, const std::vector<float>& x,
                       int n_tok, ThreadPool& pool) {
  std::vector<float> y(static_cast<size_t>(n_tok) * w.rows, -1.0f);
  MatMulWith(k, w, x.data(), n_tok, y.data(), pool);
  return y;
}

const WType kTypes[] = {WType::kInt8Channel, WType::kInt4Channel, WType::kInt2Channel};

TEST(KernelsIntTest, RegistersScalarAndSimdTargets) {
  for (WType t : kTypes) {
    auto ks = SupportedMatMulKernels(t);
    ASSERT_FALSE(ks.empty());
    EXPECT_STREQ(ks[0].target, "scalar");
    int scalar = 0;
    for (auto& k : ks) scalar += std::string(k.target) == "scalar";
    EXPECT_EQ(scalar, 1) << WTypeName(t);
    if (GetCpuFeatures().avx2) {
      EXPECT_GE(ks.size(), 2u) << WTypeName(t);
    }
  }
}

TEST(KernelsIntTest, ActivationCodesEqualTheReferenceCodec) {
  std::mt19937 rng(3);
  std::normal_distribution<float> d(0.0f, 3.0f);
  for (int bits = 2; bits <= 8; ++bits) {
    for (bool narrow : {false, true}) {
      for (Rounding rnd : {Rounding::kHalfAwayFromZero, Rounding::kHalfEven}) {
        QMatrix w;
        w.act_bits = bits, w.act_narrow = narrow, w.act_rounding = rnd;
        w.act_scale = 0.37f / static_cast<float>(1 << (bits - 1));
        std::vector<float> x;
        for (int k = -300; k <= 300; ++k) {  // exact ties, their neighbours, both signs
          const float tie = (static_cast<float>(k) + 0.5f) * w.act_scale;
          x.insert(x.end(), {tie, std::nextafter(tie, 1e9f), std::nextafter(tie, -1e9f),
                             static_cast<float>(k) * w.act_scale});
        }
        for (int i = 0; i < 4000; ++i) x.push_back(d(rng) * (i % 7 == 0 ? 100.0f : 1.0f));
        x.insert(x.end(), {0.0f, -0.0f, 1e30f, -1e30f, 1e-30f});
        w.cols = static_cast<int64_t>(x.size());
        std::vector<int8_t> got(x.size()), want(x.size());
        QuantizeActivations(w, x.data(), got.data());
        QuantizeWithScale(ActivationSpec(w), x.data(), w.cols, w.act_scale, want.data());
        for (size_t i = 0; i < x.size(); ++i) {
          ASSERT_EQ(got[i], want[i]) << "x=" << x[i] << " bits=" << bits << " narrow=" << narrow
                                     << " rounding=" << RoundingName(rnd);
        }
      }
    }
  }
}

TEST(KernelsIntTest, ScalarOracleMatchesIndependentIntegerMath) {
  ThreadPool pool(1);
  for (WType t : kTypes) {
    IntMatrix w = MakeMatrix(t, 7, 300, 11, false);
    w.m.act_narrow = true;
    w.m.act_rounding = Rounding::kHalfEven;
    const int n_tok = 3;
    const auto x = Activations(n_tok * 300, 5, 2.0f);
    const auto y = RunKernel(SupportedMatMulKernels(t)[0], w.m, x, n_tok, pool);
    QuantSpec spec;
    spec.scheme = QuantScheme::kIntTensor;
    spec.bits = 8;
    spec.narrow_range = true;
    spec.rounding = Rounding::kHalfEven;
    std::vector<int8_t> q(300);
    for (int tk = 0; tk < n_tok; ++tk) {
      QuantizeWithScale(spec, &x[tk * 300], 300, w.m.act_scale, q.data());
      for (int64_t r = 0; r < 7; ++r) {
        int64_t acc = 0;
        for (int k = 0; k < 300; ++k) acc += int64_t{q[k]} * w.codes[r * 300 + k];
        const float want = static_cast<float>(acc) * (w.m.act_scale * w.scales[r]);
        EXPECT_EQ(y[tk * 7 + r], want) << WTypeName(t) << " t=" << tk << " r=" << r;
      }
    }
  }
}

TEST(KernelsIntTest, EverySimdTargetEqualsScalarExactly) {
  ThreadPool pool(2);
  struct Shape { int64_t rows, cols; int n_tok; bool extreme; float sigma; };
  const Shape shapes[] = {{13, 256, 1, false, 1.0f}, {9, 768, 3, false, 3.0f},
                          {5, 2048, 1, false, 1.0f}, {17, 300, 2, false, 1.0f},
                          {6, 130, 40, false, 1.0f}, {4, 60, 1, false, 1.0f},
                          {8, 1024, 2, true, 100.0f}};  // saturated activations, min codes
  for (WType t : kTypes) {
    const auto ks = SupportedMatMulKernels(t);
    for (const Shape& s : shapes) {
      IntMatrix w = MakeMatrix(t, s.rows, s.cols, static_cast<uint32_t>(s.cols + s.rows), s.extreme);
      const auto x = Activations(s.n_tok * s.cols, 7, s.sigma);
      const auto ref = RunKernel(ks[0], w.m, x, s.n_tok, pool);
      for (size_t i = 1; i < ks.size(); ++i) {
        EXPECT_EQ(RunKernel(ks[i], w.m, x, s.n_tok, pool), ref)
            << WTypeName(t) << " target " << ks[i].target << " " << s.rows << "x" << s.cols
            << " n_tok " << s.n_tok;
      }
    }
  }
}

// Decode (one token) takes the row-group path of the SIMD targets: odd row
// counts (overlapping last group), too few rows for a group, column tails, row
// ranges split over 1 and 2 threads, and negative row scales.
TEST(KernelsIntTest, DecodeRowGroupsEqualScalarExactly) {
  struct Shape { int64_t rows, cols; };
  const Shape shapes[] = {{1, 256}, {3, 512}, {4, 512}, {5, 300}, {8, 256}, {9, 640}, {13, 2048},
                          {35, 1024}, {35, 700}, {50, 256}, {67, 130}};
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    for (WType t : kTypes) {
      const auto ks = SupportedMatMulKernels(t);
      for (const Shape& s : shapes) {
        IntMatrix w = MakeMatrix(t, s.rows, s.cols, static_cast<uint32_t>(3 * s.rows + s.cols),
                                 false);
        for (size_t r = 0; r < w.scales.size(); r += 2) w.scales[r] = -w.scales[r];
        const auto x = Activations(static_cast<int>(s.cols), 13, 1.5f);
        const auto ref = RunKernel(ks[0], w.m, x, 1, pool);
        for (size_t i = 1; i < ks.size(); ++i) {
          EXPECT_EQ(RunKernel(ks[i], w.m, x, 1, pool), ref)
              << WTypeName(t) << " target " << ks[i].target << " " << s.rows << "x" << s.cols
              << " threads " << threads;
        }
      }
    }
  }
}

TEST(KernelsIntTest, WeightOnlyPathUsesFloatActivations) {
  ThreadPool pool(1);
  for (WType t : kTypes) {
    IntMatrix w = MakeMatrix(t, 5, 256, 3, false);
    w.m.act_scale = 0.0f;
    const auto x = Activations(256, 9, 1.0f);
    const auto ks = SupportedMatMulKernels(t);
    const auto ref = RunKernel(ks[0], w.m, x, 1, pool);
    for (int64_t r = 0; r < 5; ++r) {
      double want = 0;
      for (int k = 0; k < 256; ++k) want += double{x[k]} * w.codes[r * 256 + k] * w.scales[r];
      EXPECT_NEAR(ref[r], want, 1e-4 * (1 + std::abs(want))) << WTypeName(t);
    }
    for (size_t i = 1; i < ks.size(); ++i) EXPECT_EQ(RunKernel(ks[i], w.m, x, 1, pool), ref);
  }
}

// ---- x16 layouts (kernels/x16.h) ----

// 64-byte aligned storage for a packed x16 matrix.
struct X16Buffer {
  std::vector<uint8_t> bytes;
  uint8_t* data;
  explicit X16Buffer(size_t n) : bytes(n + 64) {
    const uintptr_t p = reinterpret_cast<uintptr_t>(bytes.data());
    data = bytes.data() + ((64 - p % 64) % 64);
  }
};

bool HasTarget(WType t, const char* target) {
  for (const MatMulKernel& k : SupportedMatMulKernels(t)) {
    if (std::string(k.target) == target) return true;
  }
  return false;
}

// Dispatch follows the CPU: int4 / int2 get AVX2 and AVX-512 kernels, int8
// only VNNI (maddubs could saturate on offset-binary int8 codes).
TEST(KernelsIntTest, X16TargetsFollowTheCpu) {
  const bool avx2 = CpuHasAvx2();
  const bool avx512 = CpuHasAvx512();
  const bool vnni = CpuHasAvx512Vnni();
  for (WType t : {WType::kInt8x16, WType::kInt4x16, WType::kInt2x16}) {
    ASSERT_FALSE(SupportedMatMulKernels(t).empty()) << WTypeName(t);
    EXPECT_STREQ(SupportedMatMulKernels(t)[0].target, "scalar") << WTypeName(t);
    const bool int8 = t == WType::kInt8x16;
    EXPECT_EQ(HasTarget(t, "avx2"), avx2 && !int8) << WTypeName(t);
    EXPECT_EQ(HasTarget(t, "avx512"), avx512 && !int8) << WTypeName(t);
    EXPECT_EQ(HasTarget(t, "avx512vnni"), vnni) << WTypeName(t);
  }
}

// Every code reads back from the x16 layout; padding columns hold code 0.
TEST(KernelsIntTest, PackIntX16KeepsEveryCode) {
  for (WType t : kTypes) {
    for (int64_t cols : {1, 4, 7, 60, 130, 256}) {
      const int64_t rows = 21;
      IntMatrix w = MakeMatrix(t, rows, cols, static_cast<uint32_t>(cols), false);
      const WType xt = IntX16Type(t);
      X16Buffer buf(IntX16Bytes(xt, rows, cols));
      const QMatrix x = PackIntX16(w.m, buf.data);
      ASSERT_EQ(x.type, xt);
      const int64_t padded =  // columns of the chunks
          static_cast<int64_t>(IntX16GroupBytes(xt, cols)) / 16 * CodesPerByte(xt);
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t k = 0; k < padded; ++k) {
          ASSERT_EQ(IntX16CodeAt(x, r, k), k < cols ? w.codes[r * cols + k] : 0)
              << WTypeName(t) << " cols " << cols << " r " << r << " k " << k;
        }
      }
    }
  }
}

// The x16 activation layout: the reference codec's codes in natural order,
// zero padding, then their int32 sum; the same bytes from every target
// (the AVX2 quantizer: exact ties, neighbours, clamping, tails of a vector).
TEST(KernelsIntTest, X16ActivationsEqualTheReferenceCodec) {
  std::mt19937 rng(5);
  std::normal_distribution<float> d(0.0f, 3.0f);
  for (int bits : {2, 4, 7, 8}) {
    for (bool narrow : {false, true}) {
      for (Rounding rnd : {Rounding::kHalfAwayFromZero, Rounding::kHalfEven}) {
        QMatrix w;
        w.type = WType::kInt4x16;
        w.act_bits = bits, w.act_narrow = narrow, w.act_rounding = rnd;
        w.act_scale = 0.37f / static_cast<float>(1 << (bits - 1));
        std::vector<float> x;
        for (int k = -150; k <= 150; ++k) {
          const float tie = (static_cast<float>(k) + 0.5f) * w.act_scale;
          x.insert(x.end(), {tie, std::nextafter(tie, 1e9f), std::nextafter(tie, -1e9f),
                             static_cast<float>(k) * w.act_scale, -tie});
        }
        for (int i = 0; i < 997; ++i) x.push_back(d(rng) * (i % 7 == 0 ? 100.0f : 1.0f));
        x.insert(x.end(), {0.0f, -0.0f, 1e30f, -1e30f, 1e-30f});
        w.cols = static_cast<int64_t>(x.size());  // 2507: not a multiple of 32 or 64
        std::vector<int8_t> q(x.size());
        QuantizeWithScale(ActivationSpec(w), x.data(), w.cols, w.act_scale, q.data());
        int32_t sum = 0;
        for (int8_t c : q) sum += c;
        for (const MatMulKernel& k : SupportedMatMulKernels(w.type)) {
          const size_t n = k.act_row_bytes(w);
          ASSERT_GE(n, static_cast<size_t>((w.cols + 63) / 64 * 64 + 4));
          std::vector<int8_t> got(n, 99);
          k.prepare(w, x.data(), got.data());
          for (int64_t i = 0; i < w.cols; ++i) {
            ASSERT_EQ(got[i], q[i]) << k.target << " x=" << x[i] << " bits=" << bits
                                    << " narrow=" << narrow << " " << RoundingName(rnd);
          }
          const int64_t sum_off = (w.cols + 63) / 64 * 64;
          for (int64_t i = w.cols; i < sum_off; ++i) ASSERT_EQ(got[i], 0) << k.target;
          int32_t got_sum;
          std::memcpy(&got_sum, &got[sum_off], 4);
          EXPECT_EQ(got_sum, sum) << k.target << " bits=" << bits;
        }
      }
    }
  }
}

// Every x16 target (scalar included) gives exactly the row-layout scalar
// oracle's outputs: row counts that are not multiples of 16 (partial last
// group, fewer rows than a group), column tails of every chunk size,
// negative scales, decode and prefill tiles of every size up to and across
// a token block, 1 and 2 threads, saturated activations with minimum codes.
TEST(KernelsIntTest, X16TargetsEqualRowLayoutScalarExactly) {
  struct Shape { int64_t rows, cols; bool extreme; float sigma; };
  const Shape shapes[] = {{1, 256, false, 1.0f},  {5, 4, false, 1.0f},    {15, 60, false, 2.0f},
                          {16, 300, false, 1.0f}, {17, 130, false, 1.0f}, {33, 1000, false, 1.5f},
                          {50, 7, false, 1.0f},   {40, 2048, true, 100.0f}};
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    for (WType t : kTypes) {
      const MatMulKernel oracle = SupportedMatMulKernels(t)[0];
      const WType xt = IntX16Type(t);
      for (const Shape& s : shapes) {
        IntMatrix w = MakeMatrix(t, s.rows, s.cols, static_cast<uint32_t>(5 * s.rows + s.cols),
                                 s.extreme);
        for (size_t r = 0; r < w.scales.size(); r += 3) w.scales[r] = -w.scales[r];
        X16Buffer buf(IntX16Bytes(xt, s.rows, s.cols));
        const QMatrix x = PackIntX16(w.m, buf.data);
        for (int n_tok : {1, 2, 3, 8, 9, 35}) {
          const auto a = Activations(n_tok * static_cast<int>(s.cols), n_tok, s.sigma);
          const auto ref = RunKernel(oracle, w.m, a, n_tok, pool);
          for (const MatMulKernel& k : SupportedMatMulKernels(xt)) {
            EXPECT_EQ(RunKernel(k, x, a, n_tok, pool), ref)
                << WTypeName(xt) << " target " << k.target << " " << s.rows << "x" << s.cols
                << " n_tok " << n_tok << " threads " << threads;
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace qatk::inference
