// Streaming writer of the mobile format (layout: docs/formats/mobile.md).
#include <cmath>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "formats/mobile/mobile_format.h"
#include "formats/mobile/mobile_internal.h"
#include "formats/quant/fp16.h"
#include "formats/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace qatk::mobile {
namespace {

uint64_t AlignUp(uint64_t x) { return (x + kAlignment - 1) / kAlignment * kAlignment; }

bool IsJsonObject(const std::string& s) {
  nlohmann::json j = nlohmann::json::parse(s, nullptr, /*allow_exceptions=*/false);
  return j.is_object();
}

std::string SerializeTokenizer(const Tokenizer& t) {
  internal::ByteBuilder b;
  b.Str(t.model);
  b.U32(static_cast<uint32_t>(t.tokens.size()));
  b.I32(t.bos_id);
  b.I32(t.eos_id);
  b.I32(t.unk_id);
  b.I32(t.pad_id);
  b.U8(t.add_bos ? 1 : 0);
  b.U8(t.add_eos ? 1 : 0);
  b.U8(t.add_space_prefix ? 1 : 0);
  b.U8(0);  // reserved
  for (size_t i = 0; i < t.tokens.size(); ++i) {
    b.Str(t.tokens[i]);
    b.F32(t.scores[i]);
    b.I32(t.types[i]);
  }
  if (internal::TokenizerVersion(t) >= 2) {
    b.Str(t.pre);
    b.U32(static_cast<uint32_t>(t.merges.size()));
    for (const std::string& m : t.merges) b.Str(m);
  }
  return b.Take();
}

std::string SerializeTable(const std::vector<TensorInfo>& tensors) {
  internal::ByteBuilder b;
  for (const TensorInfo& t : tensors) {
    b.Str(t.name);
    b.U8(static_cast<uint8_t>(t.dtype));
    b.U8(static_cast<uint8_t>(t.dims.size()));
    b.U8(static_cast<uint8_t>(t.scale_type));
    b.U8(static_cast<uint8_t>(t.act_method));
    b.F32(t.act_scale);
    b.U8(t.act_bits);
    b.U8(t.act_narrow ? 1 : 0);
    b.U8(static_cast<uint8_t>(t.act_rounding));
    b.U8(0);  // reserved
    for (uint64_t d : t.dims) b.U64(d);
    b.U64(t.codes_offset);
    b.U64(t.codes_size);
    b.U64(t.scales_offset);
    b.U64(t.scales_size);
  }
  return b.Take();
}

}  // namespace

uint64_t LayoutData(std::vector<TensorInfo>* tensors) {
  uint64_t cur = 0;
  for (TensorInfo& t : *tensors) {
    t.codes_size = CodesBytes(t.dtype, t.dims);
    t.scales_size = ScalesBytes(t.scale_type, t.dims);
    t.codes_offset = AlignUp(cur);
    cur = t.codes_offset + t.codes_size;
    t.scales_offset = 0;
    if (t.scales_size > 0) {
      t.scales_offset = AlignUp(cur);
      cur = t.scales_offset + t.scales_size;
    }
  }
  return cur;
}

absl::StatusOr<MobileWriter> MobileWriter::Create(const std::string& path) {
  MobileWriter w;
  ASSIGN_OR_RETURN(w.out_, AtomicFileWriter::Create(path));
  return w;
}

absl::Status MobileWriter::SetConfigJson(std::string json) {
  if (head_written_) return absl::FailedPreconditionError("SetConfigJson after tensor data");
  if (!IsJsonObject(json)) {
    return absl::InvalidArgumentError(
        absl::StrCat(out_.path(), ": model config is not a JSON object"));
  }
  config_json_ = std::move(json);
  return absl::OkStatus();
}

absl::Status MobileWriter::SetRecipeJson(std::string json) {
  if (head_written_) return absl::FailedPreconditionError("SetRecipeJson after tensor data");
  if (!json.empty() && !IsJsonObject(json)) {
    return absl::InvalidArgumentError(
        absl::StrCat(out_.path(), ": recipe/provenance is not a JSON object"));
  }
  recipe_json_ = std::move(json);
  return absl::OkStatus();
}

absl::Status MobileWriter::SetTokenizer(Tokenizer tok) {
  if (head_written_) return absl::FailedPreconditionError("SetTokenizer after tensor data");
  RETURN_IF_ERROR(internal::ValidateTokenizer(tok, out_.path()));
  tokenizer_ = std::move(tok);
  return absl::OkStatus();
}

absl::Status MobileWriter::DeclareTensor(TensorInfo t) {
  if (head_written_) return absl::FailedPreconditionError("DeclareTensor after tensor data");
  if (index_.count(t.name)) {
    return absl::InvalidArgumentError(absl::StrCat("duplicate tensor '", t.name, "'"));
  }
  if (tensors_.size() >= kMaxTensors) return absl::InvalidArgumentError("too many tensors");
  RETURN_IF_ERROR(internal::ValidateEntry(t, out_.path()));
  t.codes_size = CodesBytes(t.dtype, t.dims);
  t.scales_size = ScalesBytes(t.scale_type, t.dims);
  t.codes_offset = t.scales_offset = 0;
  index_[t.name] = tensors_.size();
  tensors_.push_back(std::move(t));
  return absl::OkStatus();
}

absl::Status MobileWriter::WriteHead() {
  if (tokenizer_.tokens.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(out_.path(), ": no tokenizer set"));
  }
  data_size_ = LayoutData(&tensors_);
  const std::string tok = SerializeTokenizer(tokenizer_);
  const std::string table = SerializeTable(tensors_);
  const uint64_t config_off = kHeaderSizeV1;
  const uint64_t tok_off = config_off + config_json_.size();
  const uint64_t recipe_off = tok_off + tok.size();
  const uint64_t table_off = recipe_off + recipe_json_.size();
  data_offset_ = AlignUp(table_off + table.size());
  file_size_ = data_offset_ + data_size_;

  internal::ByteBuilder h;
  h.Bytes(kMagic, 4);
  h.U32(internal::TokenizerVersion(tokenizer_));
  h.U32(kHeaderSizeV1);
  h.U32(0);  // flags
  h.U64(file_size_);
  h.U32(kAlignment);
  h.U32(static_cast<uint32_t>(tensors_.size()));
  h.U64(config_off), h.U64(config_json_.size());
  h.U64(tok_off), h.U64(tok.size());
  h.U64(recipe_off), h.U64(recipe_json_.size());
  h.U64(table_off), h.U64(table.size());
  h.U64(data_offset_), h.U64(data_size_);
  h.U64(0), h.U64(0);  // reserved
  const std::string head = h.Take();
  QATK_CHECK(head.size() == kHeaderSizeV1, "header size mismatch");
  RETURN_IF_ERROR(out_.Write(head.data(), head.size()));
  RETURN_IF_ERROR(out_.Write(config_json_.data(), config_json_.size()));
  RETURN_IF_ERROR(out_.Write(tok.data(), tok.size()));
  RETURN_IF_ERROR(out_.Write(recipe_json_.data(), recipe_json_.size()));
  RETURN_IF_ERROR(out_.Write(table.data(), table.size()));
  RETURN_IF_ERROR(out_.WriteZeros(data_offset_ - out_.bytes_written()));
  head_written_ = true;
  return absl::OkStatus();
}

absl::StatusOr<const TensorInfo*> MobileWriter::NextTensor(const char* what) {
  if (!head_written_) RETURN_IF_ERROR(WriteHead());
  if (next_ >= tensors_.size()) {
    return absl::FailedPreconditionError(
        absl::StrCat(out_.path(), ": ", what, " but every declared tensor is written"));
  }
  return &tensors_[next_++];
}

absl::Status MobileWriter::WriteArray(uint64_t offset, const uint8_t* data, uint64_t n) {
  const uint64_t at = data_offset_ + offset;
  QATK_CHECK(at >= out_.bytes_written(), "mobile writer arrays out of order");
  RETURN_IF_ERROR(out_.WriteZeros(at - out_.bytes_written()));
  return out_.Write(data, n);
}

absl::Status MobileWriter::WriteCodes(absl::Span<const int8_t> codes,
                                      absl::Span<const float> scales) {
  ASSIGN_OR_RETURN(const TensorInfo* t, NextTensor("WriteCodes"));
  const std::string where = absl::StrCat(out_.path(), ": tensor '", t->name, "'");
  if (!IsIntChannel(t->dtype)) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": WriteCodes needs an INT* dtype"));
  }
  const uint64_t rows = t->rows(), k = t->row_len();
  if (codes.size() != rows * k || scales.size() != rows) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": got ", codes.size(), " codes and ",
                                                   scales.size(), " scales, want ", rows * k,
                                                   " and ", rows));
  }
  for (uint64_t i = 0; i < codes.size(); ++i) {
    if (codes[i] < CodeMin(t->dtype) || codes[i] > CodeMax(t->dtype)) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": code ", codes[i], " at element ", i,
                                                     " out of range for ", DTypeName(t->dtype)));
    }
  }
  std::vector<uint8_t> packed(t->codes_size);
  const uint64_t rb = PackedRowBytes(t->dtype, k);
  for (uint64_t r = 0; r < rows; ++r) PackRow(t->dtype, codes.data() + r * k, k, &packed[r * rb]);
  std::vector<uint8_t> sb(t->scales_size);
  for (uint64_t r = 0; r < rows; ++r) {
    const float s = scales[r];
    if (!std::isfinite(s)) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": non-finite scale at row ", r));
    }
    if (t->scale_type == ScaleType::kF16) {
      const uint16_t h = Fp32ToFp16(s);
      if (Fp16ToFp32(h) != s) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ": scale ", s, " at row ", r,
            " is not an fp16 value; quantize with fp16 scale storage (QuantSpec)"));
      }
      std::memcpy(&sb[2 * r], &h, 2);
    } else {
      std::memcpy(&sb[4 * r], &s, 4);
    }
  }
  return WriteRaw2(*t, packed, sb);
}

absl::Status MobileWriter::WriteFloats(absl::Span<const float> values) {
  ASSIGN_OR_RETURN(const TensorInfo* t, NextTensor("WriteFloats"));
  if (IsIntChannel(t->dtype) || values.size() != t->numel()) {
    return absl::InvalidArgumentError(absl::StrCat(
        out_.path(), ": tensor '", t->name, "': WriteFloats needs an F32/F16 tensor of ",
        t->numel(), " values, got ", values.size()));
  }
  std::vector<uint8_t> bytes(t->codes_size);
  if (t->dtype == DType::kF32) {
    std::memcpy(bytes.data(), values.data(), bytes.size());
  } else {
    for (size_t i = 0; i < values.size(); ++i) {
      const uint16_t h = Fp32ToFp16(values[i]);
      std::memcpy(&bytes[2 * i], &h, 2);
    }
  }
  return WriteRaw2(*t, bytes, {});
}

absl::Status MobileWriter::WriteRaw(absl::Span<const uint8_t> codes,
                                    absl::Span<const uint8_t> scales) {
  ASSIGN_OR_RETURN(const TensorInfo* t, NextTensor("WriteRaw"));
  return WriteRaw2(*t, codes, scales);
}

absl::Status MobileWriter::WriteRaw2(const TensorInfo& t, absl::Span<const uint8_t> codes,
                                     absl::Span<const uint8_t> scales) {
  if (codes.size() != t.codes_size || scales.size() != t.scales_size) {
    return absl::InvalidArgumentError(
        absl::StrCat(out_.path(), ": tensor '", t.name, "': got ", codes.size(), "+",
                     scales.size(), " bytes, want ", t.codes_size, "+", t.scales_size));
  }
  RETURN_IF_ERROR(WriteArray(t.codes_offset, codes.data(), codes.size()));
  if (t.scales_size > 0) RETURN_IF_ERROR(WriteArray(t.scales_offset, scales.data(), scales.size()));
  return absl::OkStatus();
}

absl::Status MobileWriter::Finish() {
  if (!head_written_) RETURN_IF_ERROR(WriteHead());
  if (next_ != tensors_.size()) {
    return absl::FailedPreconditionError(
        absl::StrCat(out_.path(), ": only ", next_, " of ", tensors_.size(),
                     " declared tensors were written (next: '", tensors_[next_].name, "')"));
  }
  if (out_.bytes_written() != file_size_) {  // an earlier Write* failed midway
    return absl::FailedPreconditionError(
        absl::StrCat(out_.path(), ": incomplete tensor data; not committing"));
  }
  return out_.Commit();
}

}  // namespace qatk::mobile
