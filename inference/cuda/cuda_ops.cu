// CudaOps: the forward pass's math on one GPU (see cuda_ops.h).
//
// Everything runs on the legacy default stream in issue order, so a host
// copy (ToHost) waits for the queued kernels and nothing else synchronizes.
#include "inference/cuda/cuda_ops.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <unordered_map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "formats/quant/types.h"
#include "inference/kernels_int.h"

namespace qatk::inference {
namespace {

// A CUDA call inside an Ops method has no Status to return: fail loudly.
#define QATK_CUDA_CHECK(expr)                                                          \
  do {                                                                                 \
    const cudaError_t err_ = (expr);                                                   \
    if (err_ != cudaSuccess) {                                                         \
      std::fprintf(stderr, "CUDA error %s at %s:%d: %s\n", cudaGetErrorName(err_),     \
                   __FILE__, __LINE__, cudaGetErrorString(err_));                      \
      std::abort();                                                                    \
    }                                                                                  \
  } while (0)
#define QATK_CUDA_LAUNCHED() QATK_CUDA_CHECK(cudaGetLastError())

#define QATK_CUDA_RETURN_IF_ERROR(expr)                                                   \
  do {                                                                                    \
    const cudaError_t err_ = (expr);                                                      \
    if (err_ != cudaSuccess) {                                                            \
      return absl::InternalError(absl::StrCat(#expr, ": ", cudaGetErrorString(err_)));   \
    }                                                                                     \
  } while (0)

constexpr int kWarp = 32;

// ---------------------------------------------------------------------------
// Weights on the device.

// Q8_0 / Q4_0 / Q2_0 are split at upload into the block codes and the
// block scales, so that a lane reads one 32-element unit's codes with one
// aligned vector load (the file's 34- and 18-byte blocks are only 2-byte
// aligned):
//   data    [rows][cols / 32][U] code bytes of each 32 elements, as in the
//           file (U = 32 Q8_0, 16 Q4_0, 8 Q2_0: one half of a 64-block)
//   scales  [rows][blocks] fp16 block scales (Q2_0: one per 64 elements)
// Other types keep the file's layout in `data`.
struct DevMatrix {
  WType type = WType::kF32;
  int64_t rows = 0, cols = 0;
  size_t row_bytes = 0;
  const uint8_t* data = nullptr;     // device (split codes for the Q8 act types, see above)
  const uint16_t* scales = nullptr;  // device fp16 block scales (Q8_0 / Q4_0 / Q2_0)
  const float* row_scales = nullptr; // device (int channel types)
  float act_scale = 0.0f;            // > 0: int8 activations (int channel types)
  int act_lo = 0, act_hi = 0;        // code range of the activation quantizer
  bool act_even = false;             // half-even rounding of activations
};

__host__ __device__ constexpr bool IsQ8ActType(WType t) {
  return t == WType::kQ8_0 || t == WType::kQ4_0 || t == WType::kQ2_0;
}
__host__ __device__ constexpr bool IsIntChannel(WType t) {
  return t == WType::kInt8Channel || t == WType::kInt4Channel || t == WType::kInt2Channel;
}
__host__ __device__ constexpr bool IsFloatType(WType t) {
  return t == WType::kF32 || t == WType::kF16 || t == WType::kBF16;
}

absl::Status CheckGpuType(const QMatrix& w, const char* what) {
  if (!IsQ8ActType(w.type) && !IsIntChannel(w.type) && !IsFloatType(w.type)) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": weight type ", WTypeName(w.type),
        " is not read by the CUDA kernels (a layout repacked for the CPU? load the model with "
        "LoadOptions::repack = false)"));
  }
  if (IsQ8ActType(w.type) && w.cols % (w.type == WType::kQ2_0 ? 64 : 32) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", w.cols, " columns are not whole blocks"));
  }
  if (IsIntChannel(w.type) && w.row_scales == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": int channel matrix without row scales"));
  }
  return absl::OkStatus();
}

// Owns device copies of weight matrices and norm vectors, keyed by host address.
class DeviceWeights {
 public:
  DeviceWeights() = default;
  DeviceWeights(const DeviceWeights&) = delete;
  DeviceWeights& operator=(const DeviceWeights&) = delete;
  ~DeviceWeights() {
    // At process exit the context may already be gone: ignore errors.
    for (void* p : allocs_) cudaFree(p);
  }

  absl::StatusOr<const DevMatrix*> Upload(const QMatrix& w, const char* what) {
    auto it = mats_.find(w.data);
    if (it != mats_.end()) return &it->second;
    if (auto s = CheckGpuType(w, what); !s.ok()) return s;
    DevMatrix d;
    d.type = w.type;
    d.rows = w.rows;
    d.cols = w.cols;
    d.row_bytes = w.row_bytes;
    void* p = nullptr;
    const size_t bytes = static_cast<size_t>(w.rows) * w.row_bytes;
    if (IsQ8ActType(w.type)) {
      // Split codes and scales (see DevMatrix).
      const bool q2 = w.type == WType::kQ2_0;
      const size_t block_bytes = q2 ? sizeof(BlockQ2_0) : w.type == WType::kQ4_0 ? sizeof(BlockQ4_0)
                                                                               : sizeof(BlockQ8_0);
      const int64_t blocks = w.cols / (q2 ? 64 : 32);
      const size_t code_bytes = block_bytes - 2;
      std::vector<uint8_t> codes(size_t(w.rows) * blocks * code_bytes);
      std::vector<uint16_t> sc(size_t(w.rows) * blocks);
      const uint8_t* src = static_cast<const uint8_t*>(w.data);
      for (int64_t i = 0; i < w.rows * blocks; ++i) {
        const uint8_t* b = src + (i / blocks) * w.row_bytes + (i % blocks) * block_bytes;
        std::memcpy(&sc[i], b, 2);
        std::memcpy(&codes[i * code_bytes], b + 2, code_bytes);
      }
      void* ps = nullptr;
      QATK_CUDA_RETURN_IF_ERROR(cudaMalloc(&p, std::max<size_t>(codes.size(), 16)));
      allocs_.push_back(p);
      QATK_CUDA_RETURN_IF_ERROR(cudaMalloc(&ps, std::max<size_t>(sc.size() * 2, 16)));
      allocs_.push_back(ps);
      QATK_CUDA_RETURN_IF_ERROR(cudaMemcpy(p, codes.data(), codes.size(), cudaMemcpyHostToDevice));
      QATK_CUDA_RETURN_IF_ERROR(cudaMemcpy(ps, sc.data(), sc.size() * 2, cudaMemcpyHostToDevice));
      d.scales = static_cast<const uint16_t*>(ps);
    } else {
      QATK_CUDA_RETURN_IF_ERROR(cudaMalloc(&p, std::max<size_t>(bytes, 16)));
      allocs_.push_back(p);
      QATK_CUDA_RETURN_IF_ERROR(cudaMemcpy(p, w.data, bytes, cudaMemcpyHostToDevice));
    }
    d.data = static_cast<const uint8_t*>(p);
    if (IsIntChannel(w.type)) {
      void* s = nullptr;
      QATK_CUDA_RETURN_IF_ERROR(cudaMalloc(&s, w.rows * sizeof(float)));
      allocs_.push_back(s);
      QATK_CUDA_RETURN_IF_ERROR(
          cudaMemcpy(s, w.row_scales, w.rows * sizeof(float), cudaMemcpyHostToDevice));
      d.row_scales = static_cast<const float*>(s);
      d.act_scale = w.act_scale;
      if (w.act_scale > 0.0f) {
        const QuantSpec spec = ActivationSpec(w);
        d.act_lo = -spec.Qn();
        d.act_hi = spec.Qp();
        d.act_even = spec.rounding == Rounding::kHalfEven;
      }
    }
    return &mats_.emplace(w.data, d).first->second;
  }

  absl::StatusOr<const float*> Vector(const float* host, size_t n) {
    auto it = vecs_.find(host);
    if (it != vecs_.end()) return it->second;
    void* p = nullptr;
    QATK_CUDA_RETURN_IF_ERROR(cudaMalloc(&p, std::max<size_t>(n, 1) * sizeof(float)));
    allocs_.push_back(p);
    QATK_CUDA_RETURN_IF_ERROR(cudaMemcpy(p, host, n * sizeof(float), cudaMemcpyHostToDevice));
    return vecs_.emplace(host, static_cast<const float*>(p)).first->second;
  }

 private:
  std::unordered_map<const void*, DevMatrix> mats_;
  std::unordered_map<const float*, const float*> vecs_;
  std::vector<void*> allocs_;
};

// ---------------------------------------------------------------------------
// Device helpers.

__device__ __forceinline__ float WarpSum(float v) {
  for (int o = kWarp / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ int WarpSumInt(int v) {
  for (int o = kWarp / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float WarpMax(float v) {
  for (int o = kWarp / 2; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

__device__ __forceinline__ float HalfBits(uint16_t h) { return __half2float(__ushort_as_half(h)); }
__device__ __forceinline__ uint16_t Load16(const uint8_t* p) {
  return *reinterpret_cast<const uint16_t*>(p);  // every block field is 2-byte aligned
}
// Four 2-bit codes of one byte as int8x4 of (code - 1).
__device__ __forceinline__ int Expand2Bit(uint32_t b) {
  const uint32_t e = (b & 3u) | ((b >> 2) & 3u) << 8 | ((b >> 4) & 3u) << 16 | ((b >> 6) & 3u) << 24;
  return static_cast<int>(__vsubss4(e, 0x01010101u));
}
__device__ __forceinline__ int Pack4(int a, int b, int c, int d) {
  return (a & 0xff) | (b & 0xff) << 8 | (c & 0xff) << 16 | (d & 0xff) << 24;
}

__device__ __forceinline__ int IntCodeAt(WType t, const uint8_t* row, int64_t k) {
  switch (t) {
    case WType::kInt8Channel: return static_cast<int8_t>(row[k]);
    case WType::kInt4Channel:
      return static_cast<int>(static_cast<uint32_t>(row[k >> 1] >> ((k & 1) * 4)) << 28) >> 28;
    default:  // kInt2Channel
      return static_cast<int>(static_cast<uint32_t>(row[k >> 2] >> ((k & 3) * 2)) << 30) >> 30;
  }
}

// The 32 int8 weight codes of elements [32 kb, 32 kb + 32) of row r, as 8
// int8x4 words in element order, and the block's scale (1 for int channel
// types, whose row scale is applied after the row sum). Elements past cols
// read as 0.
template <WType T>
__device__ __forceinline__ void DecodeInt32(const DevMatrix& w, int64_t r, int64_t kb, int q[8],
                                            float* scale) {
  const int64_t units = w.cols / 32;  // 32-element units per row (GGUF types)
  if constexpr (T == WType::kQ8_0) {
    const int4* c = reinterpret_cast<const int4*>(w.data + (r * units + kb) * 32);
    const int4 a = c[0], b = c[1];
    q[0] = a.x, q[1] = a.y, q[2] = a.z, q[3] = a.w, q[4] = b.x, q[5] = b.y, q[6] = b.z, q[7] = b.w;
    *scale = HalfBits(w.scales[r * units + kb]);
  } else if constexpr (T == WType::kQ4_0) {
    const int4 v = *reinterpret_cast<const int4*>(w.data + (r * units + kb) * 16);
    const uint32_t vv[4] = {uint32_t(v.x), uint32_t(v.y), uint32_t(v.z), uint32_t(v.w)};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      q[i] = static_cast<int>(__vsubss4(vv[i] & 0x0F0F0F0Fu, 0x08080808u));
      q[4 + i] = static_cast<int>(__vsubss4((vv[i] >> 4) & 0x0F0F0F0Fu, 0x08080808u));
    }
    *scale = HalfBits(w.scales[r * units + kb]);
  } else if constexpr (T == WType::kQ2_0) {
    const int2 v = *reinterpret_cast<const int2*>(w.data + (r * units + kb) * 8);
    const uint32_t vv[2] = {uint32_t(v.x), uint32_t(v.y)};
#pragma unroll
    for (int i = 0; i < 2; ++i) {
#pragma unroll
      for (int j = 0; j < 4; ++j) q[4 * i + j] = Expand2Bit((vv[i] >> (8 * j)) & 0xffu);
    }
    *scale = HalfBits(w.scales[r * (units / 2) + kb / 2]);
  } else {
    const uint8_t* row = w.data + r * w.row_bytes;
    *scale = 1.0f;
    const int64_t k0 = kb * 32;
    if (k0 + 32 <= w.cols) {
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        const int64_t k = k0 + 4 * i;
        q[i] = Pack4(IntCodeAt(T, row, k), IntCodeAt(T, row, k + 1), IntCodeAt(T, row, k + 2),
                     IntCodeAt(T, row, k + 3));
      }
    } else {
      for (int i = 0; i < 8; ++i) {
        int c[4];
        for (int j = 0; j < 4; ++j) {
          const int64_t k = k0 + 4 * i + j;
          c[j] = k < w.cols ? IntCodeAt(T, row, k) : 0;
        }
        q[i] = Pack4(c[0], c[1], c[2], c[3]);
      }
    }
  }
}

// Sum of the 32 products of one block's weight codes q (8 x int8x4) and
// activation codes a0, a1 (elements 0-15, 16-31).
__device__ __forceinline__ int Dot32(const int q[8], const int4& a0, const int4& a1) {
  int s = __dp4a(q[0], a0.x, 0);
  s = __dp4a(q[1], a0.y, s);
  s = __dp4a(q[2], a0.z, s);
  s = __dp4a(q[3], a0.w, s);
  s = __dp4a(q[4], a1.x, s);
  s = __dp4a(q[5], a1.y, s);
  s = __dp4a(q[6], a1.z, s);
  return __dp4a(q[7], a1.w, s);
}

// Element k of row r as fp32: the value (F32/F16/BF16) or the int code
// (weight-only int channel types; the row scale is applied after the sum).
template <WType T>
__device__ __forceinline__ float FloatAt(const DevMatrix& w, int64_t r, int64_t k) {
  const uint8_t* row = w.data + r * w.row_bytes;
  if constexpr (T == WType::kF32) {
    return reinterpret_cast<const float*>(row)[k];
  } else if constexpr (T == WType::kF16) {
    return HalfBits(reinterpret_cast<const uint16_t*>(row)[k]);
  } else if constexpr (T == WType::kBF16) {
    return __uint_as_float(uint32_t(reinterpret_cast<const uint16_t*>(row)[k]) << 16);
  } else {
    return static_cast<float>(IntCodeAt(T, row, k));
  }
}

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

__global__ void RopeKernel(float* x, int T, int n_heads, int D, const int* pos, float base, bool neox) {
  const int pos0 = *pos;
  const int half = D / 2;
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= int64_t(T) * half * n_heads) return;
  const int h = idx % n_heads, i = (idx / n_heads) % half, t = idx / (int64_t(n_heads) * half);
  const double theta = (pos0 + t) * pow(double(base), -2.0 * i / D);
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

__global__ void SoftcapKernel(float* x, int64_t n, float cap) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) x[i] = cap * tanhf(x[i] / cap);
}

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

int Blocks(int64_t n, int threads) { return static_cast<int>((n + threads - 1) / threads); }

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


// ---------------------------------------------------------------------------
// The Ops.

class CudaOps final : public Ops {
 public:
  CudaOps(const ModelConfig& c, const KvCache& kv, std::shared_ptr<DeviceWeights> weights)
      : c_(c), weights_(std::move(weights)) {
    kv_.type = kv.type;
    kv_.row_elems = kv.row_elems;
    kv_.row_bytes = kv.row_bytes;
    if (kv.type == KvType::kInt8) {
      kv_.lo = -kv.int8_spec.Qn();
      kv_.hi = kv.int8_spec.Qp();
      kv_.even = kv.int8_spec.rounding == Rounding::kHalfEven;
      k_scale_ = kv.k_scale;
      v_scale_ = kv.v_scale;
    }
    n_ctx_ = kv.n_ctx;
    const char* g = std::getenv("QATK_CUDA_GRAPHS");
    graphs_ = !(g != nullptr && std::string(g) == "0");
  }

  ~CudaOps() override {
    if (exec_ != nullptr) cudaGraphExecDestroy(exec_);
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
    cudaFreeHost(pos_host_);
    for (void* p : allocs_) cudaFree(p);
  }

  // max_cols: the widest activation row a MatMul will see (scratch is sized
  // once so that recorded steps keep valid addresses).
  absl::Status Init(int max_batch, int64_t max_cols) {
    QATK_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    QATK_CUDA_RETURN_IF_ERROR(cudaMallocHost(&pos_host_, sizeof(int)));
    void* p = nullptr;
    QATK_CUDA_RETURN_IF_ERROR(cudaMalloc(&p, sizeof(int)));
    allocs_.push_back(p);
    pos_dev_ = static_cast<int*>(p);
    QATK_CUDA_RETURN_IF_ERROR(cudaMemset(pos_dev_, 0, sizeof(int)));
    for (int il = 0; il < c_.n_layer; ++il) {
      for (auto* cache : {&kcache_, &vcache_}) {
        QATK_CUDA_RETURN_IF_ERROR(cudaMalloc(&p, kv_.row_bytes * n_ctx_));
        QATK_CUDA_RETURN_IF_ERROR(cudaMemset(p, 0, kv_.row_bytes * n_ctx_));
        allocs_.push_back(p);
        cache->push_back(static_cast<uint8_t*>(p));
      }
    }
    // Partial attention results: < 2 * kAttnTargetBlocks (token, head, split) triples.
    QATK_CUDA_RETURN_IF_ERROR(
        cudaMalloc(&p, size_t(2 * kAttnTargetBlocks) * (c_.head_dim + 2) * sizeof(float)));
    allocs_.push_back(p);
    attn_part_ = static_cast<float*>(p);
    if (max_cols > 0) {
      const int64_t padded = (max_cols + 31) / 32 * 32;
      scratch_.Reserve(size_t(max_batch) * padded, size_t(max_batch) * padded / 32);
    }
    return absl::OkStatus();
  }

  float* Alloc(size_t n) override {
    void* p = nullptr;
    QATK_CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(n, 1) * sizeof(float)));
    QATK_CUDA_CHECK(cudaMemset(p, 0, std::max<size_t>(n, 1) * sizeof(float)));
    allocs_.push_back(p);
    return static_cast<float*>(p);
  }
  void Upload(const float* host, size_t n, float* dst) override {
    prepared_ = {};  // may write a prepared input
    // Pageable source: returns once the bytes are staged, in stream order.
    QATK_CUDA_CHECK(cudaMemcpyAsync(dst, host, n * sizeof(float), cudaMemcpyHostToDevice, stream_));
  }
  const float* ToHost(const float* src, size_t n, float* staging) override {
    QATK_CUDA_CHECK(cudaMemcpyAsync(staging, src, n * sizeof(float), cudaMemcpyDeviceToHost, stream_));
    QATK_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return staging;
  }
  bool host_memory() const override { return false; }

  // Single-token steps are recorded once as a CUDA graph and replayed: one
  // launch per token instead of ~30 per layer. The position is the only
  // thing that changes between steps, and the kernels read it from device
  // memory (pos_dev_), written before the replay.
  bool BeginStep(int pos0, int n) override {
    prepared_ = {};
    SetPos(pos0);
    if (!graphs_ || n != 1) return false;
    if (exec_ != nullptr && graph_generation_ != scratch_.generation) {
      QATK_CUDA_CHECK(cudaGraphExecDestroy(exec_));
      exec_ = nullptr;
    }
    if (exec_ != nullptr) {
      QATK_CUDA_CHECK(cudaGraphLaunch(exec_, stream_));
      return true;
    }
    QATK_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    capturing_ = true;
    return false;
  }
  void EndStep() override {
    if (!capturing_) return;
    capturing_ = false;
    cudaGraph_t graph = nullptr;
    QATK_CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
    QATK_CUDA_CHECK(cudaGraphInstantiate(&exec_, graph, 0));
    graph_generation_ = scratch_.generation;
    QATK_CUDA_CHECK(cudaGraphDestroy(graph));
    QATK_CUDA_CHECK(cudaGraphLaunch(exec_, stream_));
  }

  void Add(float* x, const float* y, int64_t n) override {
    prepared_ = {};  // may write a prepared input
    AddKernel<<<Blocks(n, 256), 256, 0, stream_>>>(x, y, n);
    QATK_CUDA_LAUNCHED();
  }
  void Softcap(float* x, int64_t n, float cap) override {
    prepared_ = {};  // may write a prepared input
    SoftcapKernel<<<Blocks(n, 256), 256, 0, stream_>>>(x, n, cap);
    QATK_CUDA_LAUNCHED();
  }

  // Consecutive products of one input (q, k, v; gate, up) share its
  // prepared activations: the key says what the scratch holds.
  void MatMul(const QMatrix& w, const float* x, int n, float* y) override {
    auto d = weights_->Upload(w, "MatMul");
    if (!d.ok()) {
      std::fprintf(stderr, "CUDA backend: %s\n", std::string(d.status().message()).c_str());
      std::abort();
    }
    const DevMatrix& m = **d;
    const PreparedKey key = KeyOf(m, x, n);
    if (key.kind != 0 && !(key == prepared_)) {
      PrepareActivations(m, x, n, scratch_, stream_);
      prepared_ = key;
    }
    LaunchMatMul(m, x, n, y, scratch_, stream_);
    // The output may be the prepared input of a later product: forget it.
    if (y < prepared_.x + size_t(prepared_.n) * prepared_.cols && prepared_.x < y + size_t(n) * m.rows) {
      prepared_ = {};
    }
  }

  void RmsNorm(const float* x, const float* w, int n, int dim, float eps, float* y) override {
    prepared_ = {};  // may write a prepared input
    RmsNormKernel<<<n, 256, 0, stream_>>>(x, DeviceVector(w, dim), dim, eps, y);
    QATK_CUDA_LAUNCHED();
  }

  void Rope(float* x, int T, int n_heads, int D, int pos0, float base, bool neox) override {
    prepared_ = {};  // may write a prepared input
    SetPos(pos0);
    RopeKernel<<<Blocks(int64_t(T) * n_heads * (D / 2), 256), 256, 0, stream_>>>(
        x, T, n_heads, D, pos_dev_, base, neox);
    QATK_CUDA_LAUNCHED();
  }

  void Attention(const float* q, const float* k, const float* v, int T, int pos0, int layer,
                 int window, KvCache&, float* out) override {
    prepared_ = {};  // may write a prepared input
    SetPos(pos0);
    KvLayout kc = kv_, vc = kv_;
    if (kv_.type == KvType::kInt8) {
      kc.scale = k_scale_[layer];
      kc.inv = kc.scale != 0.0f ? 1.0f / kc.scale : 0.0f;
      vc.scale = v_scale_[layer];
      vc.inv = vc.scale != 0.0f ? 1.0f / vc.scale : 0.0f;
    }
    const int64_t blocks = int64_t(T) * ((kv_.row_elems + 31) / 32);
    StoreKvKernel<<<Blocks(blocks * kWarp, 256), 256, 0, stream_>>>(k, T, pos_dev_, kc, kcache_[layer]);
    QATK_CUDA_LAUNCHED();
    StoreKvKernel<<<Blocks(blocks * kWarp, 256), 256, 0, stream_>>>(v, T, pos_dev_, vc, vcache_[layer]);
    QATK_CUDA_LAUNCHED();
    // Split the positions when there are too few (token, head) blocks to
    // fill the GPU (decode): by the most positions this cache can hold, so
    // a recorded step keeps enough splits as the context grows.
    const int th = T * c_.n_head;
    const int max_pos = window > 0 ? std::min(window, n_ctx_) : n_ctx_;
    int n_split = 1;
    if (th < kAttnTargetBlocks) {
      n_split = std::min((kAttnTargetBlocks + th - 1) / th,
                         std::max(1, max_pos / kAttnMinSplitLen));
    }
    AttentionKernel<<<dim3(th, n_split), kAttnWarps * kWarp, 0, stream_>>>(
        q, T, c_.n_head, c_.n_head / c_.n_head_kv, c_.head_dim, pos_dev_, window, c_.attn_scale,
        kc, vc, kcache_[layer], vcache_[layer], attn_part_, out);
    QATK_CUDA_LAUNCHED();
    if (n_split > 1) {
      AttentionCombineKernel<<<th, 128, 0, stream_>>>(attn_part_, n_split, c_.head_dim, out);
      QATK_CUDA_LAUNCHED();
    }
  }

  void GatedAct(float* g, const float* u, int64_t n, bool gelu) override {
    prepared_ = {};  // may write a prepared input
    GatedActKernel<<<Blocks(n, 256), 256, 0, stream_>>>(g, u, n, gelu);
    QATK_CUDA_LAUNCHED();
  }

 private:
  // The device copy of the position the kernels read. Outside a recording
  // only: the pinned source is rewritten after the stream has drained.
  void SetPos(int pos0) {
    if (pos0 == pos_) return;
    QATK_CUDA_CHECK(cudaStreamSynchronize(stream_));
    *pos_host_ = pos0;
    QATK_CUDA_CHECK(cudaMemcpyAsync(pos_dev_, pos_host_, sizeof(int), cudaMemcpyHostToDevice, stream_));
    pos_ = pos0;
  }

  const float* DeviceVector(const float* host, int n) {
    auto d = weights_->Vector(host, n);
    if (!d.ok()) {
      std::fprintf(stderr, "CUDA backend: %s\n", std::string(d.status().message()).c_str());
      std::abort();
    }
    return *d;
  }

  const ModelConfig c_;
  std::shared_ptr<DeviceWeights> weights_;
  KvLayout kv_;
  int n_ctx_ = 0;
  std::vector<float> k_scale_, v_scale_;
  std::vector<uint8_t*> kcache_, vcache_;
  std::vector<void*> allocs_;
  // What the activation scratch holds (kind 0: nothing).
  struct PreparedKey {
    int kind = 0;  // 1: Q8_0 blocks, 2: static int8 codes
    const float* x = nullptr;
    int n = 0;
    int64_t cols = 0;
    float act_scale = 0;
    int lo = 0, hi = 0;
    bool even = false;
    bool operator==(const PreparedKey& o) const {
      return kind == o.kind && x == o.x && n == o.n && cols == o.cols && act_scale == o.act_scale &&
             lo == o.lo && hi == o.hi && even == o.even;
    }
  };
  static PreparedKey KeyOf(const DevMatrix& m, const float* x, int n) {
    PreparedKey k;
    if (IsQ8ActType(m.type)) {
      k.kind = 1;
    } else if (IsIntChannel(m.type) && m.act_scale > 0.0f) {
      k.kind = 2;
      k.act_scale = m.act_scale, k.lo = m.act_lo, k.hi = m.act_hi, k.even = m.act_even;
    } else {
      return k;
    }
    k.x = x, k.n = n, k.cols = m.cols;
    return k;
  }
  PreparedKey prepared_;
  ActScratch scratch_;
  float* attn_part_ = nullptr;
  cudaStream_t stream_ = nullptr;
  int* pos_host_ = nullptr;  // pinned
  int* pos_dev_ = nullptr;
  int pos_ = 0;              // value last written to pos_dev_ (memset 0)
  bool graphs_ = true;
  bool capturing_ = false;
  cudaGraphExec_t exec_ = nullptr;
  int graph_generation_ = 0;
};

absl::Status UploadModel(const Model& m, DeviceWeights& dw) {
  auto up = [&](const QMatrix& w, const std::string& name) -> absl::Status {
    return dw.Upload(w, name.c_str()).status();
  };
  auto vec = [&](const std::vector<float>& v) -> absl::Status {
    if (v.empty()) return absl::OkStatus();
    return dw.Vector(v.data(), v.size()).status();
  };
  for (size_t il = 0; il < m.layers.size(); ++il) {
    const LayerWeights& L = m.layers[il];
    const std::string b = absl::StrCat("layer ", il, " ");
    const QMatrix* mats[] = {&L.wq, &L.wk, &L.wv, &L.wo, &L.gate, &L.up, &L.down};
    const char* names[] = {"wq", "wk", "wv", "wo", "gate", "up", "down"};
    for (int i = 0; i < 7; ++i) {
      if (auto s = up(*mats[i], b + names[i]); !s.ok()) return s;
    }
    const std::vector<float>* vecs[] = {&L.attn_norm,      &L.ffn_norm, &L.post_attn_norm,
                                        &L.post_ffw_norm, &L.q_norm,   &L.k_norm};
    for (const auto* v : vecs) {
      if (auto s = vec(*v); !s.ok()) return s;
    }
  }
  if (auto s = up(m.output, "output"); !s.ok()) return s;
  return vec(m.output_norm);
}

}  // namespace

void SetCudaDecodeRowsPerWarp(int rows) { g_rows_per_warp = rows == 2 || rows == 4 ? rows : 1; }
int CudaDecodeRowsPerWarp() { return g_rows_per_warp; }

absl::Status CudaAvailable() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    return absl::UnavailableError(absl::StrCat("no usable CUDA device: ", cudaGetErrorString(e)));
  }
  if (n == 0) return absl::UnavailableError("no CUDA device found");
  return absl::OkStatus();
}

std::string CudaDeviceDescription() {
  if (!CudaAvailable().ok()) return "";
  int dev = 0;
  cudaDeviceProp p{};
  if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&p, dev) != cudaSuccess) return "";
  return absl::StrFormat("%s, %d SMs, %.1f GiB, sm_%d%d", p.name, p.multiProcessorCount,
                         p.totalGlobalMem / 1073741824.0, p.major, p.minor);
}

absl::StatusOr<std::unique_ptr<Ops>> MakeCudaOps(const Model* model, const ModelConfig& config,
                                                 const KvCache& kv, int max_batch) {
  if (auto s = CudaAvailable(); !s.ok()) return s;
  if (config.head_dim > kMaxHeadDimPerLane * kWarp) {
    return absl::InvalidArgumentError(
        absl::StrCat("CUDA backend: head_dim ", config.head_dim, " > ", kMaxHeadDimPerLane * kWarp));
  }
  if (kv.type == KvType::kQ8_0 && kv.row_elems % 32 != 0) {
    return absl::InvalidArgumentError("CUDA backend: q8_0 KV cache needs Hk*D % 32 == 0");
  }
  std::shared_ptr<DeviceWeights> weights;
  if (model != nullptr) {
    weights = std::static_pointer_cast<DeviceWeights>(model->device_weights);
    if (!weights) {
      weights = std::make_shared<DeviceWeights>();
      if (auto s = UploadModel(*model, *weights); !s.ok()) return s;
      model->device_weights = weights;
    }
  } else {
    weights = std::make_shared<DeviceWeights>();
  }
  int64_t max_cols = 0;
  if (model != nullptr) {
    max_cols = std::max<int64_t>({config.n_embd, int64_t(config.n_head) * config.head_dim,
                                  config.n_ff});
  }
  auto ops = std::make_unique<CudaOps>(config, kv, std::move(weights));
  if (auto s = ops->Init(std::max(1, max_batch), max_cols); !s.ok()) return s;
  return std::unique_ptr<Ops>(std::move(ops));
}

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
