// GGUF writer: header, metadata and tensor infos up front, then tensor data
// streamed in declaration order, each tensor zero-padded to the alignment
// (the last one included), committed atomically by Finish().
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "formats/gguf/gguf.h"
#include "formats/gguf/gguf_internal.h"
#include "formats/util/status_macros.h"

namespace qatk::gguf {
namespace {

// Serialises into a byte buffer (metadata and infos are small; tensor data
// bypass this and go straight to the file).
class Buf {
 public:
  template <typename T>
  void Put(T x) {
    const size_t n = bytes_.size();
    bytes_.resize(n + sizeof(T));
    std::memcpy(bytes_.data() + n, &x, sizeof(T));
  }
  void PutString(const std::string& s) {
    Put<uint64_t>(s.size());
    bytes_.insert(bytes_.end(), s.begin(), s.end());
  }
  std::vector<uint8_t>& bytes() { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

// Range-checked narrowing of a stored integer to the on-disk type.
absl::Status PutInt(Buf* b, ValueType t, uint64_t u, int64_t i, bool is_signed) {
  auto bad = [&]() {
    return absl::InvalidArgumentError(absl::StrCat("value ", is_signed ? absl::StrCat(i) : absl::StrCat(u),
                                                   " does not fit ", ValueTypeName(t)));
  };
  auto in = [&](int64_t lo, uint64_t hi) {
    return is_signed ? (i >= lo && (i < 0 || static_cast<uint64_t>(i) <= hi)) : u <= hi;
  };
  switch (t) {
    case ValueType::kUint8: if (!in(0, 0xFF)) return bad(); b->Put<uint8_t>(is_signed ? i : u); break;
    case ValueType::kUint16: if (!in(0, 0xFFFF)) return bad(); b->Put<uint16_t>(is_signed ? i : u); break;
    case ValueType::kUint32: if (!in(0, 0xFFFFFFFFu)) return bad(); b->Put<uint32_t>(is_signed ? i : u); break;
    case ValueType::kUint64: if (!in(0, ~uint64_t{0})) return bad(); b->Put<uint64_t>(is_signed ? i : u); break;
    case ValueType::kInt8: if (!in(-128, 127)) return bad(); b->Put<int8_t>(is_signed ? i : u); break;
    case ValueType::kInt16: if (!in(-32768, 32767)) return bad(); b->Put<int16_t>(is_signed ? i : u); break;
    case ValueType::kInt32: if (!in(INT32_MIN, INT32_MAX)) return bad(); b->Put<int32_t>(is_signed ? i : u); break;
    case ValueType::kInt64: if (!in(INT64_MIN, INT64_MAX)) return bad(); b->Put<int64_t>(is_signed ? i : u); break;
    default: return absl::InternalError("PutInt on a non-integer type");
  }
  return absl::OkStatus();
}

// One element of type t, taken from the variant alternative that holds it.
template <typename X>
absl::Status PutElem(Buf* b, ValueType t, const X& x) {
  using internal::IsFloat;
  using internal::IsSigned;
  using internal::IsUnsigned;
  if constexpr (std::is_same_v<X, uint64_t>) {
    if (IsUnsigned(t) || IsSigned(t)) return PutInt(b, t, x, 0, false);
  } else if constexpr (std::is_same_v<X, int64_t>) {
    if (IsUnsigned(t) || IsSigned(t)) return PutInt(b, t, 0, x, true);
  } else if constexpr (std::is_same_v<X, double>) {
    if (t == ValueType::kFloat32) { b->Put<float>(static_cast<float>(x)); return absl::OkStatus(); }
    if (t == ValueType::kFloat64) { b->Put<double>(x); return absl::OkStatus(); }
  } else if constexpr (std::is_same_v<X, bool>) {
    if (t == ValueType::kBool) { b->Put<uint8_t>(x ? 1 : 0); return absl::OkStatus(); }
  } else if constexpr (std::is_same_v<X, std::string>) {
    if (t == ValueType::kString) {
      if (x.size() > internal::kMaxStringBytes) return absl::InvalidArgumentError("string over 1 GiB");
      b->PutString(x);
      return absl::OkStatus();
    }
  }
  return absl::InvalidArgumentError(absl::StrCat("stored value does not match type ", ValueTypeName(t)));
}

absl::Status PutValue(Buf* b, const Value& v) {
  b->Put<int32_t>(static_cast<int32_t>(v.type));
  if (v.type != ValueType::kArray) {
    return std::visit(
        [&](const auto& x) -> absl::Status {
          using X = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<X, uint64_t> || std::is_same_v<X, int64_t> ||
                        std::is_same_v<X, double> || std::is_same_v<X, bool> ||
                        std::is_same_v<X, std::string>) {
            return PutElem(b, v.type, x);
          } else {
            return absl::InvalidArgumentError(
                absl::StrCat("scalar of type ", ValueTypeName(v.type), " holds an array"));
          }
        },
        v.v);
  }
  if (v.elem_type == ValueType::kArray || !internal::IsKnownValueType(static_cast<int32_t>(v.elem_type))) {
    return absl::InvalidArgumentError("nested arrays are not supported by llama.cpp");
  }
  b->Put<int32_t>(static_cast<int32_t>(v.elem_type));
  return std::visit(
      [&](const auto& x) -> absl::Status {
        using X = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<X, std::vector<uint64_t>> || std::is_same_v<X, std::vector<int64_t>> ||
                      std::is_same_v<X, std::vector<double>> || std::is_same_v<X, std::vector<bool>> ||
                      std::is_same_v<X, std::vector<std::string>>) {
          if (x.size() > internal::kMaxArrayElems) return absl::InvalidArgumentError("array over 2^30 elements");
          b->Put<uint64_t>(x.size());
          for (size_t i = 0; i < x.size(); ++i) {
            typename X::value_type e = x[i];
            RETURN_IF_ERROR(PutElem(b, v.elem_type, e));
          }
          return absl::OkStatus();
        } else {
          return absl::InvalidArgumentError("array value holds a scalar");
        }
      },
      v.v);
}

}  // namespace

absl::StatusOr<GgufWriter> GgufWriter::Create(const std::string& path, uint32_t alignment) {
  if (!internal::IsPowerOfTwo(alignment)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": GGUF alignment ", alignment, " is not a power of 2"));
  }
  GgufWriter w;
  ASSIGN_OR_RETURN(w.out_, AtomicFileWriter::Create(path));
  w.alignment_ = alignment;
  return w;
}

absl::Status GgufWriter::AddKv(const std::string& key, Value value) {
  const std::string& path = out_.path();
  if (header_written_) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": AddKv('", key, "') after the header"));
  }
  if (key.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": empty metadata key"));
  for (const auto& kv : kv_) {
    if (kv.first == key) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": duplicate key '", key, "'"));
    }
  }
  if (key == internal::kAlignmentKey) {
    auto a = value.AsUint();
    if (value.type != ValueType::kUint32 || !a.ok() || *a != alignment_) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": general.alignment must be UINT32 equal to the writer's alignment ", alignment_));
    }
  }
  Buf probe;  // validates type/variant agreement now, not at WriteHeader
  absl::Status s = PutValue(&probe, value);
  if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": key '", key, "': ", s.message()));
  kv_.emplace_back(key, std::move(value));
  return absl::OkStatus();
}

absl::Status GgufWriter::AddTensorInfo(const std::string& name, GgmlType type, std::vector<int64_t> ne) {
  const std::string& path = out_.path();
  if (header_written_) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": AddTensorInfo('", name, "') after the header"));
  }
  if (name.empty() || name.size() > internal::kMaxNameBytes) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": tensor name '", name, "' must be 1..63 bytes"));
  }
  if (ne.empty() || ne.size() > static_cast<size_t>(internal::kMaxDims)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": tensor '", name, "' has ", ne.size(),
                                                   " dimensions (need 1..4)"));
  }
  if (FindTypeTraits(static_cast<uint32_t>(type)) == nullptr) {
    return absl::UnimplementedError(absl::StrCat(path, ": tensor '", name, "' has unknown type ",
                                                 static_cast<uint32_t>(type)));
  }
  for (const TensorInfo& t : tensors_) {
    if (t.name == name) return absl::InvalidArgumentError(absl::StrCat(path, ": duplicate tensor '", name, "'"));
  }
  TensorInfo t;
  t.name = name;
  t.type = type;
  t.ne = std::move(ne);
  auto nbytes = internal::TensorBytes(type, t.ne, absl::StrCat(path, ": tensor '", name, "'"));
  if (!nbytes.ok()) return nbytes.status();
  t.nbytes = *nbytes;
  t.offset = tensors_.empty() ? 0 : tensors_.back().offset + internal::AlignUp(tensors_.back().nbytes, alignment_);
  tensors_.push_back(std::move(t));
  return absl::OkStatus();
}

absl::Status GgufWriter::WriteHeader() {
  if (header_written_) return absl::OkStatus();
  const bool add_alignment = alignment_ != internal::kDefaultAlignment &&
                             std::none_of(kv_.begin(), kv_.end(), [](const auto& kv) {
                               return kv.first == internal::kAlignmentKey;
                             });
  if (add_alignment) kv_.emplace_back(internal::kAlignmentKey, Value::U32(alignment_));
  Buf b;
  for (char c : internal::kMagic) b.Put<char>(c);
  b.Put<uint32_t>(internal::kVersion);
  b.Put<int64_t>(static_cast<int64_t>(tensors_.size()));
  b.Put<int64_t>(static_cast<int64_t>(kv_.size()));
  for (const auto& kv : kv_) {
    b.PutString(kv.first);
    RETURN_IF_ERROR(PutValue(&b, kv.second));
  }
  for (const TensorInfo& t : tensors_) {
    b.PutString(t.name);
    b.Put<uint32_t>(static_cast<uint32_t>(t.ne.size()));
    for (int64_t d : t.ne) b.Put<int64_t>(d);
    b.Put<int32_t>(static_cast<int32_t>(t.type));
    b.Put<uint64_t>(t.offset);
  }
  RETURN_IF_ERROR(out_.Write(b.bytes().data(), b.bytes().size()));
  RETURN_IF_ERROR(out_.WriteZeros(internal::AlignUp(b.bytes().size(), alignment_) - b.bytes().size()));
  header_written_ = true;
  current_ = 0;
  current_written_ = 0;
  while (current_ < tensors_.size() && tensors_[current_].nbytes == 0) ++current_;
  return absl::OkStatus();
}

absl::Status GgufWriter::WriteTensorData(const void* data, size_t n) {
  RETURN_IF_ERROR(WriteHeader());
  if (current_ >= tensors_.size()) {
    return absl::FailedPreconditionError(
        absl::StrCat(out_.path(), ": WriteTensorData after every tensor was written"));
  }
  const TensorInfo& t = tensors_[current_];
  if (n > t.nbytes - current_written_) {
    return absl::InvalidArgumentError(absl::StrCat(
        out_.path(), ": ", n, " bytes for tensor '", t.name, "' but only ",
        t.nbytes - current_written_, " of its ", t.nbytes, " bytes remain"));
  }
  if (n > 0) RETURN_IF_ERROR(out_.Write(data, n));
  current_written_ += n;
  if (current_written_ == t.nbytes) {
    RETURN_IF_ERROR(out_.WriteZeros(internal::AlignUp(t.nbytes, alignment_) - t.nbytes));
    current_written_ = 0;
    ++current_;
    while (current_ < tensors_.size() && tensors_[current_].nbytes == 0) ++current_;
  }
  return absl::OkStatus();
}

absl::Status GgufWriter::Finish() {
  RETURN_IF_ERROR(WriteHeader());
  if (current_ < tensors_.size()) {
    return absl::FailedPreconditionError(absl::StrCat(
        out_.path(), ": tensor '", tensors_[current_].name, "' has ", current_written_, " of ",
        tensors_[current_].nbytes, " bytes written; every tensor must be written before Finish"));
  }
  return out_.Commit();
}

}  // namespace qatk::gguf
