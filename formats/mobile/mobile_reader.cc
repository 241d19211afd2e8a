// Reader of the mobile format: every length is bounded by the bytes left,
// offsets are checked for alignment and range, duplicates and overlaps are
// rejected, and errors name the path, the field/tensor and the byte offset.
#include <algorithm>
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
namespace internal {

absl::Status Cursor::Error(absl::StatusCode code, const std::string& msg) const {
  return absl::Status(code, absl::StrCat(*file_, ": offset ", pos_, ": ", msg));
}

absl::Status Cursor::Need(uint64_t n, const char* field) const {
  if (n > left()) {
    return Error(absl::StatusCode::kDataLoss,
                 absl::StrCat(field, " needs ", n, " bytes but only ", left(),
                              " are left in the section"));
  }
  return absl::OkStatus();
}

#define QATK_MOBILE_READ_(T, n)                  \
  RETURN_IF_ERROR(Need(n, field));               \
  T v;                                           \
  std::memcpy(&v, base_ + pos_, n);              \
  pos_ += n;                                     \
  return v

absl::StatusOr<uint8_t> Cursor::U8(const char* field) { QATK_MOBILE_READ_(uint8_t, 1); }
absl::StatusOr<uint16_t> Cursor::U16(const char* field) { QATK_MOBILE_READ_(uint16_t, 2); }
absl::StatusOr<uint32_t> Cursor::U32(const char* field) { QATK_MOBILE_READ_(uint32_t, 4); }
absl::StatusOr<int32_t> Cursor::I32(const char* field) { QATK_MOBILE_READ_(int32_t, 4); }
absl::StatusOr<uint64_t> Cursor::U64(const char* field) { QATK_MOBILE_READ_(uint64_t, 8); }
absl::StatusOr<float> Cursor::F32(const char* field) { QATK_MOBILE_READ_(float, 4); }
#undef QATK_MOBILE_READ_

absl::StatusOr<std::string> Cursor::Str(const char* field, uint32_t max_len) {
  ASSIGN_OR_RETURN(uint32_t n, U32(field));
  if (n > max_len) {
    return Error(absl::StatusCode::kDataLoss,
                 absl::StrCat(field, " length ", n, " exceeds the limit ", max_len));
  }
  RETURN_IF_ERROR(Need(n, field));
  std::string s(reinterpret_cast<const char*>(base_ + pos_), n);
  pos_ += n;
  return s;
}

absl::Status ValidateTokenizer(const Tokenizer& t, const std::string& file) {
  auto err = [&](const std::string& m) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": tokenizer: ", m));
  };
  const size_t n = t.tokens.size();
  if (n == 0 || n > kMaxTokens) return err(absl::StrCat("n_tokens ", n, " not in 1..", kMaxTokens));
  if (t.scores.size() != n || t.types.size() != n) return err("scores/types size != n_tokens");
  if (t.model.size() > kMaxNameBytes) return err("model name too long");
  if (t.pre.size() > kMaxNameBytes) return err("pre name too long");
  if (t.merges.size() > kMaxTokens) return err("too many merges");
  for (size_t i = 0; i < t.merges.size(); ++i) {
    if (t.merges[i].size() > 2 * kMaxTokenBytes + 1) return err(absl::StrCat("merge ", i, " too long"));
  }
  for (int32_t id : {t.bos_id, t.eos_id, t.unk_id, t.pad_id}) {
    if (id < -1 || id >= static_cast<int64_t>(n)) return err(absl::StrCat("special id ", id, " out of range"));
  }
  for (size_t i = 0; i < n; ++i) {
    if (t.tokens[i].size() > kMaxTokenBytes) return err(absl::StrCat("token ", i, " too long"));
    if (!std::isfinite(t.scores[i])) return err(absl::StrCat("non-finite score of token ", i));
    if (t.types[i] < 0 || t.types[i] > 6) return err(absl::StrCat("bad type of token ", i));
  }
  return absl::OkStatus();
}

absl::Status ValidateEntry(const TensorInfo& t, const std::string& file) {
  auto err = [&](const std::string& m) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": tensor '", t.name, "': ", m));
  };
  if (t.name.empty() || t.name.size() > kMaxNameBytes) return err("name must be 1..255 bytes");
  if (static_cast<uint8_t>(t.dtype) > static_cast<uint8_t>(DType::kInt2Channel)) {
    return absl::UnimplementedError(absl::StrCat(file, ": tensor '", t.name, "': unknown dtype ",
                                                 static_cast<int>(t.dtype)));
  }
  if (t.dims.empty() || t.dims.size() > 4) return err("needs 1..4 dims");
  uint64_t numel = 1;
  for (uint64_t d : t.dims) {
    if (d == 0 || d > (uint64_t{1} << 40) / numel) return err("dims empty or too large");
    numel *= d;
  }
  if (static_cast<uint8_t>(t.scale_type) > static_cast<uint8_t>(ScaleType::kF16)) {
    return err("unknown scale dtype");
  }
  if (IsIntChannel(t.dtype) == (t.scale_type == ScaleType::kNone)) {
    return err(absl::StrCat(DTypeName(t.dtype), " with scale dtype ", ScaleTypeName(t.scale_type)));
  }
  if (static_cast<uint8_t>(t.act_method) > static_cast<uint8_t>(ActMethod::kLearned)) {
    return err("unknown activation-scale method");
  }
  const bool has_act = t.act_method != ActMethod::kNone;
  if (has_act ? !(std::isfinite(t.act_scale) && t.act_scale > 0) : t.act_scale != 0.0f) {
    return err(absl::StrCat("bad act_scale ", t.act_scale, " for method ",
                            ActMethodName(t.act_method)));
  }
  if (has_act ? (t.act_bits < 2 || t.act_bits > 8)
              : (t.act_bits != 0 || t.act_narrow ||
                 t.act_rounding != Rounding::kHalfAwayFromZero)) {
    return err(absl::StrCat("bad activation quantizer (bits ", t.act_bits, ") for method ",
                            ActMethodName(t.act_method)));
  }
  return absl::OkStatus();
}

}  // namespace internal

using internal::Cursor;

class Parser {
 public:
  explicit Parser(MobileFile* f) : f_(f) {}
  absl::Status Run();

 private:
  absl::Status Fail(uint64_t off, const std::string& msg) const {
    return absl::DataLossError(absl::StrCat(f_->path_, ": offset ", off, ": ", msg));
  }
  absl::Status ReadHeader();
  absl::Status ReadJson(int sec, const char* what, bool allow_empty, std::string* out);
  absl::Status ReadTokenizer();
  absl::Status ReadEntry(Cursor& c, TensorInfo* t);
  absl::Status ReadTable();
  absl::Status CheckData();

  MobileFile* f_;
  uint32_t n_tensors_ = 0;
  uint64_t sec_off_[5] = {}, sec_size_[5] = {};  // config, tokenizer, recipe, table, data
};

absl::Status Parser::ReadHeader() {
  const uint8_t* b = f_->base_;
  if (f_->size_ < kHeaderSizeV1) {
    return Fail(0, absl::StrCat("file is ", f_->size_, " bytes, shorter than the ", kHeaderSizeV1,
                                "-byte header"));
  }
  if (std::memcmp(b, kMagic, 4) != 0) return Fail(0, "bad magic (not a QMOB mobile file)");
  Cursor c(b, 4, kHeaderSizeV1, &f_->path_);
  ASSIGN_OR_RETURN(f_->version_, c.U32("version"));
  if (f_->version_ < 1 || f_->version_ > kVersion) {
    return absl::UnimplementedError(absl::StrCat(f_->path_, ": offset 4: unsupported version ",
                                                 f_->version_, " (this reader knows 1 to ", kVersion,
                                                 ")"));
  }
  ASSIGN_OR_RETURN(uint32_t header_size, c.U32("header_size"));
  if (header_size != kHeaderSizeV1) {
    return Fail(8, absl::StrCat("header_size ", header_size, ", version 1 has ", kHeaderSizeV1));
  }
  ASSIGN_OR_RETURN(uint32_t flags, c.U32("flags"));
  if (flags != 0) {
    return absl::UnimplementedError(
        absl::StrCat(f_->path_, ": offset 12: unknown flags 0x", absl::Hex(flags)));
  }
  ASSIGN_OR_RETURN(uint64_t file_size, c.U64("file_size"));
  if (file_size != f_->size_) {
    return Fail(16, absl::StrCat("header says ", file_size, " bytes but the file has ", f_->size_,
                                 " (truncated or padded)"));
  }
  ASSIGN_OR_RETURN(uint32_t alignment, c.U32("alignment"));
  if (alignment != kAlignment) return Fail(24, absl::StrCat("alignment ", alignment, " != 64"));
  ASSIGN_OR_RETURN(n_tensors_, c.U32("n_tensors"));
  if (n_tensors_ > kMaxTensors) return Fail(28, absl::StrCat("n_tensors ", n_tensors_, " too large"));
  static const char* kNames[5] = {"config", "tokenizer", "recipe", "table", "data"};
  uint64_t prev_end = kHeaderSizeV1;
  for (int i = 0; i < 5; ++i) {
    const uint64_t at = c.pos();
    ASSIGN_OR_RETURN(sec_off_[i], c.U64(kNames[i]));
    ASSIGN_OR_RETURN(sec_size_[i], c.U64(kNames[i]));
    if (sec_off_[i] < prev_end || sec_off_[i] > f_->size_ ||
        sec_size_[i] > f_->size_ - sec_off_[i]) {
      return Fail(at, absl::StrCat(kNames[i], " section [", sec_off_[i], ", +", sec_size_[i],
                                   ") overlaps the previous section or leaves the file"));
    }
    prev_end = sec_off_[i] + sec_size_[i];
  }
  if (sec_off_[4] % kAlignment != 0) {
    return Fail(96, absl::StrCat("data section offset ", sec_off_[4], " is not 64-aligned"));
  }
  ASSIGN_OR_RETURN(uint64_t r0, c.U64("reserved"));
  ASSIGN_OR_RETURN(uint64_t r1, c.U64("reserved"));
  if (r0 != 0 || r1 != 0) return Fail(112, "reserved header bytes are not zero");
  f_->data_offset_ = sec_off_[4];
  return absl::OkStatus();
}

absl::Status Parser::ReadJson(int sec, const char* what, bool allow_empty, std::string* out) {
  out->assign(reinterpret_cast<const char*>(f_->base_ + sec_off_[sec]), sec_size_[sec]);
  if (out->empty() && allow_empty) return absl::OkStatus();
  nlohmann::json j = nlohmann::json::parse(*out, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return Fail(sec_off_[sec], absl::StrCat(what, " is not a JSON object"));
  return absl::OkStatus();
}

absl::Status Parser::ReadTokenizer() {
  Cursor c(f_->base_, sec_off_[1], sec_off_[1] + sec_size_[1], &f_->path_);
  Tokenizer& t = f_->tokenizer_;
  ASSIGN_OR_RETURN(t.model, c.Str("tokenizer model", kMaxNameBytes));
  ASSIGN_OR_RETURN(uint32_t n, c.U32("n_tokens"));
  if (n == 0 || n > kMaxTokens) return c.Error(absl::StatusCode::kDataLoss, "bad n_tokens");
  ASSIGN_OR_RETURN(t.bos_id, c.I32("bos_id"));
  ASSIGN_OR_RETURN(t.eos_id, c.I32("eos_id"));
  ASSIGN_OR_RETURN(t.unk_id, c.I32("unk_id"));
  ASSIGN_OR_RETURN(t.pad_id, c.I32("pad_id"));
  ASSIGN_OR_RETURN(uint8_t add_bos, c.U8("add_bos"));
  ASSIGN_OR_RETURN(uint8_t add_eos, c.U8("add_eos"));
  ASSIGN_OR_RETURN(uint8_t add_space, c.U8("add_space_prefix"));
  ASSIGN_OR_RETURN(uint8_t reserved, c.U8("tokenizer reserved"));
  if (add_bos > 1 || add_eos > 1 || add_space > 1 || reserved != 0) {
    return c.Error(absl::StatusCode::kDataLoss, "bad add_bos/add_eos/add_space_prefix/reserved");
  }
  t.add_bos = add_bos, t.add_eos = add_eos, t.add_space_prefix = add_space;
  RETURN_IF_ERROR(c.Need(uint64_t{12} * n, "token records"));  // 12 = minimum record size
  t.tokens.resize(n), t.scores.resize(n), t.types.resize(n);
  for (uint32_t i = 0; i < n; ++i) {
    ASSIGN_OR_RETURN(t.tokens[i], c.Str("token text", kMaxTokenBytes));
    ASSIGN_OR_RETURN(t.scores[i], c.F32("token score"));
    ASSIGN_OR_RETURN(t.types[i], c.I32("token type"));
  }
  if (f_->version_ >= 2) {
    ASSIGN_OR_RETURN(t.pre, c.Str("tokenizer pre", kMaxNameBytes));
    ASSIGN_OR_RETURN(uint32_t n_merges, c.U32("n_merges"));
    if (n_merges > kMaxTokens) return c.Error(absl::StatusCode::kDataLoss, "bad n_merges");
    RETURN_IF_ERROR(c.Need(uint64_t{4} * n_merges, "merge records"));
    t.merges.resize(n_merges);
    for (uint32_t i = 0; i < n_merges; ++i) {
      ASSIGN_OR_RETURN(t.merges[i], c.Str("merge", 2 * kMaxTokenBytes + 1));
    }
  }
  if (c.left() != 0) return c.Error(absl::StatusCode::kDataLoss, "trailing bytes in tokenizer");
  absl::Status s = internal::ValidateTokenizer(t, f_->path_);
  if (!s.ok()) return Fail(sec_off_[1], std::string(s.message()));
  return absl::OkStatus();
}

absl::Status Parser::ReadEntry(Cursor& c, TensorInfo* t) {
  const uint64_t at = c.pos();
  ASSIGN_OR_RETURN(t->name, c.Str("tensor name", kMaxNameBytes));
  ASSIGN_OR_RETURN(uint8_t dtype, c.U8("dtype"));
  ASSIGN_OR_RETURN(uint8_t n_dims, c.U8("n_dims"));
  ASSIGN_OR_RETURN(uint8_t scale_type, c.U8("scale_dtype"));
  ASSIGN_OR_RETURN(uint8_t act_method, c.U8("act_method"));
  ASSIGN_OR_RETURN(t->act_scale, c.F32("act_scale"));
  ASSIGN_OR_RETURN(t->act_bits, c.U8("act_bits"));
  ASSIGN_OR_RETURN(uint8_t act_narrow, c.U8("act_narrow"));
  ASSIGN_OR_RETURN(uint8_t act_rounding, c.U8("act_rounding"));
  ASSIGN_OR_RETURN(uint8_t reserved, c.U8("entry reserved"));
  if (act_narrow > 1 || act_rounding > 1 || reserved != 0) {
    return Fail(at, absl::StrCat("tensor '", t->name, "': bad act_narrow/act_rounding/reserved"));
  }
  t->act_narrow = act_narrow;
  t->act_rounding = static_cast<Rounding>(act_rounding);
  if (n_dims < 1 || n_dims > 4) {
    return Fail(at, absl::StrCat("tensor '", t->name, "': n_dims ", n_dims, " not in 1..4"));
  }
  t->dims.resize(n_dims);
  for (auto& d : t->dims) {
    ASSIGN_OR_RETURN(d, c.U64("dims"));
  }
  t->dtype = static_cast<DType>(dtype);
  t->scale_type = static_cast<ScaleType>(scale_type);
  t->act_method = static_cast<ActMethod>(act_method);
  absl::Status s = internal::ValidateEntry(*t, f_->path_);
  if (!s.ok()) return absl::Status(s.code(), absl::StrCat(s.message(), " (entry at offset ", at, ")"));
  ASSIGN_OR_RETURN(t->codes_offset, c.U64("codes_offset"));
  ASSIGN_OR_RETURN(t->codes_size, c.U64("codes_size"));
  ASSIGN_OR_RETURN(t->scales_offset, c.U64("scales_offset"));
  ASSIGN_OR_RETURN(t->scales_size, c.U64("scales_size"));
  const std::string who = absl::StrCat("tensor '", t->name, "': ");
  if (t->codes_size != CodesBytes(t->dtype, t->dims) ||
      t->scales_size != ScalesBytes(t->scale_type, t->dims)) {
    return Fail(at, absl::StrCat(who, "array sizes ", t->codes_size, "/", t->scales_size,
                                 " do not match dtype and shape"));
  }
  const uint64_t data_size = sec_size_[4];
  for (auto [off, size] : {std::pair{t->codes_offset, t->codes_size},
                           std::pair{t->scales_offset, t->scales_size}}) {
    if (off % kAlignment != 0 || off > data_size || size > data_size - off) {
      return Fail(at, absl::StrCat(who, "array [", off, ", +", size,
                                   ") is unaligned or outside the data section (", data_size,
                                   " bytes)"));
    }
  }
  if (t->scales_size == 0 && t->scales_offset != 0) return Fail(at, who + "scales_offset without scales");
  return absl::OkStatus();
}

absl::Status Parser::ReadTable() {
  Cursor c(f_->base_, sec_off_[3], sec_off_[3] + sec_size_[3], &f_->path_);
  RETURN_IF_ERROR(c.Need(uint64_t{56} * n_tensors_, "tensor table"));  // 56 = minimum entry size
  f_->tensors_.resize(n_tensors_);
  for (uint32_t i = 0; i < n_tensors_; ++i) {
    TensorInfo& t = f_->tensors_[i];
    const uint64_t at = c.pos();
    RETURN_IF_ERROR(ReadEntry(c, &t));
    if (!f_->index_.emplace(t.name, i).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(f_->path_, ": offset ", at, ": duplicate tensor '", t.name, "'"));
    }
  }
  if (c.left() != 0) return c.Error(absl::StatusCode::kDataLoss, "trailing bytes in tensor table");
  return absl::OkStatus();
}

// No two arrays overlap; scales are finite.
absl::Status Parser::CheckData() {
  std::vector<std::pair<uint64_t, uint64_t>> arrays;  // (offset, end) in the data section
  for (const TensorInfo& t : f_->tensors_) {
    arrays.push_back({t.codes_offset, t.codes_offset + t.codes_size});
    if (t.scales_size) arrays.push_back({t.scales_offset, t.scales_offset + t.scales_size});
  }
  std::sort(arrays.begin(), arrays.end());
  for (size_t i = 1; i < arrays.size(); ++i) {
    if (arrays[i].first < arrays[i - 1].second) {
      return Fail(f_->data_offset_ + arrays[i].first, "tensor arrays overlap");
    }
  }
  for (const TensorInfo& t : f_->tensors_) {
    for (uint64_t r = 0; r < t.rows() && t.scales_size; ++r) {
      const float s = f_->Scale(t, r);
      if (!std::isfinite(s)) {
        return absl::InvalidArgumentError(absl::StrCat(
            f_->path_, ": tensor '", t.name, "': non-finite scale at row ", r, " (offset ",
            f_->data_offset_ + t.scales_offset, ")"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status Parser::Run() {
  RETURN_IF_ERROR(ReadHeader());
  RETURN_IF_ERROR(ReadJson(0, "model config", /*allow_empty=*/false, &f_->config_json_));
  RETURN_IF_ERROR(ReadTokenizer());
  RETURN_IF_ERROR(ReadJson(2, "recipe", /*allow_empty=*/true, &f_->recipe_json_));
  RETURN_IF_ERROR(ReadTable());
  return CheckData();
}

absl::StatusOr<MobileFile> MobileFile::Parse(absl::Span<const uint8_t> bytes,
                                             const std::string& name_for_errors) {
  MobileFile f;
  f.base_ = bytes.data();
  f.size_ = bytes.size();
  f.path_ = name_for_errors;
  Parser p(&f);
  RETURN_IF_ERROR(p.Run());
  return f;
}

absl::StatusOr<MobileFile> MobileFile::Open(const std::string& path) {
  ASSIGN_OR_RETURN(MappedFile m, MappedFile::Open(path));
  auto mapped = std::make_shared<MappedFile>(std::move(m));
  ASSIGN_OR_RETURN(MobileFile f, Parse(mapped->bytes(), path));
  f.file_ = std::move(mapped);
  return f;
}

}  // namespace qatk::mobile
