// aarch64 SDOT kernels of the GGUF block types (compiled with
// -march=armv8.2-a+dotprod; chosen when HWCAP_ASIMDDP says so). Exact block
// sums in the scalar reference's float order: results equal the reference.
#include "inference/kernels/arm_neon_common.h"

#if !defined(__ARM_FEATURE_DOTPROD)
#error "arm_dotprod_blocks.cc needs -march=armv8.2-a+dotprod (CMakeLists.txt)"
#endif

namespace qatk::inference::internal {

void RegisterDotprodBlockKernels() {
  auto add = [](WType t, decltype(MatMulKernel::rows) rows) {
    RegisterMatMulKernel(t, {"dotprod", CpuHasArmDotprod, Q8RowBytes, PrepareQ8Neon, rows});
  };
  add(WType::kQ8_0, RowsLoop<DotQ8_0>);
  add(WType::kQ4_0, RowsLoop<DotQ4_0>);
  add(WType::kQ2_0, RowsLoop<DotQ2_0>);
}

}  // namespace qatk::inference::internal
