// The KV cache (store) and attention over it, split over position ranges
// when there are few (token, head) pairs.
// Part of the CUDA backend's one translation unit, cuda_ops.cu, which includes
// the cuda/*.cuh files in dependency order: definitions have internal linkage.
#ifndef QATK_INFERENCE_CUDA_ATTENTION_CUH_
#define QATK_INFERENCE_CUDA_ATTENTION_CUH_

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "formats/quant/types.h"
#include "inference/cuda/common.cuh"
#include "inference/forward.h"

namespace qatk::inference {
namespace {

// ---------------------------------------------------------------------------
// KV cache and attention.

struct KvLayout {
  KvType type = KvType::kF16;
  int64_t row_elems = 0;
  size_t row_bytes = 0;
  float inv = 0, scale = 0;  // kInt8: 1 / s and s of this layer's cache
  int lo = -128, hi = 127;
  bool even = false;
};

// Row t of x [T, row_elems] into the cache at position *pos + t. One warp
// per 32 elements (the Q8_0 block of kQ8_0).
__global__ void StoreKvKernel(const float* x, int T, const int* pos, KvLayout c, uint8_t* cache) {
  const int pos0 = *pos;
  const int64_t blk = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  const int lane = threadIdx.x % kWarp;
  const int64_t blocks_per_row = (c.row_elems + 31) / 32;
  if (blk >= int64_t(T) * blocks_per_row) return;
  const int t = blk / blocks_per_row;
  const int64_t e = (blk % blocks_per_row) * 32 + lane;
  uint8_t* row = cache + int64_t(pos0 + t) * c.row_bytes;
  const float v = e < c.row_elems ? x[int64_t(t) * c.row_elems + e] : 0.0f;
  switch (c.type) {
    case KvType::kF32:
      if (e < c.row_elems) reinterpret_cast<float*>(row)[e] = v;
      return;
    case KvType::kF16:
      if (e < c.row_elems) reinterpret_cast<__half*>(row)[e] = __float2half_rn(v);
      return;
    case KvType::kInt8: {
      const float p = v * c.inv;
      const float r = c.even ? rintf(p) : roundf(p);
      if (e < c.row_elems) {
        reinterpret_cast<int8_t*>(row)[e] = static_cast<int8_t>(fminf(fmaxf(r, float(c.lo)), float(c.hi)));
      }
      return;
    }
    case KvType::kQ8_0: {  // row_elems % 32 == 0 (checked at creation)
      const float amax = WarpMax(fabsf(v));
      const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
      const float p = v * id;
      const int q = isfinite(p) ? min(127, max(-128, __float2int_rn(p))) : -128;
      uint8_t* b = row + (e / 32) * sizeof(BlockQ8_0);
      reinterpret_cast<int8_t*>(b + 2)[lane] = static_cast<int8_t>(q);
      if (lane == 0) {
        *reinterpret_cast<__half*>(b) = __float2half_rn(amax / 127.0f);
      }
      return;
    }
  }
}

__device__ __forceinline__ float KvAt(const KvLayout& c, const uint8_t* row, int64_t e) {
  switch (c.type) {
    case KvType::kF32: return reinterpret_cast<const float*>(row)[e];
    case KvType::kF16: return __half2float(reinterpret_cast<const __half*>(row)[e]);
    case KvType::kInt8: return reinterpret_cast<const int8_t*>(row)[e] * c.scale;
    default: {
      const uint8_t* b = row + (e / 32) * sizeof(BlockQ8_0);
      return HalfBits(Load16(b)) * reinterpret_cast<const int8_t*>(b + 2)[e % 32];
    }
  }
}

constexpr int kAttnWarps = 4;
constexpr int kMaxHeadDimPerLane = 8;  // head_dim <= 256

// Attention of token t = blockIdx.x / H, query head h = blockIdx.x % H
// over its cached positions lo..p, split in gridDim.y equal ranges (split
// s = blockIdx.y; the ranges follow the position read from device memory,
// so a recorded step stays right as the context grows). Each warp walks
// every kAttnWarps-th position of its range with an online softmax and the
// warps are merged. One split: out [T, H*D] directly. Several: the range's
// (max, sum, unnormalized output) go to part [T*H, splits, D + 2] for
// AttentionCombineKernel.
__global__ void __launch_bounds__(kAttnWarps * kWarp)
    AttentionKernel(const float* q, int T, int H, int group, int D, const int* pos, int window,
                    float attn_scale, KvLayout kc, KvLayout vc, const uint8_t* kcache,
                    const uint8_t* vcache, float* part, float* out) {
  const int t = blockIdx.x / H, h = blockIdx.x % H, kvh = h / group;
  const int split = blockIdx.y, n_split = gridDim.y;
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  const int p = *pos + t;
  const int lo = window > 0 ? max(0, p - window + 1) : 0;
  const int len = (p - lo + n_split) / n_split;  // ceil((p - lo + 1) / n_split)
  const int j0 = lo + split * len, j1 = min(p, j0 + len - 1);
  const float* qh = q + (int64_t(t) * H + h) * D;
  float qv[kMaxHeadDimPerLane], o[kMaxHeadDimPerLane];
  const int per_lane = (D + kWarp - 1) / kWarp;
#pragma unroll
  for (int i = 0; i < kMaxHeadDimPerLane; ++i) {
    const int e = lane + kWarp * i;
    qv[i] = (i < per_lane && e < D) ? qh[e] : 0.0f;
    o[i] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  for (int j = j0 + warp; j <= j1; j += kAttnWarps) {
    const uint8_t* krow = kcache + int64_t(j) * kc.row_bytes;
    float s = 0.0f;
#pragma unroll
    for (int i = 0; i < kMaxHeadDimPerLane; ++i) {
      const int e = lane + kWarp * i;
      if (i < per_lane && e < D) s += qv[i] * KvAt(kc, krow, int64_t(kvh) * D + e);
    }
    s = WarpSum(s) * attn_scale;
    const float m_new = fmaxf(m, s);
    const float corr = expf(m - m_new), pj = expf(s - m_new);
    l = l * corr + pj;
    const uint8_t* vrow = vcache + int64_t(j) * vc.row_bytes;
#pragma unroll
    for (int i = 0; i < kMaxHeadDimPerLane; ++i) {
      const int e = lane + kWarp * i;
      if (i < per_lane && e < D) o[i] = o[i] * corr + pj * KvAt(vc, vrow, int64_t(kvh) * D + e);
    }
    m = m_new;
  }
  __shared__ float sm[kAttnWarps], sl[kAttnWarps];
  __shared__ float so[kAttnWarps][kMaxHeadDimPerLane * kWarp];
  if (lane == 0) sm[warp] = m, sl[warp] = l;
#pragma unroll
  for (int i = 0; i < kMaxHeadDimPerLane; ++i) so[warp][lane + kWarp * i] = o[i];
  __syncthreads();
  float mm = -INFINITY;
  for (int w = 0; w < kAttnWarps; ++w) mm = fmaxf(mm, sm[w]);
  float denom = 0.0f;
  for (int w = 0; w < kAttnWarps; ++w) denom += sm[w] == -INFINITY ? 0.0f : sl[w] * expf(sm[w] - mm);
  const int64_t th = int64_t(t) * H + h;
  float* pr = part + (th * n_split + split) * (D + 2);
  if (n_split > 1 && threadIdx.x == 0) pr[0] = mm, pr[1] = denom;
  for (int e = threadIdx.x; e < D; e += blockDim.x) {
    float num = 0.0f;
    for (int w = 0; w < kAttnWarps; ++w) {
      if (sm[w] != -INFINITY) num += so[w][e] * expf(sm[w] - mm);
    }
    if (n_split > 1) {
      pr[2 + e] = num;
    } else {
      out[th * D + e] = num / denom;
    }
  }
}

// out [T, H*D] from the splits' partial results (block per token and head).
__global__ void AttentionCombineKernel(const float* part, int n_split, int D, float* out) {
  const int64_t th = blockIdx.x;
  const float* pr = part + th * n_split * (D + 2);
  float mm = -INFINITY;
  for (int s = 0; s < n_split; ++s) mm = fmaxf(mm, pr[s * (D + 2)]);
  float denom = 0.0f;
  for (int s = 0; s < n_split; ++s) {
    const float ms = pr[s * (D + 2)];
    if (ms != -INFINITY) denom += pr[s * (D + 2) + 1] * expf(ms - mm);
  }
  for (int e = threadIdx.x; e < D; e += blockDim.x) {
    float num = 0.0f;
    for (int s = 0; s < n_split; ++s) {
      const float ms = pr[s * (D + 2)];
      if (ms != -INFINITY) num += pr[s * (D + 2) + 2 + e] * expf(ms - mm);
    }
    out[th * D + e] = num / denom;
  }
}

// Blocks of (token, head) pairs below which attention splits the positions.
constexpr int kAttnTargetBlocks = 512;
constexpr int kAttnMinSplitLen = 16;

}  // namespace
}  // namespace qatk::inference

#endif  // QATK_INFERENCE_CUDA_ATTENTION_CUH_
