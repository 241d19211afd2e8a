// safetensors reader and writer (the Hugging Face checkpoint format).
//
// Layout: u64 LE header length N | N bytes of JSON header | data.
// Header: {"__metadata__": {str: str}, "<name>": {"dtype": "F32",
//          "shape": [..], "data_offsets": [begin, end]}, ...}; offsets are
// relative to the start of the data section; tensors must not overlap and
// must cover the data exactly.
#ifndef QATK_FORMATS_SAFETENSORS_SAFETENSORS_H_
#define QATK_FORMATS_SAFETENSORS_SAFETENSORS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "formats/util/file_io.h"

namespace qatk::safetensors {

// Maximum bracket nesting outside strings of a JSON text: checked before
// parsing untrusted headers and indexes (nlohmann's parser recurses).
int JsonDepth(absl::string_view json);

enum class DType { kF32, kF16, kBF16, kI8, kI32, kU8, kI64 };
const char* DTypeName(DType d);   // "F32", ...
size_t DTypeSize(DType d);

struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;  // PyTorch order
  const uint8_t* data = nullptr;
  uint64_t nbytes = 0;
  int64_t n_elements() const;
};

class SafetensorsFile {
 public:
  static constexpr uint64_t kMaxHeaderBytes = 100u << 20;  // 100 MiB
  // Errors name the path, the tensor and offsets (kDataLoss, kInvalidArgument,
  // kUnimplemented for unknown dtypes).
  static absl::StatusOr<SafetensorsFile> Open(const std::string& path);
  static absl::StatusOr<SafetensorsFile> Parse(absl::Span<const uint8_t> bytes,
                                               const std::string& name_for_errors);

  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::vector<TensorView>& tensors() const { return tensors_; }  // file order
  const TensorView* Find(const std::string& name) const;
  const std::string& path() const { return path_; }

  // Copies a tensor as float32 (F32/F16/BF16 sources); kInvalidArgument otherwise.
  absl::StatusOr<std::vector<float>> ReadFloat(const std::string& name) const;

 private:
  std::shared_ptr<MappedFile> file_;
  std::string path_;
  std::map<std::string, std::string> metadata_;
  std::vector<TensorView> tensors_;
  std::map<std::string, size_t> index_;
};

// Collects tensors and writes them with one atomic write. Tensor data are
// copied on Add (checkpoints of the models we train fit in memory).
class SafetensorsWriter {
 public:
  void SetMetadata(const std::string& key, const std::string& value);
  // kInvalidArgument on a duplicate name or a byte count that does not match
  // the shape and dtype.
  absl::Status Add(const std::string& name, DType dtype, std::vector<int64_t> shape,
                   const void* data, size_t nbytes);
  absl::Status AddF32(const std::string& name, std::vector<int64_t> shape,
                      absl::Span<const float> data);
  absl::Status Write(const std::string& path) const;

 private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
  };
  std::map<std::string, std::string> metadata_;
  std::vector<Entry> entries_;
};

}  // namespace qatk::safetensors

#endif  // QATK_FORMATS_SAFETENSORS_SAFETENSORS_H_
