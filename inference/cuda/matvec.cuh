// MatMul kernels for decode (n <= 8 tokens) and the activation quantizers
// the int paths read.
// Part of the CUDA backend's one translation unit, cuda_ops.cu, which includes
// the cuda/*.cuh files in dependency order: definitions have internal linkage.
#ifndef QATK_INFERENCE_CUDA_MATVEC_CUH_
#define QATK_INFERENCE_CUDA_MATVEC_CUH_

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdlib>

#include "inference/cuda/common.cuh"
#include "inference/cuda/weights.cuh"

namespace qatk::inference {
namespace {

// ---------------------------------------------------------------------------
// Activation preparation.

// Q8_0 activations exactly as QuantizeBlockQ8_0Act: d = fp16(amax / 127),
// q = saturate(round_half_even(x * 127 / amax)), non-finite products -> -128.
// One warp per 32-element block; q [n, cols], d [n, cols / 32].
__global__ void QuantizeQ8Kernel(const float* x, int64_t cols, int64_t n_blocks, int8_t* q,
                                 float* d) {
  const int64_t blk = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (blk >= n_blocks) return;
  const float v = x[blk * 32 + lane];
  const float amax = WarpMax(fabsf(v));
  const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
  const float p = v * id;
  int c;
  if (!isfinite(p)) {
    c = -128;
  } else {
    c = min(127, max(-128, __float2int_rn(p)));
  }
  q[blk * 32 + lane] = static_cast<int8_t>(c);
  if (lane == 0) d[blk] = __half2float(__float2half_rn(amax / 127.0f));
  (void)cols;
}

// Static per-tensor int8 activations (the reference codec's codes):
// clamp(round(x * inv)) with half-even or half-away rounding; rows padded
// with zero codes from cols to stride.
__global__ void QuantizeStaticKernel(const float* x, int64_t cols, int64_t stride, int n, float inv,
                                     int lo, int hi, bool even, int8_t* q) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n * stride) return;
  const int64_t t = i / stride, k = i % stride;
  if (k >= cols) {
    q[i] = 0;
    return;
  }
  const float v = x[t * cols + k] * inv;
  const float r = even ? rintf(v) : roundf(v);
  q[i] = static_cast<int8_t>(fminf(fmaxf(r, float(lo)), float(hi)));
}

// ---------------------------------------------------------------------------
// MatMul: decode (n <= 8 tokens), one warp per output row.

constexpr int kMaxDecodeTokens = 8;

// Int path. Q8_0/Q4_0/Q2_0: per-block int sums times d_w * d_a, fp32 across
// blocks. Int channel with a static activation scale (kIntAcc): one int32
// per row, times act_scale * row_scale.
// NT: accumulators per lane (1 for single-token decode: fewer registers,
// more warps in flight; kMaxDecodeTokens otherwise).
template <WType T, bool kIntAcc, int NT>
__global__ void __launch_bounds__(128) MatVecIntKernel(DevMatrix w, const int8_t* aq, const float* ad,
                                                       int64_t a_stride, int n, float* y,
                                                       int64_t y_stride) {
  const int64_t r = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (r >= w.rows) return;
  const int64_t nb = (w.cols + 31) / 32;
  float acc[NT];
  int iacc[NT];
#pragma unroll
  for (int t = 0; t < NT; ++t) acc[t] = 0.0f, iacc[t] = 0;
  // Two blocks per lane per step, both loaded before any math: twice the
  // bytes in flight per warp (rows of 2048 Q4_0 columns are 2 steps).
  for (int64_t kb0 = lane; kb0 < nb; kb0 += 2 * kWarp) {
    int q[2][8];
    float dw[2];
    const bool second = kb0 + kWarp < nb;
    DecodeInt32<T>(w, r, kb0, q[0], &dw[0]);
    if (second) DecodeInt32<T>(w, r, kb0 + kWarp, q[1], &dw[1]);
#pragma unroll
    for (int u = 0; u < 2; ++u) {
      if (u == 1 && !second) break;
      const int64_t kb = kb0 + u * kWarp;
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        if (t >= n) break;
        const int4* a = reinterpret_cast<const int4*>(aq + t * a_stride + kb * 32);
        const int s = Dot32(q[u], a[0], a[1]);
        if constexpr (kIntAcc) {
          iacc[t] += s;
        } else {
          acc[t] += static_cast<float>(s) * (dw[u] * ad[t * (a_stride / 32) + kb]);
        }
      }
    }
  }
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    if (t >= n) break;
    float v;
    if constexpr (kIntAcc) {
      v = static_cast<float>(WarpSumInt(iacc[t])) * (w.act_scale * w.row_scales[r]);
    } else {
      v = WarpSum(acc[t]);
    }
    if (lane == 0) y[t * y_stride + r] = v;
  }
}

// Single token, R rows per warp: each lane's activation block is loaded
// once for R weight blocks (R times the weight bytes in flight per warp).
template <WType T, bool kIntAcc, int R>
__global__ void __launch_bounds__(128) MatVecRowsKernel(DevMatrix w, const int8_t* aq,
                                                        const float* ad, float* y) {
  const int64_t r0 = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp * R;
  const int lane = threadIdx.x % kWarp;
  if (r0 >= w.rows) return;
  const int64_t nb = (w.cols + 31) / 32;
  float acc[R];
  int iacc[R];
#pragma unroll
  for (int i = 0; i < R; ++i) acc[i] = 0.0f, iacc[i] = 0;
  for (int64_t kb = lane; kb < nb; kb += kWarp) {
    int q[R][8];
    float dw[R];
#pragma unroll
    for (int i = 0; i < R; ++i) {
      if (r0 + i < w.rows) {
        DecodeInt32<T>(w, r0 + i, kb, q[i], &dw[i]);
      } else {
#pragma unroll
        for (int k = 0; k < 8; ++k) q[i][k] = 0;
        dw[i] = 0.0f;
      }
    }
    const int4* a = reinterpret_cast<const int4*>(aq + kb * 32);
    const int4 a0 = a[0], a1 = a[1];
    const float da = kIntAcc ? 1.0f : ad[kb];
#pragma unroll
    for (int i = 0; i < R; ++i) {
      const int s = Dot32(q[i], a0, a1);
      if constexpr (kIntAcc) {
        iacc[i] += s;
      } else {
        acc[i] += static_cast<float>(s) * (dw[i] * da);
      }
    }
  }
#pragma unroll
  for (int i = 0; i < R; ++i) {
    float v;
    if constexpr (kIntAcc) {
      const int sum = WarpSumInt(iacc[i]);
      v = r0 + i < w.rows ? static_cast<float>(sum) * (w.act_scale * w.row_scales[r0 + i]) : 0.0f;
    } else {
      v = WarpSum(acc[i]);
    }
    if (lane == 0 && r0 + i < w.rows) y[r0 + i] = v;
  }
}

// Rows per warp of the single-token int kernels (1: MatVecIntKernel; 2, 4:
// MatVecRowsKernel). QATK_CUDA_ROWS_PER_WARP or SetCudaDecodeRowsPerWarp.
int g_rows_per_warp = [] {
  const char* e = std::getenv("QATK_CUDA_ROWS_PER_WARP");
  const int v = e ? std::atoi(e) : 1;
  return v == 2 || v == 4 ? v : 1;
}();

// Float path: fp32 activations [n, cols] times F32/F16/BF16 values or
// weight-only int codes (then times the row scale).
template <WType T, int NT>
__global__ void __launch_bounds__(128) MatVecFloatKernel(DevMatrix w, const float* x, int n, float* y,
                                                         int64_t y_stride) {
  const int64_t r = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (r >= w.rows) return;
  float acc[NT];
#pragma unroll
  for (int t = 0; t < NT; ++t) acc[t] = 0.0f;
  for (int64_t k = lane; k < w.cols; k += kWarp) {
    const float v = FloatAt<T>(w, r, k);
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      if (t >= n) break;
      acc[t] += v * x[t * w.cols + k];
    }
  }
  const float rs = IsIntChannel(T) ? w.row_scales[r] : 1.0f;
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    if (t >= n) break;
    const float v = WarpSum(acc[t]);
    if (lane == 0) y[t * y_stride + r] = v * rs;
  }
}

}  // namespace
}  // namespace qatk::inference

#endif  // QATK_INFERENCE_CUDA_MATVEC_CUH_
