// The qatkit mobile format (QMOB v1): reader, streaming writer and the code
// packing rules. The byte layout is specified in docs/formats/mobile.md;
// in short (little-endian):
//   1. header (128 B): "QMOB", version u32 = 1, header_size u32 = 128,
//      flags u32 = 0, file_size u64, alignment u32 = 64, n_tensors u32, then
//      (offset u64, size u64) of the sections config, tokenizer, recipe,
//      table, data; 16 reserved zero bytes
//   2. config: HF config.json text   3. tokenizer (GGUF tokenizer.ggml.* content)
//   4. recipe + provenance JSON       5. tensor table (variable-length entries)
//   6. tensor data: every codes/scales array 64-byte aligned in the data section
// Per-row codes: int8 one per byte; int4 two per byte (element 2i low nibble,
// 2i+1 high); int2 four per byte LSB first; signed two's complement; each row
// padded to whole bytes. Value = code * scale[row].
#ifndef QATK_FORMATS_MOBILE_MOBILE_FORMAT_H_
#define QATK_FORMATS_MOBILE_MOBILE_FORMAT_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "formats/util/file_io.h"

namespace qatk::mobile {

inline constexpr char kMagic[4] = {'Q', 'M', 'O', 'B'};
// Version 2 appends the byte-level BPE fields (pre-tokenizer, merges) to the
// tokenizer section; the writer writes version 1 when they are empty, so
// SentencePiece files stay byte-identical, and the reader reads both.
inline constexpr uint32_t kVersion = 2;
inline constexpr uint32_t kHeaderSizeV1 = 128;
inline constexpr uint32_t kAlignment = 64;
inline constexpr uint32_t kMaxTensors = 1000000;
inline constexpr uint32_t kMaxNameBytes = 255;
inline constexpr uint32_t kMaxTokens = 1u << 24;
inline constexpr uint32_t kMaxTokenBytes = 65536;

enum class DType : uint8_t { kF32 = 0, kF16 = 1, kInt8Channel = 2, kInt4Channel = 3, kInt2Channel = 4 };
enum class ScaleType : uint8_t { kNone = 0, kF32 = 1, kF16 = 2 };
enum class ActMethod : uint8_t { kNone = 0, kCalibrated = 1, kLearned = 2 };
enum class Rounding : uint8_t { kHalfAwayFromZero = 0, kHalfEven = 1 };

const char* DTypeName(DType t);
const char* ScaleTypeName(ScaleType t);
const char* ActMethodName(ActMethod m);
// Bits per code of the INT* types (8, 4, 2); 0 for F32/F16.
int CodeBits(DType t);
bool IsIntChannel(DType t);
// Bytes of one row of K codes (rows are padded to whole bytes).
uint64_t PackedRowBytes(DType t, uint64_t k);

// Packing of one row of K codes (one int8 per element) into PackedRowBytes
// bytes and back. Pack aborts (QATK_CHECK) if a code is out of range for the
// type; the writer checks ranges first and returns a Status.
void PackRow(DType t, const int8_t* codes, uint64_t k, uint8_t* out);
void UnpackRow(DType t, const uint8_t* packed, uint64_t k, int8_t* codes);
// Smallest/largest code representable by the type.
int CodeMin(DType t);
int CodeMax(DType t);

struct Tokenizer {
  std::string model = "llama";  // GGUF tokenizer.ggml.model
  std::vector<std::string> tokens;
  std::vector<float> scores;    // [n_tokens]
  std::vector<int32_t> types;   // [n_tokens], GGUF token types (1 normal ... 6 byte)
  int32_t bos_id = -1, eos_id = -1, unk_id = -1, pad_id = -1;
  bool add_bos = true, add_eos = false;
  bool add_space_prefix = true;  // GGUF tokenizer.ggml.add_space_prefix
  // Version 2: GGUF tokenizer.ggml.pre and tokenizer.ggml.merges ("gpt2").
  std::string pre;
  std::vector<std::string> merges;
};

// One tensor-table entry. Offsets are relative to the data section.
struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<uint64_t> dims;  // PyTorch order; dims[0] = rows
  ScaleType scale_type = ScaleType::kNone;
  ActMethod act_method = ActMethod::kNone;
  float act_scale = 0.0f;      // static input-activation scale (0 if none)
  // Activation quantizer (QuantSpec int_tensor) the scale belongs to; all 0
  // when act_method is kNone. Codes in [-Qn, Qp]: full range Qn = 2^(b-1),
  // narrow Qn = 2^(b-1) - 1; Qp = 2^(b-1) - 1.
  uint8_t act_bits = 0;        // 2..8
  bool act_narrow = false;
  Rounding act_rounding = Rounding::kHalfAwayFromZero;
  uint64_t codes_offset = 0, codes_size = 0;
  uint64_t scales_offset = 0, scales_size = 0;

  uint64_t numel() const;
  uint64_t rows() const { return dims.empty() ? 0 : dims[0]; }
  uint64_t row_len() const;  // K: product of dims[1..] (1 for 1-D)
};

// Expected codes/scales byte sizes for a (dtype, dims, scale_type).
uint64_t CodesBytes(DType t, const std::vector<uint64_t>& dims);
uint64_t ScalesBytes(ScaleType s, const std::vector<uint64_t>& dims);

// The data-section layout the writer uses: sets codes/scales sizes and
// offsets of every tensor (table order; codes then scales, each 64-aligned)
// and returns the data section size in bytes. Also used by size reports.
uint64_t LayoutData(std::vector<TensorInfo>* tensors);

// A parsed, memory-mapped mobile file; tensor data are zero-copy views into
// the mapping, valid while the MobileFile lives (it is movable).
class MobileFile {
 public:
  // Errors name the path, the field/tensor and the byte offset: kDataLoss
  // (truncated/corrupt), kUnimplemented (unknown version/flags/dtype),
  // kInvalidArgument (duplicates, bad offsets, non-finite scales).
  static absl::StatusOr<MobileFile> Open(const std::string& path);
  // Parses an in-memory image; `bytes` must outlive the MobileFile.
  static absl::StatusOr<MobileFile> Parse(absl::Span<const uint8_t> bytes,
                                          const std::string& name_for_errors);

  uint32_t version() const { return version_; }
  uint64_t file_size() const { return size_; }
  uint64_t data_offset() const { return data_offset_; }
  const std::string& path() const { return path_; }
  const std::string& config_json() const { return config_json_; }
  const std::string& recipe_json() const { return recipe_json_; }  // "" if none
  const Tokenizer& tokenizer() const { return tokenizer_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* FindTensor(const std::string& name) const;

  const uint8_t* Codes(const TensorInfo& t) const { return base_ + data_offset_ + t.codes_offset; }
  const uint8_t* ScalesData(const TensorInfo& t) const {
    return base_ + data_offset_ + t.scales_offset;
  }
  // Scale of row r (f16 widened); 0 for tensors without scales.
  float Scale(const TensorInfo& t, uint64_t row) const;
  // Dequantizes row r of any dtype into out[row_len()].
  void DequantizeRow(const TensorInfo& t, uint64_t row, float* out) const;

 private:
  std::shared_ptr<MappedFile> file_;
  const uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  std::string path_;
  uint32_t version_ = 0;
  uint64_t data_offset_ = 0;
  std::string config_json_, recipe_json_;
  Tokenizer tokenizer_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  friend class Parser;
};

// Streams a mobile file. Declare every tensor first (DeclareTensor), then
// write their data in declaration order, one Write* call per tensor; the
// header, config, tokenizer, recipe and table are written before the first
// tensor's data, so nothing larger than one tensor is held in memory. The
// file appears under its final name only after Finish() succeeds.
class MobileWriter {
 public:
  static absl::StatusOr<MobileWriter> Create(const std::string& path);

  // Must be called before the first Write*. Config and recipe must be JSON
  // objects (recipe may be empty: none).
  absl::Status SetConfigJson(std::string json);
  absl::Status SetRecipeJson(std::string json);
  absl::Status SetTokenizer(Tokenizer tok);

  // Declares the next tensor from t's name, dtype, dims, scale_type and
  // act_* fields (offsets and sizes are computed). Name unique, 1..255
  // bytes; dims 1..4, each >= 1; INT* dtypes need scale_type f16/f32, F32/F16
  // need kNone; act_scale finite > 0 and act_bits 2..8 iff act_method != kNone.
  absl::Status DeclareTensor(TensorInfo t);

  // Data of the next declared tensor:
  //   INT*: codes[rows*K] one int8 per element (range-checked, packed here),
  //         scales[rows] finite; with f16 storage each scale must be exactly
  //         representable in fp16 (the quantizer rounds, not the writer).
  absl::Status WriteCodes(absl::Span<const int8_t> codes, absl::Span<const float> scales);
  //   F32/F16: values[numel]; F16 rounds to nearest even.
  absl::Status WriteFloats(absl::Span<const float> values);
  //   Any dtype, already in file layout (sizes must match exactly).
  absl::Status WriteRaw(absl::Span<const uint8_t> codes, absl::Span<const uint8_t> scales);

  // Checks every declared tensor was written, then commits atomically.
  absl::Status Finish();

  const std::vector<TensorInfo>& tensors() const { return tensors_; }

 private:
  absl::Status WriteHead();
  absl::StatusOr<const TensorInfo*> NextTensor(const char* what);
  absl::Status WriteArray(uint64_t offset, const uint8_t* data, uint64_t n);
  absl::Status WriteRaw2(const TensorInfo& t, absl::Span<const uint8_t> codes,
                         absl::Span<const uint8_t> scales);

  AtomicFileWriter out_;
  std::string config_json_ = "{}", recipe_json_;
  Tokenizer tokenizer_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  bool head_written_ = false;
  size_t next_ = 0;
  uint64_t data_offset_ = 0, data_size_ = 0, file_size_ = 0;
};

}  // namespace qatk::mobile

#endif  // QATK_FORMATS_MOBILE_MOBILE_FORMAT_H_
