// Elementwise kernels of the forward pass: RMS norm, RoPE, gated activation,
// residual add, logit softcap.
// Part of the CUDA backend's one translation unit, cuda_ops.cu, which includes
// the cuda/*.cuh files in dependency order: definitions have internal linkage.
#ifndef QATK_INFERENCE_CUDA_ELEMENTWISE_CUH_
#define QATK_INFERENCE_CUDA_ELEMENTWISE_CUH_

#include <cuda_runtime.h>

#include "inference/cuda/common.cuh"

namespace qatk::inference {
namespace {

// ---------------------------------------------------------------------------
// Elementwise, norms, rope.

__global__ void RmsNormKernel(const float* x, const float* w, int dim, float eps, float* y) {
  const int64_t row = blockIdx.x;
  const float* xr = x + row * dim;
  float* yr = y + row * dim;
  double ss = 0;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) ss += double(xr[i]) * xr[i];
  __shared__ double part[32];
  for (int o = kWarp / 2; o > 0; o /= 2) ss += __shfl_xor_sync(0xffffffffu, ss, o);
  if (threadIdx.x % kWarp == 0) part[threadIdx.x / kWarp] = ss;
  __syncthreads();
  if (threadIdx.x < kWarp) {
    double v = threadIdx.x < blockDim.x / kWarp ? part[threadIdx.x] : 0.0;
    for (int o = kWarp / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (threadIdx.x == 0) part[0] = v;
  }
  __syncthreads();
  const float s = 1.0f / sqrtf(static_cast<float>(part[0] / dim) + eps);
  for (int i = threadIdx.x; i < dim; i += blockDim.x) yr[i] = xr[i] * s * w[i];
}

// freq_factors: [D/2] divisors of the angles (device memory), or null.
__global__ void RopeKernel(float* x, int T, int n_heads, int D, const int* pos, float base, bool neox,
                           const float* freq_factors) {
  const int pos0 = *pos;
  const int half = D / 2;
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= int64_t(T) * half * n_heads) return;
  const int h = idx % n_heads, i = (idx / n_heads) % half, t = idx / (int64_t(n_heads) * half);
  double theta = (pos0 + t) * pow(double(base), -2.0 * i / D);
  if (freq_factors != nullptr) theta /= freq_factors[i];
  const float cs = static_cast<float>(cos(theta)), sn = static_cast<float>(sin(theta));
  float* hx = x + (int64_t(t) * n_heads + h) * D;
  const int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
  const float x0 = hx[a], x1 = hx[b];
  hx[a] = x0 * cs - x1 * sn;
  hx[b] = x0 * sn + x1 * cs;
}

__global__ void GatedActKernel(float* g, const float* u, int64_t n, bool gelu) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float x = g[i];
  const float a = gelu ? 0.5f * x * (1.0f + tanhf(0.7978845608028654f * x * (1.0f + 0.044715f * x * x)))
                       : x / (1.0f + expf(-x));
  g[i] = a * u[i];
}

__global__ void AddKernel(float* x, const float* y, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) x[i] += y[i];
}

// x [n, dim] += b [dim] per row.
__global__ void AddBiasKernel(float* x, const float* b, int n, int dim) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < int64_t(n) * dim) x[i] += b[i % dim];
}

__global__ void SoftcapKernel(float* x, int64_t n, float cap) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) x[i] = cap * tanhf(x[i] / cap);
}

}  // namespace
}  // namespace qatk::inference

#endif  // QATK_INFERENCE_CUDA_ELEMENTWISE_CUH_
