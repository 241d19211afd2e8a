// The CUDA backend's entry points in a build without it (QATK_CUDA=OFF).
#include "inference/cuda/cuda_ops.h"

#include "inference/cuda/bench.h"

namespace qatk::inference {
namespace {

absl::Status NotBuilt() {
  return absl::UnimplementedError(
      "this build has no CUDA backend: configure with -DQATK_CUDA=ON (needs nvcc)");
}

}  // namespace

absl::Status CudaAvailable() { return NotBuilt(); }
std::string CudaDeviceDescription() { return ""; }
absl::StatusOr<std::unique_ptr<Ops>> MakeCudaOps(const Model*, const ModelConfig&, const KvCache&,
                                                 int) {
  return NotBuilt();
}
absl::StatusOr<double> CudaCopyBandwidth(size_t) { return NotBuilt(); }
absl::StatusOr<CudaMatMulTiming> CudaTimeMatMul(const std::vector<QMatrix>&, int, int, bool) {
  return NotBuilt();
}

void SetCudaDecodeRowsPerWarp(int) {}
int CudaDecodeRowsPerWarp() { return 1; }

}  // namespace qatk::inference
