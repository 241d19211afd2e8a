// MatMul kernels for prefill (n > 8 tokens) and the launchers that pick the
// decode or prefill kernel of a weight type.
// Part of the CUDA backend's one translation unit, cuda_ops.cu, which includes
// the cuda/*.cuh files in dependency order: definitions have internal linkage.
#ifndef QATK_INFERENCE_CUDA_MATMUL_CUH_
#define QATK_INFERENCE_CUDA_MATMUL_CUH_

#include <cuda_runtime.h>

#include <algorithm>

#include "inference/cuda/common.cuh"
#include "inference/cuda/matvec.cuh"
#include "inference/cuda/weights.cuh"

namespace qatk::inference {
namespace {

// ---------------------------------------------------------------------------
// MatMul: prefill (n > 8 tokens), 64 rows x 64 tokens per block of 256
// threads, 32 columns per step through shared memory; each thread owns
// rows ty + 16 i and tokens tx + 16 j (i, j < 4).

constexpr int kTile = 64;

template <WType T, bool kIntAcc>
__global__ void __launch_bounds__(256) MatMulIntTileKernel(DevMatrix w, const int8_t* aq,
                                                           const float* ad, int64_t a_stride,
                                                           int n, float* y, int64_t y_stride) {
  __shared__ int ws[kTile][9];  // padded: conflict-free column reads
  __shared__ int as[kTile][9];
  __shared__ float wd[kTile], adt[kTile];
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int64_t r0 = int64_t(blockIdx.x) * kTile;
  const int t0 = blockIdx.y * kTile;
  const int64_t nb = (w.cols + 31) / 32;
  float acc[4][4] = {};
  int iacc[4][4] = {};
  for (int64_t kb = 0; kb < nb; ++kb) {
    if (tid < kTile) {
      const int64_t r = r0 + tid;
      int q[8];
      float d = 0.0f;
      if (r < w.rows) {
        DecodeInt32<T>(w, r, kb, q, &d);
      } else {
#pragma unroll
        for (int i = 0; i < 8; ++i) q[i] = 0;
      }
#pragma unroll
      for (int i = 0; i < 8; ++i) ws[tid][i] = q[i];
      wd[tid] = d;
    } else if (tid < 2 * kTile) {
      const int t = tid - kTile;
      if (t0 + t < n) {
        const int4* a = reinterpret_cast<const int4*>(aq + (t0 + t) * a_stride + kb * 32);
        const int4 a0 = a[0], a1 = a[1];
        as[t][0] = a0.x, as[t][1] = a0.y, as[t][2] = a0.z, as[t][3] = a0.w;
        as[t][4] = a1.x, as[t][5] = a1.y, as[t][6] = a1.z, as[t][7] = a1.w;
        adt[t] = kIntAcc ? 1.0f : ad[(t0 + t) * (a_stride / 32) + kb];
      } else {
#pragma unroll
        for (int i = 0; i < 8; ++i) as[t][i] = 0;
        adt[t] = 0.0f;
      }
    }
    __syncthreads();
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int rr = ty + 16 * i;
      int wq[8];
#pragma unroll
      for (int k = 0; k < 8; ++k) wq[k] = ws[rr][k];
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int tt = tx + 16 * j;
        int s = 0;
#pragma unroll
        for (int k = 0; k < 8; ++k) s = __dp4a(wq[k], as[tt][k], s);
        if constexpr (kIntAcc) {
          iacc[i][j] += s;
        } else {
          acc[i][j] += static_cast<float>(s) * (wd[rr] * adt[tt]);
        }
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t r = r0 + ty + 16 * i;
    if (r >= w.rows) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int t = t0 + tx + 16 * j;
      if (t >= n) continue;
      y[t * y_stride + r] = kIntAcc ? static_cast<float>(iacc[i][j]) * (w.act_scale * w.row_scales[r])
                                    : acc[i][j];
    }
  }
}

template <WType T>
__global__ void __launch_bounds__(256) MatMulFloatTileKernel(DevMatrix w, const float* x, int n,
                                                             float* y, int64_t y_stride) {
  __shared__ float ws[kTile][33];
  __shared__ float xs[kTile][33];
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int64_t r0 = int64_t(blockIdx.x) * kTile;
  const int t0 = blockIdx.y * kTile;
  float acc[4][4] = {};
  for (int64_t k0 = 0; k0 < w.cols; k0 += 32) {
    // 64 x 32 of each tile: 8 elements per thread, consecutive threads on
    // consecutive columns.
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const int idx = tid + 256 * e, row = idx / 32, col = idx % 32;
      const int64_t k = k0 + col;
      const int64_t r = r0 + row;
      ws[row][col] = (r < w.rows && k < w.cols) ? FloatAt<T>(w, r, k) : 0.0f;
      const int t = t0 + row;
      xs[row][col] = (t < n && k < w.cols) ? x[int64_t(t) * w.cols + k] : 0.0f;
    }
    __syncthreads();
#pragma unroll 8
    for (int k = 0; k < 32; ++k) {
      float wv[4], xv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) wv[i] = ws[ty + 16 * i][k];
#pragma unroll
      for (int j = 0; j < 4; ++j) xv[j] = xs[tx + 16 * j][k];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += wv[i] * xv[j];
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t r = r0 + ty + 16 * i;
    if (r >= w.rows) continue;
    const float rs = IsIntChannel(T) ? w.row_scales[r] : 1.0f;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int t = t0 + tx + 16 * j;
      if (t < n) y[t * y_stride + r] = acc[i][j] * rs;
    }
  }
}
// ---------------------------------------------------------------------------
// Launchers.

// Device scratch for prepared activations, grown on demand.
struct ActScratch {
  int8_t* q = nullptr;
  float* d = nullptr;
  size_t q_bytes = 0, d_count = 0;
  int generation = 0;  // bumped when the buffers move (recorded steps are then stale)
  ~ActScratch() {
    cudaFree(q);
    cudaFree(d);
  }
  void Reserve(size_t qb, size_t dc) {
    if (qb > q_bytes) {
      QATK_CUDA_CHECK(cudaFree(q));
      QATK_CUDA_CHECK(cudaMalloc(&q, qb));
      q_bytes = qb;
      ++generation;
    }
    if (dc > d_count) {
      QATK_CUDA_CHECK(cudaFree(d));
      QATK_CUDA_CHECK(cudaMalloc(&d, std::max<size_t>(dc, 1) * sizeof(float)));
      d_count = dc;
      ++generation;
    }
  }
};

template <WType T, bool kIntAcc>
void LaunchInt(const DevMatrix& w, const int8_t* aq, const float* ad, int64_t a_stride, int n,
               float* y, cudaStream_t st) {
  if (n == 1 && g_rows_per_warp == 2) {
    MatVecRowsKernel<T, kIntAcc, 2><<<Blocks((w.rows + 1) / 2 * kWarp, 128), 128, 0, st>>>(w, aq, ad, y);
  } else if (n == 1 && g_rows_per_warp == 4) {
    MatVecRowsKernel<T, kIntAcc, 4><<<Blocks((w.rows + 3) / 4 * kWarp, 128), 128, 0, st>>>(w, aq, ad, y);
  } else if (n == 1) {
    MatVecIntKernel<T, kIntAcc, 1><<<Blocks(w.rows * kWarp, 128), 128, 0, st>>>(w, aq, ad, a_stride,
                                                                                n, y, w.rows);
  } else if (n <= kMaxDecodeTokens) {
    MatVecIntKernel<T, kIntAcc, kMaxDecodeTokens><<<Blocks(w.rows * kWarp, 128), 128, 0, st>>>(
        w, aq, ad, a_stride, n, y, w.rows);
  } else {
    const dim3 grid(Blocks(w.rows, kTile), Blocks(n, kTile));
    MatMulIntTileKernel<T, kIntAcc><<<grid, 256, 0, st>>>(w, aq, ad, a_stride, n, y, w.rows);
  }
  QATK_CUDA_LAUNCHED();
}

template <WType T>
void LaunchFloat(const DevMatrix& w, const float* x, int n, float* y, cudaStream_t st) {
  if (n == 1) {
    MatVecFloatKernel<T, 1><<<Blocks(w.rows * kWarp, 128), 128, 0, st>>>(w, x, n, y, w.rows);
  } else if (n <= kMaxDecodeTokens) {
    MatVecFloatKernel<T, kMaxDecodeTokens><<<Blocks(w.rows * kWarp, 128), 128, 0, st>>>(w, x, n, y,
                                                                                        w.rows);
  } else {
    const dim3 grid(Blocks(w.rows, kTile), Blocks(n, kTile));
    MatMulFloatTileKernel<T><<<grid, 256, 0, st>>>(w, x, n, y, w.rows);
  }
  QATK_CUDA_LAUNCHED();
}

// Activations of the int paths, prepared in s: Q8_0 blocks (Q8_0/Q4_0/Q2_0)
// or static int8 codes (int channel types with an activation scale). No-op
// for the float path.
void PrepareActivations(const DevMatrix& w, const float* x, int n, ActScratch& s, cudaStream_t st) {
  if (IsQ8ActType(w.type)) {
    const int64_t nblk = int64_t(n) * (w.cols / 32);
    s.Reserve(size_t(n) * w.cols, size_t(nblk));
    QuantizeQ8Kernel<<<Blocks(nblk * kWarp, 256), 256, 0, st>>>(x, w.cols, nblk, s.q, s.d);
    QATK_CUDA_LAUNCHED();
  } else if (IsIntChannel(w.type) && w.act_scale > 0.0f) {
    const int64_t stride = (w.cols + 31) / 32 * 32;
    s.Reserve(size_t(n) * stride, 1);
    QuantizeStaticKernel<<<Blocks(n * stride, 256), 256, 0, st>>>(
        x, w.cols, stride, n, 1.0f / w.act_scale, w.act_lo, w.act_hi, w.act_even, s.q);
    QATK_CUDA_LAUNCHED();
  }
}

// The product itself, reading what PrepareActivations left in s (int
// paths) or x (float path).
void LaunchMatMul(const DevMatrix& w, const float* x, int n, float* y, const ActScratch& s,
                  cudaStream_t st) {
  if (IsQ8ActType(w.type)) {
    switch (w.type) {
      case WType::kQ8_0: LaunchInt<WType::kQ8_0, false>(w, s.q, s.d, w.cols, n, y, st); return;
      case WType::kQ4_0: LaunchInt<WType::kQ4_0, false>(w, s.q, s.d, w.cols, n, y, st); return;
      default: LaunchInt<WType::kQ2_0, false>(w, s.q, s.d, w.cols, n, y, st); return;
    }
  }
  if (IsIntChannel(w.type) && w.act_scale > 0.0f) {
    const int64_t stride = (w.cols + 31) / 32 * 32;
    switch (w.type) {
      case WType::kInt8Channel: LaunchInt<WType::kInt8Channel, true>(w, s.q, s.d, stride, n, y, st); return;
      case WType::kInt4Channel: LaunchInt<WType::kInt4Channel, true>(w, s.q, s.d, stride, n, y, st); return;
      default: LaunchInt<WType::kInt2Channel, true>(w, s.q, s.d, stride, n, y, st); return;
    }
  }
  switch (w.type) {
    case WType::kF32: LaunchFloat<WType::kF32>(w, x, n, y, st); return;
    case WType::kF16: LaunchFloat<WType::kF16>(w, x, n, y, st); return;
    case WType::kBF16: LaunchFloat<WType::kBF16>(w, x, n, y, st); return;
    case WType::kInt8Channel: LaunchFloat<WType::kInt8Channel>(w, x, n, y, st); return;
    case WType::kInt4Channel: LaunchFloat<WType::kInt4Channel>(w, x, n, y, st); return;
    default: LaunchFloat<WType::kInt2Channel>(w, x, n, y, st); return;
  }
}

}  // namespace
}  // namespace qatk::inference

#endif  // QATK_INFERENCE_CUDA_MATMUL_CUH_
