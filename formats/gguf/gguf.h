// GGUF v3 reader and writer.
//
// File layout (all little-endian; see docs/formats/gguf.md):
//   1. magic "GGUF" (4 bytes), version u32 (= 3), n_tensors i64, n_kv i64
//   2. n_kv metadata records: key (u64 len + bytes), value type i32, value
//      (arrays: element type i32, count u64, elements; strings: u64 len + bytes)
//   3. n_tensors tensor infos: name (< 64 bytes), n_dims u32 (<= 4),
//      ne[n_dims] i64 (ne[0] fastest, = PyTorch shape reversed), type i32,
//      offset u64 relative to the data section
//   4. zero padding to `general.alignment` (u32, default 32)
//   5. tensor data, in info order, each tensor padded to the alignment; the
//      offset of tensor i equals the sum of the padded sizes before it.
#ifndef QATK_FORMATS_GGUF_GGUF_H_
#define QATK_FORMATS_GGUF_GGUF_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "formats/quant/types.h"
#include "formats/util/file_io.h"

namespace qatk::gguf {

enum class ValueType : int32_t {
  kUint8 = 0, kInt8 = 1, kUint16 = 2, kInt16 = 3, kUint32 = 4, kInt32 = 5,
  kFloat32 = 6, kBool = 7, kString = 8, kArray = 9, kUint64 = 10, kInt64 = 11,
  kFloat64 = 12,
};
const char* ValueTypeName(ValueType t);

// One metadata value. Scalars use the variant; arrays keep their element type
// and one vector of the matching C++ type (strings as std::string).
struct Value {
  ValueType type = ValueType::kUint32;
  ValueType elem_type = ValueType::kUint32;  // arrays only
  std::variant<uint64_t, int64_t, double, bool, std::string,
               std::vector<uint64_t>, std::vector<int64_t>, std::vector<double>,
               std::vector<bool>, std::vector<std::string>>
      v;

  static Value U32(uint32_t x);
  static Value I32(int32_t x);
  static Value U64(uint64_t x);
  static Value F32(float x);
  static Value Bool(bool x);
  static Value Str(std::string x);
  static Value StrArray(std::vector<std::string> x);
  static Value F32Array(const std::vector<float>& x);
  static Value I32Array(const std::vector<int32_t>& x);
  static Value U32Array(const std::vector<uint32_t>& x);
  // Generic typed scalar/array constructors for the other element types.
  static Value Scalar(ValueType t, std::variant<uint64_t, int64_t, double, bool> x);

  // Accessors; kInvalidArgument if the stored type differs (message names it).
  absl::StatusOr<uint64_t> AsUint() const;   // any unsigned/signed int >= 0
  absl::StatusOr<int64_t> AsInt() const;     // any integer type
  absl::StatusOr<double> AsFloat() const;    // f32/f64
  absl::StatusOr<bool> AsBool() const;
  absl::StatusOr<std::string> AsString() const;
  size_t ArraySize() const;                  // 0 for scalars
};

struct TensorInfo {
  std::string name;
  GgmlType type = GgmlType::kF32;
  std::vector<int64_t> ne;  // ggml order: ne[0] contiguous
  uint64_t offset = 0;      // relative to the data section
  uint64_t nbytes = 0;
  int64_t n_elements() const;
};

// A parsed, memory-mapped GGUF file. Tensor data are zero-copy views into the
// mapping and stay valid while the GgufFile lives.
class GgufFile {
 public:
  // Errors name the path, the key/tensor and the byte offset:
  // kDataLoss (truncated/corrupt), kUnimplemented (unknown version or type),
  // kInvalidArgument (duplicate names, bad offsets, shape/type mismatch).
  static absl::StatusOr<GgufFile> Open(const std::string& path);
  // Parses an in-memory image (tests, fuzzing). `bytes` must outlive the file.
  static absl::StatusOr<GgufFile> Parse(absl::Span<const uint8_t> bytes,
                                        const std::string& name_for_errors);

  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  const std::string& path() const { return path_; }

  // Keys in file order.
  const std::vector<std::pair<std::string, Value>>& metadata() const { return kv_; }
  const Value* Find(const std::string& key) const;
  // Typed lookups: kNotFound naming the key, or kInvalidArgument on a type mismatch.
  absl::StatusOr<uint64_t> GetUint(const std::string& key) const;
  absl::StatusOr<double> GetFloat(const std::string& key) const;
  absl::StatusOr<std::string> GetString(const std::string& key) const;
  absl::StatusOr<bool> GetBool(const std::string& key) const;

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* FindTensor(const std::string& name) const;
  // Pointer to the tensor's first byte (inside the mapping).
  const uint8_t* TensorData(const TensorInfo& t) const;

 private:
  std::shared_ptr<MappedFile> file_;  // null when parsed from memory
  const uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  std::string path_;
  uint32_t version_ = 0;
  uint32_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, Value>> kv_;
  std::map<std::string, size_t> kv_index_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
  friend class GgufParser;
};

// Streams a GGUF file: declare metadata and tensor infos first, then write
// the tensors' bytes in declaration order (one call per tensor, possibly in
// several chunks), so models larger than RAM can be written. The file
// appears under its final name only after Finish() succeeds.
class GgufWriter {
 public:
  static absl::StatusOr<GgufWriter> Create(const std::string& path, uint32_t alignment = 32);

  // Duplicate or empty keys are kInvalidArgument; `general.alignment` is
  // written automatically when alignment != 32.
  absl::Status AddKv(const std::string& key, Value value);
  // ne in ggml order; ne[0] must be a multiple of the type's block size;
  // names must be unique and < 64 bytes.
  absl::Status AddTensorInfo(const std::string& name, GgmlType type, std::vector<int64_t> ne);

  // Writes header, metadata and tensor infos; called implicitly by the
  // first WriteTensorData.
  absl::Status WriteHeader();
  // Appends bytes of the current tensor; when a tensor's nbytes are complete
  // the padding is written and the next tensor becomes current.
  absl::Status WriteTensorData(const void* data, size_t n);
  // Checks every declared tensor was written in full, then commits atomically.
  absl::Status Finish();

 private:
  AtomicFileWriter out_;
  uint32_t alignment_ = 32;
  std::vector<std::pair<std::string, Value>> kv_;
  std::vector<TensorInfo> tensors_;
  bool header_written_ = false;
  size_t current_ = 0;
  uint64_t current_written_ = 0;
};

}  // namespace qatk::gguf

#endif  // QATK_FORMATS_GGUF_GGUF_H_
