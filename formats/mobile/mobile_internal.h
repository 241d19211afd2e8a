// Internals shared by the mobile reader and writer: little-endian byte
// building, a bounds-checked cursor, and the field rules both sides enforce.
#ifndef QATK_FORMATS_MOBILE_MOBILE_INTERNAL_H_
#define QATK_FORMATS_MOBILE_MOBILE_INTERNAL_H_

#include <cstdint>
#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "formats/mobile/mobile_format.h"

namespace qatk::mobile::internal {

static_assert(sizeof(float) == 4, "f32 must be 4 bytes");

class ByteBuilder {
 public:
  void Bytes(const void* p, size_t n) { s_.append(static_cast<const char*>(p), n); }
  void U8(uint8_t v) { Bytes(&v, 1); }
  void U16(uint16_t v) { Bytes(&v, 2); }  // the project targets little-endian hosts
  void U32(uint32_t v) { Bytes(&v, 4); }
  void I32(int32_t v) { Bytes(&v, 4); }
  void U64(uint64_t v) { Bytes(&v, 8); }
  void F32(float v) { Bytes(&v, 4); }
  void Str(const std::string& v) {
    U32(static_cast<uint32_t>(v.size()));
    Bytes(v.data(), v.size());
  }
  std::string Take() { return std::move(s_); }

 private:
  std::string s_;
};

// Reads little-endian fields from [begin, end) of a file image; every read is
// bounded by the bytes left and errors name the file, the field and the
// absolute byte offset.
class Cursor {
 public:
  Cursor(const uint8_t* base, uint64_t begin, uint64_t end, const std::string* file)
      : base_(base), pos_(begin), end_(end), file_(file) {}

  uint64_t pos() const { return pos_; }
  uint64_t left() const { return end_ - pos_; }

  absl::Status Need(uint64_t n, const char* field) const;
  absl::StatusOr<uint8_t> U8(const char* field);
  absl::StatusOr<uint16_t> U16(const char* field);
  absl::StatusOr<uint32_t> U32(const char* field);
  absl::StatusOr<int32_t> I32(const char* field);
  absl::StatusOr<uint64_t> U64(const char* field);
  absl::StatusOr<float> F32(const char* field);
  // u32 length + bytes; length <= max_len and <= bytes left.
  absl::StatusOr<std::string> Str(const char* field, uint32_t max_len);
  absl::Status Error(absl::StatusCode code, const std::string& msg) const;

 private:
  const uint8_t* base_;
  uint64_t pos_, end_;
  const std::string* file_;
};

// Rules shared by writer (kInvalidArgument) and reader.
absl::Status ValidateTokenizer(const Tokenizer& t, const std::string& file);
// The lowest format version that holds `t`: 2 with BPE fields, else 1.
inline uint32_t TokenizerVersion(const Tokenizer& t) {
  return t.pre.empty() && t.merges.empty() ? 1 : 2;
}
// Checks name, dtype, dims, scale type and activation scale of one entry
// (not offsets).
absl::Status ValidateEntry(const TensorInfo& t, const std::string& file);

}  // namespace qatk::mobile::internal

#endif  // QATK_FORMATS_MOBILE_MOBILE_INTERNAL_H_
