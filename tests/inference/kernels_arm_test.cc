// aarch64 dispatch: the NEON targets are registered on every aarch64 CPU,
// dotprod and i8mm exactly when HWCAP says so, and MatMul picks the widest.
// scripts/test_aarch64.sh sets QATK_EXPECT_ARM_LEVEL (neon | dotprod | i8mm)
// for each emulated CPU, so a run proves which kernels it exercised.
// Correctness of every target against the scalar oracle is in matmul_test
// and kernels_int_test (they loop over all supported targets).
#include <cstdlib>
#include <string>

#include "formats/util/cpu_features.h"
#include "gtest/gtest.h"
#include "inference/kernels/matmul.h"

namespace qatk::inference {
namespace {

[[maybe_unused]] bool HasTarget(WType t, const char* target) {
  for (const MatMulKernel& k : SupportedMatMulKernels(t)) {
    if (std::string(k.target) == target) return true;
  }
  return false;
}

TEST(KernelsArmTest, TargetsFollowHwcap) {
#if !defined(__aarch64__)
  GTEST_SKIP() << "aarch64 only";
#else
  EXPECT_TRUE(CpuHasArmNeon());
  const bool dot = CpuHasArmDotprod(), mm = CpuHasArmI8mm();
  for (WType t : {WType::kQ8_0, WType::kQ4_0, WType::kQ2_0, WType::kInt8Channel,
                  WType::kInt4Channel, WType::kInt2Channel}) {
    EXPECT_TRUE(HasTarget(t, "neon")) << WTypeName(t);
    EXPECT_EQ(HasTarget(t, "dotprod"), dot) << WTypeName(t);
  }
  for (WType t : {WType::kF32, WType::kF16, WType::kBF16}) {
    EXPECT_STREQ(BestMatMulKernel(t)->target, "neon") << WTypeName(t);
  }
  for (WType t : {WType::kQ8_0, WType::kQ4_0, WType::kInt8Channel, WType::kInt4Channel,
                  WType::kInt2Channel}) {
    EXPECT_EQ(HasTarget(t, "i8mm"), mm) << WTypeName(t);
    EXPECT_STREQ(BestMatMulKernel(t)->target, mm ? "i8mm" : dot ? "dotprod" : "neon")
        << WTypeName(t);
  }
  EXPECT_STREQ(BestMatMulKernel(WType::kQ2_0)->target, dot ? "dotprod" : "neon");
  // No x16 kernels on aarch64: the loader keeps the file layouts.
  EXPECT_STREQ(BestMatMulKernel(WType::kQ4_0x16)->target, "scalar");
  if (const char* want = std::getenv("QATK_EXPECT_ARM_LEVEL")) {
    EXPECT_EQ(std::string(want), mm ? "i8mm" : dot ? "dotprod" : "neon");
  }
#endif
}

}  // namespace
}  // namespace qatk::inference
