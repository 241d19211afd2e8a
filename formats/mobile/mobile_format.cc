// Type names, sizes and the code packing rules of the mobile format.
#include "formats/mobile/mobile_format.h"

#include <cstring>

#include "formats/quant/fp16.h"
#include "formats/util/status_macros.h"

namespace qatk::mobile {

const char* DTypeName(DType t) {
  switch (t) {
    case DType::kF32: return "F32";
    case DType::kF16: return "F16";
    case DType::kInt8Channel: return "INT8_CHANNEL";
    case DType::kInt4Channel: return "INT4_CHANNEL";
    case DType::kInt2Channel: return "INT2_CHANNEL";
  }
  return "?";
}

const char* ScaleTypeName(ScaleType t) {
  switch (t) {
    case ScaleType::kNone: return "none";
    case ScaleType::kF32: return "f32";
    case ScaleType::kF16: return "f16";
  }
  return "?";
}

const char* ActMethodName(ActMethod m) {
  switch (m) {
    case ActMethod::kNone: return "none";
    case ActMethod::kCalibrated: return "calibrated";
    case ActMethod::kLearned: return "learned";
  }
  return "?";
}

int CodeBits(DType t) {
  switch (t) {
    case DType::kInt8Channel: return 8;
    case DType::kInt4Channel: return 4;
    case DType::kInt2Channel: return 2;
    default: return 0;
  }
}

bool IsIntChannel(DType t) { return CodeBits(t) != 0; }

int CodeMin(DType t) { return IsIntChannel(t) ? -(1 << (CodeBits(t) - 1)) : 0; }
int CodeMax(DType t) { return IsIntChannel(t) ? (1 << (CodeBits(t) - 1)) - 1 : 0; }

uint64_t PackedRowBytes(DType t, uint64_t k) {
  const uint64_t bits = static_cast<uint64_t>(CodeBits(t));
  QATK_CHECK(bits != 0, "PackedRowBytes needs an INT* dtype");
  return (k * bits + 7) / 8;
}

void PackRow(DType t, const int8_t* codes, uint64_t k, uint8_t* out) {
  const int bits = CodeBits(t);
  QATK_CHECK(bits != 0, "PackRow needs an INT* dtype");
  const int lo = CodeMin(t), hi = CodeMax(t);
  if (bits == 8) {
    std::memcpy(out, codes, k);
    return;
  }
  const int per_byte = 8 / bits;
  const uint8_t mask = static_cast<uint8_t>((1u << bits) - 1);
  std::memset(out, 0, PackedRowBytes(t, k));
  for (uint64_t i = 0; i < k; ++i) {
    QATK_CHECK(codes[i] >= lo && codes[i] <= hi, "code out of range for the dtype");
    const int shift = static_cast<int>(i % per_byte) * bits;
    out[i / per_byte] |= static_cast<uint8_t>((static_cast<uint8_t>(codes[i]) & mask) << shift);
  }
}

void UnpackRow(DType t, const uint8_t* packed, uint64_t k, int8_t* codes) {
  const int bits = CodeBits(t);
  QATK_CHECK(bits != 0, "UnpackRow needs an INT* dtype");
  if (bits == 8) {
    std::memcpy(codes, packed, k);
    return;
  }
  const int per_byte = 8 / bits;
  const int sign_shift = 8 - bits;
  for (uint64_t i = 0; i < k; ++i) {
    const int shift = static_cast<int>(i % per_byte) * bits;
    // Move the field to the top of the byte, then arithmetic-shift it back.
    const uint8_t field = static_cast<uint8_t>(packed[i / per_byte] >> shift) << sign_shift;
    codes[i] = static_cast<int8_t>(static_cast<int8_t>(field) >> sign_shift);
  }
}

uint64_t TensorInfo::numel() const {
  uint64_t n = 1;
  for (uint64_t d : dims) n *= d;
  return n;
}

uint64_t TensorInfo::row_len() const {
  uint64_t n = 1;
  for (size_t i = 1; i < dims.size(); ++i) n *= dims[i];
  return n;
}

uint64_t CodesBytes(DType t, const std::vector<uint64_t>& dims) {
  if (dims.empty()) return 0;
  uint64_t numel = 1, k = 1;
  for (size_t i = 0; i < dims.size(); ++i) {
    numel *= dims[i];
    if (i > 0) k *= dims[i];
  }
  switch (t) {
    case DType::kF32: return numel * 4;
    case DType::kF16: return numel * 2;
    default: return dims[0] * PackedRowBytes(t, k);
  }
}

uint64_t ScalesBytes(ScaleType s, const std::vector<uint64_t>& dims) {
  if (dims.empty()) return 0;
  switch (s) {
    case ScaleType::kNone: return 0;
    case ScaleType::kF32: return dims[0] * 4;
    case ScaleType::kF16: return dims[0] * 2;
  }
  return 0;
}

float MobileFile::Scale(const TensorInfo& t, uint64_t row) const {
  const uint8_t* p = ScalesData(t);
  if (t.scale_type == ScaleType::kF32) {
    float f;
    std::memcpy(&f, p + 4 * row, 4);
    return f;
  }
  if (t.scale_type == ScaleType::kF16) {
    uint16_t h;
    std::memcpy(&h, p + 2 * row, 2);
    return Fp16ToFp32(h);
  }
  return 0.0f;
}

void MobileFile::DequantizeRow(const TensorInfo& t, uint64_t row, float* out) const {
  QATK_CHECK(row < t.rows(), "row out of range");
  const uint64_t k = t.row_len();
  const uint8_t* codes = Codes(t);
  if (t.dtype == DType::kF32) {
    std::memcpy(out, codes + row * k * 4, k * 4);
    return;
  }
  if (t.dtype == DType::kF16) {
    for (uint64_t i = 0; i < k; ++i) {
      uint16_t h;
      std::memcpy(&h, codes + (row * k + i) * 2, 2);
      out[i] = Fp16ToFp32(h);
    }
    return;
  }
  const uint64_t rb = PackedRowBytes(t.dtype, k);
  const float s = Scale(t, row);
  std::vector<int8_t> q(k);
  UnpackRow(t.dtype, codes + row * rb, k, q.data());
  for (uint64_t i = 0; i < k; ++i) out[i] = static_cast<float>(q[i]) * s;
}

const TensorInfo* MobileFile::FindTensor(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace qatk::mobile
