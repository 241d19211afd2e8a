// Benchmark helpers of the CUDA backend, for `qat-run bench` and
// tests/inference/cuda_kernel_bench.cc; the forward pass does not use them.
// Without -DQATK_CUDA=ON they report kUnimplemented, like cuda_ops.h.
#ifndef QATK_INFERENCE_CUDA_BENCH_H_
#define QATK_INFERENCE_CUDA_BENCH_H_

#include <cstddef>
#include <vector>

#include "absl/status/statusor.h"
#include "inference/weights.h"

namespace qatk::inference {

// Device-to-device copy bandwidth in bytes/s (bytes read + written), the
// best of a few copies of `bytes` bytes.
absl::StatusOr<double> CudaCopyBandwidth(size_t bytes);

// Timing of one matrix-vector (or matrix-matrix) product on the device.
struct CudaMatMulTiming {
  double seconds = 0;       // per product, median of the timed reps
  double weight_bytes = 0;  // bytes of weights read per product
};
// Times MatMul of each matrix of `ws` (one type and column count) in turn,
// so the set can exceed the L2 cache, with n tokens of random activations:
// the products are recorded as one CUDA graph and replayed `reps` times
// (no host launch cost between them). include_prepare: each product also
// quantizes its activations (as in the forward pass); else they are
// prepared once and only the product kernels are timed. Returns the
// per-product time (median over reps, averaged over the set).
absl::StatusOr<CudaMatMulTiming> CudaTimeMatMul(const std::vector<QMatrix>& ws, int n, int reps,
                                                bool include_prepare);

}  // namespace qatk::inference

#endif  // QATK_INFERENCE_CUDA_BENCH_H_
