// The benchmark helpers of cuda/bench.h. They time the backend's own
// launchers, so they are compiled in its translation unit (no second copy of
// the MatMul kernels).
// Part of the CUDA backend's one translation unit, cuda_ops.cu, which includes
// the cuda/*.cuh files in dependency order: definitions have internal linkage.
#ifndef QATK_INFERENCE_CUDA_BENCH_CUH_
#define QATK_INFERENCE_CUDA_BENCH_CUH_

#include <cuda_runtime.h>

#include <algorithm>
#include <random>
#include <vector>

#include "absl/status/statusor.h"
#include "inference/cuda/bench.h"
#include "inference/cuda/common.cuh"
#include "inference/cuda/cuda_ops.h"
#include "inference/cuda/matmul.cuh"
#include "inference/cuda/weights.cuh"

namespace qatk::inference {

absl::StatusOr<double> CudaCopyBandwidth(size_t bytes) {
  if (auto s = CudaAvailable(); !s.ok()) return s;
  void *a = nullptr, *b = nullptr;
  QATK_CUDA_RETURN_IF_ERROR(cudaMalloc(&a, bytes));
  QATK_CUDA_RETURN_IF_ERROR(cudaMalloc(&b, bytes));
  QATK_CUDA_RETURN_IF_ERROR(cudaMemset(a, 1, bytes));
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  double best = 0;
  for (int rep = 0; rep < 6; ++rep) {
    cudaEventRecord(e0);
    cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice);
    cudaEventRecord(e1);
    cudaEventSynchronize(e1);
    float ms = 0;
    cudaEventElapsedTime(&ms, e0, e1);
    if (rep > 0) best = std::max(best, 2.0 * bytes / (ms * 1e-3));
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cudaFree(a);
  cudaFree(b);
  QATK_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return best;
}

absl::StatusOr<CudaMatMulTiming> CudaTimeMatMul(const std::vector<QMatrix>& ws, int n, int reps,
                                                bool include_prepare) {
  if (auto s = CudaAvailable(); !s.ok()) return s;
  if (ws.empty() || n < 1 || reps < 1) return absl::InvalidArgumentError("CudaTimeMatMul: empty set");
  for (const QMatrix& w : ws) {
    if (w.type != ws[0].type || w.cols != ws[0].cols) {
      return absl::InvalidArgumentError("CudaTimeMatMul: one type and column count per set");
    }
  }
  DeviceWeights dw;
  std::vector<const DevMatrix*> mats;
  int64_t max_rows = 0;
  double bytes = 0;
  for (const QMatrix& w : ws) {
    auto d = dw.Upload(w, "bench matrix");
    if (!d.ok()) return d.status();
    mats.push_back(*d);
    max_rows = std::max(max_rows, w.rows);
    bytes += double(w.rows) * w.row_bytes;
  }
  const int64_t cols = ws[0].cols;
  std::vector<float> hx(size_t(n) * cols);
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (float& v : hx) v = nd(rng);
  float *x = nullptr, *y = nullptr;
  cudaStream_t st = nullptr;
  QATK_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  QATK_CUDA_RETURN_IF_ERROR(cudaMalloc(&x, hx.size() * sizeof(float)));
  QATK_CUDA_RETURN_IF_ERROR(cudaMalloc(&y, size_t(n) * max_rows * sizeof(float)));
  QATK_CUDA_RETURN_IF_ERROR(cudaMemcpy(x, hx.data(), hx.size() * sizeof(float), cudaMemcpyHostToDevice));
  ActScratch scratch;
  PrepareActivations(*mats[0], x, n, scratch, st);  // sizes the scratch before recording
  QATK_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(st));
  // One graph over the whole set: the GPU runs the products back to back,
  // without the host's launch cost between them.
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  QATK_CUDA_RETURN_IF_ERROR(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
  for (const DevMatrix* m : mats) {
    if (include_prepare) PrepareActivations(*m, x, n, scratch, st);
    LaunchMatMul(*m, x, n, y, scratch, st);
  }
  QATK_CUDA_RETURN_IF_ERROR(cudaStreamEndCapture(st, &graph));
  QATK_CUDA_RETURN_IF_ERROR(cudaGraphInstantiate(&exec, graph, 0));
  QATK_CUDA_RETURN_IF_ERROR(cudaGraphLaunch(exec, st));  // warm-up
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  std::vector<double> per;
  for (int rep = 0; rep < reps; ++rep) {
    cudaEventRecord(e0, st);
    cudaGraphLaunch(exec, st);
    cudaEventRecord(e1, st);
    cudaEventSynchronize(e1);
    float ms = 0;
    cudaEventElapsedTime(&ms, e0, e1);
    per.push_back(ms * 1e-3 / mats.size());
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(st);
  cudaFree(x);
  cudaFree(y);
  QATK_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  std::sort(per.begin(), per.end());
  CudaMatMulTiming t;
  t.seconds = per[per.size() / 2];
  t.weight_bytes = bytes / mats.size();
  return t;
}

}  // namespace qatk::inference

#endif  // QATK_INFERENCE_CUDA_BENCH_CUH_
