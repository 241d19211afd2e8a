// Every matmul kernel this CPU supports against the scalar reference, and
// the reference against a plain dequantize-then-dot in double.
#include "inference/kernels/matmul.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "formats/quant/codecs.h"
#include "formats/quant/fp16.h"
#include "formats/util/cpu_features.h"
#include "gtest/gtest.h"
#include "inference/kernels/x16.h"

namespace qatk::inference {
namespace {

struct Case {
  GgmlType gtype;
  WType wtype;
};
const Case kCases[] = {{GgmlType::kF32, WType::kF32},   {GgmlType::kF16, WType::kF16},
                       {GgmlType::kBF16, WType::kBF16}, {GgmlType::kQ8_0, WType::kQ8_0},
                       {GgmlType::kQ4_0, WType::kQ4_0}, {GgmlType::kQ2_0, WType::kQ2_0}};

std::vector<float> RandomFloats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// W [rows, cols] quantized to `type` with the reference codec.
std::vector<uint8_t> QuantizedWeights(GgmlType type, int64_t rows, int64_t cols, uint32_t seed) {
  const std::vector<float> w = RandomFloats(rows * cols, seed);
  const uint64_t rb = RowBytes(type, cols);
  std::vector<uint8_t> out(rb * rows);
  for (int64_t r = 0; r < rows; ++r) {
    EXPECT_TRUE(QuantizeRow(type, w.data() + r * cols, cols, out.data() + r * rb).ok());
  }
  return out;
}

TEST(ThreadPoolTest, EveryIndexOnceAndAligned) {
  ThreadPool pool(3);
  for (int64_t n : {1, 7, 64, 1001}) {
    std::vector<int> hits(n, 0);
    pool.ParallelFor(
        n,
        [&](int64_t b, int64_t e, int) {
          EXPECT_TRUE(b % 8 == 0);
          for (int64_t i = b; i < e; ++i) hits[i]++;
        },
        8);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i], 1) << "n=" << n << " i=" << i;
  }
}

// x[cols] as llama.cpp's x86 backend quantizes a matmul input.
std::vector<uint8_t> ActivationBlocks(const float* x, int64_t cols) {
  std::vector<uint8_t> q(RowBytes(GgmlType::kQ8_0, cols));
  for (int64_t i = 0; i < cols / 32; ++i) {
    QuantizeBlockQ8_0Act(x + 32 * i, reinterpret_cast<BlockQ8_0*>(q.data()) + i);
  }
  return q;
}

TEST(MatMulTest, ScalarMatchesDequantizedDot) {
  ThreadPool pool(2);
  const int64_t rows = 24, cols = 256;
  const int n_tok = 3;
  const std::vector<float> x = RandomFloats(n_tok * cols, 7);
  for (const Case& c : kCases) {
    const std::vector<uint8_t> wb = QuantizedWeights(c.gtype, rows, cols, 11);
    const QMatrix w = MakeGgufMatrix(c.gtype, rows, cols, wb.data());
    std::vector<float> y(n_tok * rows);
    MatMulWith(SupportedMatMulKernels(c.wtype).at(0), w, x.data(), n_tok, y.data(), pool);
    const bool quant_act = Traits(c.gtype).is_quantized;
    std::vector<float> wrow(cols), xq(cols);
    for (int t = 0; t < n_tok; ++t) {
      // The oracle: quantized activations (Q8_0 round trip) for block types.
      std::memcpy(xq.data(), x.data() + t * cols, cols * sizeof(float));
      if (quant_act) {
        const std::vector<uint8_t> q = ActivationBlocks(xq.data(), cols);
        DequantizeRow(GgmlType::kQ8_0, q.data(), xq.data(), cols);
      }
      for (int64_t r = 0; r < rows; ++r) {
        DequantizeRow(c.gtype, w.Row(r), wrow.data(), cols);
        double ref = 0;
        for (int64_t i = 0; i < cols; ++i) ref += double(wrow[i]) * xq[i];
        EXPECT_NEAR(y[t * rows + r], ref, 1e-4 * (1 + std::fabs(ref)))
            << WTypeName(c.wtype) << " t=" << t << " r=" << r;
      }
    }
  }
}

TEST(MatMulTest, EverySimdTargetMatchesScalarWithinTolerance) {
  ThreadPool pool(2);
  const int64_t rows = 40, cols = 320;
  for (int n_tok : {1, 5, 37}) {
    const std::vector<float> x = RandomFloats(n_tok * cols, 3 + n_tok);
    for (const Case& c : kCases) {
      const std::vector<uint8_t> wb = QuantizedWeights(c.gtype, rows, cols, 5);
      const QMatrix w = MakeGgufMatrix(c.gtype, rows, cols, wb.data());
      const std::vector<MatMulKernel> ks = SupportedMatMulKernels(c.wtype);
      ASSERT_GE(ks.size(), GetCpuFeatures().avx2 ? 2u : 1u);
      std::vector<float> ref(n_tok * rows), y(n_tok * rows);
      MatMulWith(ks[0], w, x.data(), n_tok, ref.data(), pool);
      for (size_t k = 1; k < ks.size(); ++k) {
        MatMulWith(ks[k], w, x.data(), n_tok, y.data(), pool);
        for (size_t i = 0; i < y.size(); ++i) {
          // Only the float accumulation order differs: relative 1e-5 of the
          // row's magnitude (|y| ~ sqrt(cols)).
          ASSERT_NEAR(y[i], ref[i], 2e-5f * (std::sqrt(float(cols)) + std::fabs(ref[i])))
              << ks[k].target << " " << WTypeName(c.wtype) << " i=" << i;
        }
      }
    }
  }
}

// Tile edges of the multi-row x multi-token kernels: rows not a multiple of
// the row tile, token counts around the token tile, an odd number of Q8_0
// blocks per row (a lone trailing block for Q4_0/Q8_0).
TEST(MatMulTest, EverySimdTargetMatchesScalarOnTileEdges) {
  ThreadPool pool(2);
  for (const Case& c : kCases) {
    if (!Traits(c.gtype).is_quantized) continue;
    const int64_t rows = 13, cols = c.gtype == GgmlType::kQ2_0 ? 192 : 96;
    const std::vector<uint8_t> wb = QuantizedWeights(c.gtype, rows, cols, 21);
    const QMatrix w = MakeGgufMatrix(c.gtype, rows, cols, wb.data());
    const std::vector<MatMulKernel> ks = SupportedMatMulKernels(c.wtype);
    for (int n_tok : {1, 2, 3, 4, 6, 9, 35}) {
      const std::vector<float> x = RandomFloats(n_tok * cols, 100 + n_tok);
      std::vector<float> ref(n_tok * rows), y(n_tok * rows);
      MatMulWith(ks[0], w, x.data(), n_tok, ref.data(), pool);
      for (size_t k = 1; k < ks.size(); ++k) {
        std::fill(y.begin(), y.end(), -1e30f);
        MatMulWith(ks[k], w, x.data(), n_tok, y.data(), pool);
        for (size_t i = 0; i < y.size(); ++i) {
          ASSERT_NEAR(y[i], ref[i], 2e-5f * (std::sqrt(float(cols)) + std::fabs(ref[i])))
              << ks[k].target << " " << WTypeName(c.wtype) << " n_tok=" << n_tok << " i=" << i;
        }
      }
    }
  }
}

// Unit scales and integer activations: every block sum, product and total
// is an exactly representable integer, so all targets must agree exactly.
TEST(MatMulTest, IntegerDotsExactOnEveryTarget) {
  ThreadPool pool(1);
  const int64_t rows = 16, cols = 512;
  const int n_tok = 4;
  std::mt19937 rng(1);
  std::vector<float> x(n_tok * cols);
  for (size_t i = 0; i < x.size(); ++i) {
    x[i] = (i % 32 == 5) ? 127.0f : float(int(rng() % 255) - 127);  // block amax = 127 -> d = 1
  }
  for (const Case& c : kCases) {
    if (!Traits(c.gtype).is_quantized) continue;
    const uint64_t rb = RowBytes(c.gtype, cols);
    std::vector<uint8_t> wb(rb * rows);
    for (size_t i = 0; i < wb.size(); ++i) wb[i] = static_cast<uint8_t>(rng());
    const int bs = Traits(c.gtype).type_size;
    for (size_t off = 0; off < wb.size(); off += bs) {
      const uint16_t one = 0x3C00;  // fp16 1.0
      std::memcpy(&wb[off], &one, 2);
      if (c.gtype == GgmlType::kQ8_0) {
        for (int j = 2; j < bs; ++j) {
          if (wb[off + j] == 0x80) wb[off + j] = 0x81;  // codes in [-127, 127]
        }
      }
    }
    const QMatrix w = MakeGgufMatrix(c.gtype, rows, cols, wb.data());
    const std::vector<MatMulKernel> ks = SupportedMatMulKernels(c.wtype);
    std::vector<float> ref(n_tok * rows), y(n_tok * rows);
    MatMulWith(ks[0], w, x.data(), n_tok, ref.data(), pool);
    for (float v : ref) ASSERT_EQ(v, std::round(v));
    for (size_t k = 1; k < ks.size(); ++k) {
      MatMulWith(ks[k], w, x.data(), n_tok, y.data(), pool);
      for (size_t i = 0; i < y.size(); ++i) {
        ASSERT_EQ(y[i], ref[i]) << ks[k].target << " " << WTypeName(c.wtype) << " i=" << i;
      }
    }
  }
}

// SIMD Q8_0 activation quantizers must equal QuantizeBlockQ8_0Act byte for
// byte (Q4_0/Q8_0 use the plain block layout), ties included.
TEST(MatMulTest, SimdActivationQuantizerIsBitExact) {
  const int64_t cols = 128;
  std::vector<float> x = RandomFloats(cols, 9);
  for (int i = 0; i < 16; ++i) x[i] = 0.5f * i - 4.0f;  // exact .5 ties after scaling
  x[3] = 127.0f / 8;
  QMatrix w;
  w.type = WType::kQ4_0;
  w.cols = cols;
  const std::vector<uint8_t> ref = ActivationBlocks(x.data(), cols);
  for (const MatMulKernel& k : SupportedMatMulKernels(WType::kQ4_0)) {
    std::vector<uint8_t> got(k.act_row_bytes(w));
    ASSERT_EQ(got.size(), ref.size());
    k.prepare(w, x.data(), got.data());
    EXPECT_EQ(got, ref) << k.target;
  }
}

// Every kQ4_0x16 kernel (the x16 Q4_0 layout, kernels/x16.h) against the
// scalar Q4_0 kernel on the file layout: the packed scalar kernel sums in
// the same order, so it must agree exactly; SIMD targets within the float
// accumulation tolerance. Row counts around the 16-row group (partial last
// group, a matrix smaller than one group), odd block counts, token counts
// around the token tile, one and two threads.
TEST(MatMulTest, PackedQ4_0x16MatchesFileLayout) {
  const MatMulKernel file_ref = SupportedMatMulKernels(WType::kQ4_0).at(0);
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    for (int64_t rows : {1, 13, 16, 35, 48}) {
      for (int64_t cols : {96, 320}) {
        const std::vector<uint8_t> wb = QuantizedWeights(GgmlType::kQ4_0, rows, cols, 31 + rows);
        const QMatrix w = MakeGgufMatrix(GgmlType::kQ4_0, rows, cols, wb.data());
        std::vector<uint8_t> packed(Q4x16Bytes(rows, cols) + 64);
        uint8_t* dst = packed.data() + (64 - reinterpret_cast<uintptr_t>(packed.data()) % 64) % 64;
        const QMatrix p = PackQ4_0x16(w, dst);
        ASSERT_EQ(p.type, WType::kQ4_0x16);
        const std::vector<MatMulKernel> ks = SupportedMatMulKernels(WType::kQ4_0x16);
        ASSERT_GE(ks.size(), GetCpuFeatures().avx2 ? 2u : 1u);
        for (int n_tok : {1, 2, 7, 8, 9, 17, 37}) {
          const std::vector<float> x = RandomFloats(n_tok * cols, 200 + n_tok);
          std::vector<float> ref(n_tok * rows), y(n_tok * rows);
          MatMulWith(file_ref, w, x.data(), n_tok, ref.data(), pool);
          for (size_t k = 0; k < ks.size(); ++k) {
            std::fill(y.begin(), y.end(), -1e30f);
            MatMulWith(ks[k], p, x.data(), n_tok, y.data(), pool);
            for (size_t i = 0; i < y.size(); ++i) {
              const float tol =
                  k == 0 ? 0.0f : 2e-5f * (std::sqrt(float(cols)) + std::fabs(ref[i]));
              ASSERT_NEAR(y[i], ref[i], tol) << ks[k].target << " rows=" << rows << " cols=" << cols
                                             << " n_tok=" << n_tok << " i=" << i;
            }
          }
        }
      }
    }
  }
}

// Unit scales and integer activations: all kQ4_0x16 targets exactly equal
// the scalar Q4_0 kernel on the file layout (every code 0..15 occurs).
TEST(MatMulTest, PackedQ4_0x16IntegerDotsExact) {
  ThreadPool pool(2);
  const int64_t rows = 21, cols = 192;
  const int n_tok = 11;
  std::mt19937 rng(4);
  std::vector<float> x(n_tok * cols);
  for (size_t i = 0; i < x.size(); ++i) {
    x[i] = (i % 32 == 7) ? -127.0f : float(int(rng() % 255) - 127);  // block amax 127 -> d = 1
  }
  const uint64_t rb = RowBytes(GgmlType::kQ4_0, cols);
  std::vector<uint8_t> wb(rb * rows);
  for (size_t i = 0; i < wb.size(); ++i) wb[i] = static_cast<uint8_t>(rng());
  for (size_t off = 0; off < wb.size(); off += sizeof(BlockQ4_0)) {
    const uint16_t one = 0x3C00;  // fp16 1.0
    std::memcpy(&wb[off], &one, 2);
  }
  const QMatrix w = MakeGgufMatrix(GgmlType::kQ4_0, rows, cols, wb.data());
  std::vector<uint8_t> packed(Q4x16Bytes(rows, cols));
  const QMatrix p = PackQ4_0x16(w, packed.data());
  std::vector<float> ref(n_tok * rows), y(n_tok * rows);
  MatMulWith(SupportedMatMulKernels(WType::kQ4_0).at(0), w, x.data(), n_tok, ref.data(), pool);
  for (float v : ref) ASSERT_EQ(v, std::round(v));
  for (const MatMulKernel& k : SupportedMatMulKernels(WType::kQ4_0x16)) {
    MatMulWith(k, p, x.data(), n_tok, y.data(), pool);
    for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(y[i], ref[i]) << k.target << " i=" << i;
  }
}

// kQ4_0x16 activations: Q8_0 blocks byte for byte as QuantizeBlockQ8_0Act,
// then per block -8 * sum(codes) and the fp32 scale.
TEST(MatMulTest, PackedActivationsAreQ8_0PlusSums) {
  const int64_t cols = 160;
  std::vector<float> x = RandomFloats(cols, 12);
  for (int i = 0; i < 16; ++i) x[i] = 0.5f * i - 4.0f;  // ties
  QMatrix w;
  w.type = WType::kQ4_0x16;
  w.cols = cols;
  const std::vector<uint8_t> ref = ActivationBlocks(x.data(), cols);
  const BlockQ8_0* blocks = reinterpret_cast<const BlockQ8_0*>(ref.data());
  for (const MatMulKernel& k : SupportedMatMulKernels(WType::kQ4_0x16)) {
    std::vector<uint8_t> got(k.act_row_bytes(w));
    ASSERT_GE(got.size(), ref.size() + (cols / 32) * 8);
    k.prepare(w, x.data(), got.data());
    EXPECT_TRUE(std::equal(ref.begin(), ref.end(), got.begin())) << k.target;
    const uint8_t* sums = got.data() + got.size() - (cols / 32) * 8;
    for (int64_t b = 0; b < cols / 32; ++b) {
      int32_t sum = 0;
      for (int j = 0; j < 32; ++j) sum += blocks[b].qs[j];
      int32_t start;
      float d;
      std::memcpy(&start, sums + 8 * b, 4);
      std::memcpy(&d, sums + 8 * b + 4, 4);
      EXPECT_EQ(start, -8 * sum) << k.target << " b=" << b;
      EXPECT_EQ(d, Fp16ToFp32(blocks[b].d)) << k.target << " b=" << b;
    }
  }
}

TEST(VecOpsTest, DotAxpyF16MatchPlainLoops) {
  const std::vector<float> a = RandomFloats(37, 1), b = RandomFloats(37, 2);
  double ref = 0;
  for (int i = 0; i < 37; ++i) ref += double(a[i]) * b[i];
  EXPECT_NEAR(DotF32(a.data(), b.data(), 37), ref, 1e-4);
  std::vector<float> y = b;
  AxpyF32(0.5f, a.data(), y.data(), 37);
  for (int i = 0; i < 37; ++i) EXPECT_FLOAT_EQ(y[i], b[i] + 0.5f * a[i]);
  std::vector<uint16_t> h(37);
  for (int i = 0; i < 37; ++i) h[i] = Fp32ToFp16(a[i]);
  std::vector<float> f(37);
  F16ToF32Row(h.data(), f.data(), 37);
  for (int i = 0; i < 37; ++i) EXPECT_EQ(f[i], Fp16ToFp32(h[i]));
}

// The m-row helpers equal m calls of the one-row ones, bit for bit.
TEST(VecOpsTest, RowsHelpersMatchOneRowCalls) {
  const int m = 5;
  const int64_t n = 37, stride = 40;
  const std::vector<float> rows = RandomFloats(m * stride, 3), x = RandomFloats(n, 4);
  const std::vector<float> a = RandomFloats(m, 5), y0 = RandomFloats(m * stride, 6);
  std::vector<float> out(m);
  DotF32Rows(rows.data(), stride, m, x.data(), n, out.data());
  std::vector<float> y = y0, yref = y0;
  AxpyF32Rows(a.data(), x.data(), y.data(), stride, m, n);
  for (int g = 0; g < m; ++g) {
    EXPECT_EQ(out[g], DotF32(rows.data() + g * stride, x.data(), n)) << g;
    AxpyF32(a[g], x.data(), yref.data() + g * stride, n);
  }
  EXPECT_EQ(y, yref);
}

}  // namespace
}  // namespace qatk::inference
