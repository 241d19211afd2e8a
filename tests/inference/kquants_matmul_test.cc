// Q4_K / Q6_K matmul kernels: the scalar reference against a dequantized
// dot (weights and Q8_K activations dequantized, summed in double), every
// SIMD target against the scalar one, and (when tests/interop/node_modules
// holds llama.cpp's CPU backend) the scalar dot against ggml's own
// ggml_vec_dot_q{4,6}_K_q8_K on the same bytes.
#include <dlfcn.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "formats/quant/codecs.h"
#include "formats/quant/kquants.h"
#include "formats/util/cpu_features.h"
#include "gtest/gtest.h"
#include "inference/kernels/matmul.h"

namespace qatk::inference {
namespace {

struct Case {
  GgmlType gtype;
  WType wtype;
};
const Case kCases[] = {{GgmlType::kQ4_K, WType::kQ4_K}, {GgmlType::kQ6_K, WType::kQ6_K}};

std::vector<float> RandomFloats(size_t n, uint32_t seed, float offset = 0.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng) + offset;
  return v;
}

std::vector<uint8_t> QuantizedWeights(GgmlType type, int64_t rows, int64_t cols, uint32_t seed) {
  // An offset makes Q4_K's mins matter.
  const std::vector<float> w = RandomFloats(rows * cols, seed, 0.3f);
  std::vector<uint8_t> out(RowBytes(type, cols) * rows);
  EXPECT_TRUE(QuantizeRows(type, w.data(), rows, cols, nullptr, out.data()).ok());
  return out;
}

TEST(KQuantMatMulTest, ScalarMatchesDequantizedDot) {
  ThreadPool pool(2);
  const int64_t rows = 24, cols = 768;
  const int n_tok = 3;
  const std::vector<float> x = RandomFloats(n_tok * cols, 7);
  for (const Case& c : kCases) {
    const std::vector<uint8_t> wb = QuantizedWeights(c.gtype, rows, cols, 11);
    const QMatrix w = MakeGgufMatrix(c.gtype, rows, cols, wb.data());
    std::vector<float> y(n_tok * rows);
    const std::vector<MatMulKernel> ks = SupportedMatMulKernels(c.wtype);
    ASSERT_FALSE(ks.empty());
    ASSERT_STREQ(ks[0].target, "scalar");
    MatMulWith(ks[0], w, x.data(), n_tok, y.data(), pool);
    std::vector<float> wrow(cols);
    std::vector<BlockQ8_K> q8(cols / kQK_K);
    for (int t = 0; t < n_tok; ++t) {
      QuantizeRowQ8_K(x.data() + t * cols, q8.data(), cols);
      std::vector<double> xq(cols);
      for (int64_t i = 0; i < cols; ++i) xq[i] = double(q8[i / kQK_K].d) * q8[i / kQK_K].qs[i % kQK_K];
      for (int64_t r = 0; r < rows; ++r) {
        DequantizeRow(c.gtype, w.Row(r), wrow.data(), cols);
        double ref = 0, exact = 0;
        for (int64_t i = 0; i < cols; ++i) {
          ref += double(wrow[i]) * xq[i];
          exact += double(wrow[i]) * x[t * cols + i];
        }
        EXPECT_NEAR(y[t * rows + r], ref, 1e-4 * (std::sqrt(double(cols)) + std::fabs(ref)))
            << WTypeName(c.wtype) << " t=" << t << " r=" << r;
        // Q8_K costs about 1/254 of |x| per element, random in sign.
        EXPECT_NEAR(y[t * rows + r], exact, 0.05 * std::sqrt(double(cols)))
            << WTypeName(c.wtype) << " t=" << t << " r=" << r;
      }
    }
  }
}

TEST(KQuantMatMulTest, EverySimdTargetMatchesScalar) {
  ThreadPool pool(2);
  const int64_t rows = 40, cols = 512;
  for (int n_tok : {1, 5, 37}) {
    const std::vector<float> x = RandomFloats(n_tok * cols, 3 + n_tok);
    for (const Case& c : kCases) {
      const std::vector<uint8_t> wb = QuantizedWeights(c.gtype, rows, cols, 5);
      const QMatrix w = MakeGgufMatrix(c.gtype, rows, cols, wb.data());
      const std::vector<MatMulKernel> ks = SupportedMatMulKernels(c.wtype);
      ASSERT_EQ(ks.size(), 1u + CpuHasAvx2() + CpuHasAvx512Vnni());  // scalar, avx2, avx512vnni
      std::vector<float> ref(n_tok * rows), y(n_tok * rows);
      MatMulWith(ks[0], w, x.data(), n_tok, ref.data(), pool);
      for (size_t k = 1; k < ks.size(); ++k) {
        MatMulWith(ks[k], w, x.data(), n_tok, y.data(), pool);
        for (size_t i = 0; i < y.size(); ++i) {
          // Exact integer sums; at most an FMA's rounding per super-block.
          ASSERT_NEAR(y[i], ref[i], 1e-5f * (std::sqrt(float(cols)) + std::fabs(ref[i])))
              << ks[k].target << " " << WTypeName(c.wtype) << " i=" << i;
        }
      }
    }
  }
}

TEST(KQuantMatMulTest, GgufTypesMapToKernels) {
  WType t;
  ASSERT_TRUE(WTypeFromGgml(GgmlType::kQ4_K, &t));
  EXPECT_EQ(t, WType::kQ4_K);
  ASSERT_TRUE(WTypeFromGgml(GgmlType::kQ6_K, &t));
  EXPECT_EQ(t, WType::kQ6_K);
  EXPECT_STREQ(WTypeName(WType::kQ4_K), "q4_K");
  EXPECT_STREQ(WTypeName(WType::kQ6_K), "q6_K");
  EXPECT_NE(BestMatMulKernel(WType::kQ4_K), nullptr);
  EXPECT_NE(BestMatMulKernel(WType::kQ6_K), nullptr);
}

// llama.cpp's AVX2 vec_dot on the same weight and Q8_K bytes: ours is the
// same integer sums, so only the float order of the per-block terms differs.
TEST(KQuantMatMulTest, MatchesLlamaCppVecDot) {
  const std::string dir =
      std::string(QATK_SOURCE_DIR) + "/tests/interop/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/";
  if (!std::ifstream(dir + "libggml-cpu-haswell.so").good()) GTEST_SKIP() << "no " << dir;
  if (!CpuHasAvx2()) GTEST_SKIP() << "CPU without AVX2";
  void* base = dlopen((dir + "libggml-base.so").c_str(), RTLD_NOW | RTLD_GLOBAL);
  void* cpu = base ? dlopen((dir + "libggml-cpu-haswell.so").c_str(), RTLD_NOW | RTLD_LOCAL) : nullptr;
  if (cpu == nullptr) GTEST_SKIP() << dlerror();
  using VecDot = void (*)(int, float*, size_t, const void*, size_t, const void*, size_t, int);
  const VecDot q4 = reinterpret_cast<VecDot>(dlsym(cpu, "ggml_vec_dot_q4_K_q8_K"));
  const VecDot q6 = reinterpret_cast<VecDot>(dlsym(cpu, "ggml_vec_dot_q6_K_q8_K"));
  // Fills the fp16 table that the x86 vec_dots read their block scales from.
  const auto init = reinterpret_cast<void (*)()>(dlsym(cpu, "ggml_cpu_init"));
  ASSERT_TRUE(q4 && q6 && init);
  init();
  ThreadPool pool(1);
  const int64_t rows = 16, cols = 1024;
  const std::vector<float> x = RandomFloats(cols, 21);
  std::vector<BlockQ8_K> q8(cols / kQK_K);
  QuantizeRowQ8_K(x.data(), q8.data(), cols);
  for (const Case& c : kCases) {
    const std::vector<uint8_t> wb = QuantizedWeights(c.gtype, rows, cols, 9);
    const QMatrix w = MakeGgufMatrix(c.gtype, rows, cols, wb.data());
    std::vector<float> y(rows);
    MatMulWith(SupportedMatMulKernels(c.wtype).at(0), w, x.data(), 1, y.data(), pool);
    for (int64_t r = 0; r < rows; ++r) {
      float s = 0;
      (c.gtype == GgmlType::kQ4_K ? q4 : q6)(static_cast<int>(cols), &s, 0, w.Row(r), 0, q8.data(), 0, 1);
      EXPECT_NEAR(y[r], s, 1e-5f * (std::sqrt(float(cols)) + std::fabs(s))) << WTypeName(c.wtype) << " r=" << r;
    }
  }
}

}  // namespace
}  // namespace qatk::inference
