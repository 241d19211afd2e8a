// The CUDA backend's shared pieces: error checks, launch geometry and the
// warp / bit-twiddling device helpers.
// Part of the CUDA backend's one translation unit, cuda_ops.cu, which includes
// the cuda/*.cuh files in dependency order: definitions have internal linkage.
#ifndef QATK_INFERENCE_CUDA_COMMON_CUH_
#define QATK_INFERENCE_CUDA_COMMON_CUH_

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "inference/weights.h"

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

int Blocks(int64_t n, int threads) { return static_cast<int>((n + threads - 1) / threads); }

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

}  // namespace
}  // namespace qatk::inference

#endif  // QATK_INFERENCE_CUDA_COMMON_CUH_
