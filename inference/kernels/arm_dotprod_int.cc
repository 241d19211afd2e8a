// aarch64 SDOT kernels of the mobile int channel types (compiled with
// -march=armv8.2-a+dotprod; chosen when HWCAP_ASIMDDP says so): SDOT on
// signed codes, exact int32 sums, hence the scalar reference's y bit for
// bit. Activations: the SIMD layout (int_internal.h, SimdIntPrepare).
#include "inference/kernels/arm_neon_common.h"

#if !defined(__ARM_FEATURE_DOTPROD)
#error "arm_dotprod_int.cc needs -march=armv8.2-a+dotprod (CMakeLists.txt)"
#endif

namespace qatk::inference::internal {

void RegisterDotprodIntKernels() {
  auto add = [](WType t, decltype(MatMulKernel::rows) rows) {
    RegisterMatMulKernel(t, {"dotprod", CpuHasArmDotprod, SimdIntActBytes, SimdIntPrepare, rows});
  };
  add(WType::kInt8Channel, SimdIntRows<IntDotN<1, 1>, IntDotN<1, 4>, IntRows4<1>>);
  add(WType::kInt4Channel, SimdIntRows<IntDotN<2, 1>, IntDotN<2, 4>, IntRows4<2>>);
  add(WType::kInt2Channel, SimdIntRows<IntDotN<4, 1>, IntDotN<4, 4>, IntRows4<4>>);
}

}  // namespace qatk::inference::internal
