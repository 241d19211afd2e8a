// Helpers shared by the GGUF reader and writer (not part of the public API).
#ifndef QATK_FORMATS_GGUF_GGUF_INTERNAL_H_
#define QATK_FORMATS_GGUF_GGUF_INTERNAL_H_

#include <cstdint>

#include "formats/gguf/gguf.h"

namespace qatk::gguf::internal {

constexpr char kMagic[4] = {'G', 'G', 'U', 'F'};
constexpr uint32_t kVersion = 3;
constexpr uint32_t kDefaultAlignment = 32;
constexpr uint64_t kMaxStringBytes = uint64_t{1} << 30;  // llama.cpp's cap
constexpr uint64_t kMaxArrayElems = uint64_t{1} << 30;   // llama.cpp's cap
constexpr size_t kMaxNameBytes = 63;                     // GGML_MAX_NAME - 1
constexpr int kMaxDims = 4;                              // GGML_MAX_DIMS
constexpr const char* kAlignmentKey = "general.alignment";

// True for ids 0..12.
inline bool IsKnownValueType(int32_t t) { return t >= 0 && t <= 12; }

// Bytes of one scalar on disk; 0 for string/array (variable size).
inline uint64_t ScalarSize(ValueType t) {
  switch (t) {
    case ValueType::kUint8: case ValueType::kInt8: case ValueType::kBool: return 1;
    case ValueType::kUint16: case ValueType::kInt16: return 2;
    case ValueType::kUint32: case ValueType::kInt32: case ValueType::kFloat32: return 4;
    case ValueType::kUint64: case ValueType::kInt64: case ValueType::kFloat64: return 8;
    case ValueType::kString: case ValueType::kArray: return 0;
  }
  return 0;
}

inline bool IsUnsigned(ValueType t) {
  return t == ValueType::kUint8 || t == ValueType::kUint16 || t == ValueType::kUint32 ||
         t == ValueType::kUint64;
}
inline bool IsSigned(ValueType t) {
  return t == ValueType::kInt8 || t == ValueType::kInt16 || t == ValueType::kInt32 ||
         t == ValueType::kInt64;
}
inline bool IsFloat(ValueType t) {
  return t == ValueType::kFloat32 || t == ValueType::kFloat64;
}

inline uint64_t AlignUp(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }
inline bool IsPowerOfTwo(uint64_t a) { return a != 0 && (a & (a - 1)) == 0; }

// Bytes of a tensor of `type` and shape `ne` (ggml order), or an error when
// a dimension is negative, ne[0] is not a multiple of the block size, or the
// element/byte count overflows int64. `what` names the tensor in messages.
absl::StatusOr<uint64_t> TensorBytes(GgmlType type, const std::vector<int64_t>& ne,
                                     const std::string& what);

}  // namespace qatk::gguf::internal

#endif  // QATK_FORMATS_GGUF_GGUF_INTERNAL_H_
