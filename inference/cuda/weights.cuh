// Weights on the device: the upload of QMatrix / norm vectors (DeviceWeights)
// and the device-side readers of their codes.
// Part of the CUDA backend's one translation unit, cuda_ops.cu, which includes
// the cuda/*.cuh files in dependency order: definitions have internal linkage.
#ifndef QATK_INFERENCE_CUDA_WEIGHTS_CUH_
#define QATK_INFERENCE_CUDA_WEIGHTS_CUH_

#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "formats/quant/types.h"
#include "inference/cuda/common.cuh"
#include "inference/kernels/int.h"
#include "inference/weights.h"

namespace qatk::inference {
namespace {

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
// Reading weight codes on the device.

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

}  // namespace
}  // namespace qatk::inference

#endif  // QATK_INFERENCE_CUDA_WEIGHTS_CUH_
