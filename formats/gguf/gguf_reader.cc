// GGUF reader: parses an untrusted image. Every length and count is bounded
// by the bytes left before anything is allocated; tensor data stay in the
// mapping (zero-copy). See formats/gguf/gguf.h for the layout.
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "formats/gguf/gguf.h"
#include "formats/gguf/gguf_internal.h"
#include "formats/util/status_macros.h"

namespace qatk::gguf {

using internal::ScalarSize;

// Sequential little-endian reads with bounds checks; errors name the path
// and the byte offset. (Hosts are little-endian: x86-64 and arm64.)
class GgufParser {
 public:
  GgufParser(const uint8_t* base, uint64_t size, std::string path)
      : base_(base), size_(size), path_(std::move(path)) {}

  absl::Status Run(GgufFile* f);

 private:
  uint64_t left() const { return size_ - pos_; }

  absl::Status Err(absl::StatusCode code, uint64_t at, const std::string& what) const {
    return absl::Status(code, absl::StrCat(path_, ": ", what, " (at byte ", at, ")"));
  }
  absl::Status Truncated(const std::string& what) const {
    return Err(absl::StatusCode::kDataLoss, pos_,
               absl::StrCat("truncated: ", what, " extends past the end of the file (",
                            size_, " bytes)"));
  }

  template <typename T>
  absl::Status Read(T* out, const std::string& what) {
    if (left() < sizeof(T)) return Truncated(what);
    std::memcpy(out, base_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return absl::OkStatus();
  }

  absl::Status ReadString(std::string* out, const std::string& what);
  absl::Status ReadScalar(ValueType t, Value* out, const std::string& what);
  absl::Status ReadArray(Value* out, const std::string& what);
  absl::Status ReadHeader(GgufFile* f, int64_t* n_tensors, int64_t* n_kv);
  absl::Status ReadKv(GgufFile* f);
  absl::Status ReadTensorInfo(GgufFile* f);
  absl::Status CheckLayout(GgufFile* f);

  const uint8_t* base_;
  uint64_t size_;
  uint64_t pos_ = 0;
  std::string path_;
};

absl::Status GgufParser::ReadString(std::string* out, const std::string& what) {
  const uint64_t at = pos_;
  uint64_t len = 0;
  RETURN_IF_ERROR(Read(&len, absl::StrCat(what, " length")));
  if (len > internal::kMaxStringBytes) {
    return Err(absl::StatusCode::kDataLoss, at,
               absl::StrCat(what, ": string length ", len, " exceeds the 1 GiB cap"));
  }
  if (len > left()) {
    return Err(absl::StatusCode::kDataLoss, at,
               absl::StrCat(what, ": string length ", len, " exceeds the remaining ", left(),
                            " bytes"));
  }
  out->assign(reinterpret_cast<const char*>(base_ + pos_), len);
  pos_ += len;
  return absl::OkStatus();
}

absl::Status GgufParser::ReadScalar(ValueType t, Value* out, const std::string& what) {
  out->type = t;
  switch (t) {
    case ValueType::kUint8: { uint8_t x = 0; RETURN_IF_ERROR(Read(&x, what)); out->v = uint64_t{x}; break; }
    case ValueType::kUint16: { uint16_t x = 0; RETURN_IF_ERROR(Read(&x, what)); out->v = uint64_t{x}; break; }
    case ValueType::kUint32: { uint32_t x = 0; RETURN_IF_ERROR(Read(&x, what)); out->v = uint64_t{x}; break; }
    case ValueType::kUint64: { uint64_t x = 0; RETURN_IF_ERROR(Read(&x, what)); out->v = x; break; }
    case ValueType::kInt8: { int8_t x = 0; RETURN_IF_ERROR(Read(&x, what)); out->v = int64_t{x}; break; }
    case ValueType::kInt16: { int16_t x = 0; RETURN_IF_ERROR(Read(&x, what)); out->v = int64_t{x}; break; }
    case ValueType::kInt32: { int32_t x = 0; RETURN_IF_ERROR(Read(&x, what)); out->v = int64_t{x}; break; }
    case ValueType::kInt64: { int64_t x = 0; RETURN_IF_ERROR(Read(&x, what)); out->v = x; break; }
    case ValueType::kFloat32: { float x = 0; RETURN_IF_ERROR(Read(&x, what)); out->v = double{x}; break; }
    case ValueType::kFloat64: { double x = 0; RETURN_IF_ERROR(Read(&x, what)); out->v = x; break; }
    case ValueType::kBool: { uint8_t x = 0; RETURN_IF_ERROR(Read(&x, what)); out->v = x != 0; break; }
    case ValueType::kString: {
      std::string s;
      RETURN_IF_ERROR(ReadString(&s, what));
      out->v = std::move(s);
      break;
    }
    case ValueType::kArray:
      return Err(absl::StatusCode::kInvalidArgument, pos_, absl::StrCat(what, ": nested array"));
  }
  return absl::OkStatus();
}

// Reads `count` elements of T (stored as the on-disk type D) into a vector.
template <typename T, typename D>
static std::vector<T> ReadPacked(const uint8_t* p, uint64_t count) {
  std::vector<T> out(count);
  for (uint64_t i = 0; i < count; ++i) {
    D d;
    std::memcpy(&d, p + i * sizeof(D), sizeof(D));
    out[i] = static_cast<T>(d);
  }
  return out;
}

absl::Status GgufParser::ReadArray(Value* out, const std::string& what) {
  const uint64_t at = pos_;
  int32_t et = 0;
  uint64_t count = 0;
  RETURN_IF_ERROR(Read(&et, absl::StrCat(what, " element type")));
  if (!internal::IsKnownValueType(et) || et == static_cast<int32_t>(ValueType::kArray)) {
    return Err(absl::StatusCode::kInvalidArgument, at,
               absl::StrCat(what, ": invalid array element type ", et,
                            et == 9 ? " (nested arrays are not supported)" : ""));
  }
  RETURN_IF_ERROR(Read(&count, absl::StrCat(what, " element count")));
  const auto t = static_cast<ValueType>(et);
  const uint64_t min_elem = t == ValueType::kString ? 8 : ScalarSize(t);
  if (count > internal::kMaxArrayElems || count > left() / min_elem) {
    return Err(absl::StatusCode::kDataLoss, at,
               absl::StrCat(what, ": array of ", count, " ", ValueTypeName(t),
                            " elements exceeds the remaining ", left(), " bytes or the 2^30 cap"));
  }
  out->type = ValueType::kArray;
  out->elem_type = t;
  const uint8_t* p = base_ + pos_;
  switch (t) {
    case ValueType::kUint8: out->v = ReadPacked<uint64_t, uint8_t>(p, count); break;
    case ValueType::kUint16: out->v = ReadPacked<uint64_t, uint16_t>(p, count); break;
    case ValueType::kUint32: out->v = ReadPacked<uint64_t, uint32_t>(p, count); break;
    case ValueType::kUint64: out->v = ReadPacked<uint64_t, uint64_t>(p, count); break;
    case ValueType::kInt8: out->v = ReadPacked<int64_t, int8_t>(p, count); break;
    case ValueType::kInt16: out->v = ReadPacked<int64_t, int16_t>(p, count); break;
    case ValueType::kInt32: out->v = ReadPacked<int64_t, int32_t>(p, count); break;
    case ValueType::kInt64: out->v = ReadPacked<int64_t, int64_t>(p, count); break;
    case ValueType::kFloat32: out->v = ReadPacked<double, float>(p, count); break;
    case ValueType::kFloat64: out->v = ReadPacked<double, double>(p, count); break;
    case ValueType::kBool: {
      std::vector<bool> b(count);
      for (uint64_t i = 0; i < count; ++i) b[i] = p[i] != 0;
      out->v = std::move(b);
      break;
    }
    case ValueType::kString: {
      std::vector<std::string> s(count);
      for (uint64_t i = 0; i < count; ++i) {
        RETURN_IF_ERROR(ReadString(&s[i], absl::StrCat(what, "[", i, "]")));
      }
      out->v = std::move(s);
      return absl::OkStatus();
    }
    case ValueType::kArray: break;  // rejected above
  }
  pos_ += count * ScalarSize(t);
  return absl::OkStatus();
}

absl::Status GgufParser::ReadHeader(GgufFile* f, int64_t* n_tensors, int64_t* n_kv) {
  if (size_ < 4 || std::memcmp(base_, internal::kMagic, 4) != 0) {
    return Err(absl::StatusCode::kInvalidArgument, 0, "not a GGUF file (bad magic)");
  }
  pos_ = 4;
  RETURN_IF_ERROR(Read(&f->version_, "version"));
  if ((f->version_ & 0xFFFFu) == 0) {
    return Err(absl::StatusCode::kUnimplemented, 4,
               absl::StrCat("version ", f->version_, " looks big-endian; not supported"));
  }
  if (f->version_ < 2 || f->version_ > internal::kVersion) {
    return Err(absl::StatusCode::kUnimplemented, 4,
               absl::StrCat("unsupported GGUF version ", f->version_, " (2 and 3 are read)"));
  }
  RETURN_IF_ERROR(Read(n_tensors, "tensor count"));
  RETURN_IF_ERROR(Read(n_kv, "metadata count"));
  // Each record needs at least this many bytes: bounds the counts up front.
  constexpr int64_t kMinKv = 8 + 1 + 4 + 1, kMinTensor = 8 + 1 + 4 + 4 + 8;
  if (*n_tensors < 0 || static_cast<uint64_t>(*n_tensors) > left() / kMinTensor) {
    return Err(absl::StatusCode::kDataLoss, 8,
               absl::StrCat("tensor count ", *n_tensors, " is negative or exceeds the file size"));
  }
  if (*n_kv < 0 || static_cast<uint64_t>(*n_kv) > left() / kMinKv) {
    return Err(absl::StatusCode::kDataLoss, 16,
               absl::StrCat("metadata count ", *n_kv, " is negative or exceeds the file size"));
  }
  return absl::OkStatus();
}

absl::Status GgufParser::ReadKv(GgufFile* f) {
  const uint64_t at = pos_;
  std::string key;
  RETURN_IF_ERROR(ReadString(&key, absl::StrCat("key #", f->kv_.size())));
  if (key.empty()) return Err(absl::StatusCode::kInvalidArgument, at, "empty metadata key");
  if (f->kv_index_.count(key) != 0) {
    return Err(absl::StatusCode::kInvalidArgument, at, absl::StrCat("duplicate key '", key, "'"));
  }
  const std::string what = absl::StrCat("key '", key, "'");
  const uint64_t type_at = pos_;
  int32_t type = 0;
  RETURN_IF_ERROR(Read(&type, what + " type"));
  if (!internal::IsKnownValueType(type)) {
    return Err(absl::StatusCode::kInvalidArgument, type_at,
               absl::StrCat(what, " has invalid GGUF type ", type));
  }
  Value v;
  if (static_cast<ValueType>(type) == ValueType::kArray) {
    RETURN_IF_ERROR(ReadArray(&v, what));
  } else {
    RETURN_IF_ERROR(ReadScalar(static_cast<ValueType>(type), &v, what));
  }
  f->kv_index_[key] = f->kv_.size();
  f->kv_.emplace_back(std::move(key), std::move(v));
  return absl::OkStatus();
}

absl::Status GgufParser::ReadTensorInfo(GgufFile* f) {
  const uint64_t at = pos_;
  TensorInfo t;
  RETURN_IF_ERROR(ReadString(&t.name, absl::StrCat("tensor #", f->tensors_.size(), " name")));
  if (t.name.size() > internal::kMaxNameBytes) {
    return Err(absl::StatusCode::kInvalidArgument, at,
               absl::StrCat("tensor name '", t.name.substr(0, 64), "...' is ", t.name.size(),
                            " bytes (must be < 64)"));
  }
  if (f->tensor_index_.count(t.name) != 0) {
    return Err(absl::StatusCode::kInvalidArgument, at,
               absl::StrCat("duplicate tensor '", t.name, "'"));
  }
  const std::string what = absl::StrCat("tensor '", t.name, "'");
  uint32_t n_dims = 0;
  const uint64_t dims_at = pos_;
  RETURN_IF_ERROR(Read(&n_dims, what + " n_dims"));
  if (n_dims > internal::kMaxDims) {
    return Err(absl::StatusCode::kInvalidArgument, dims_at,
               absl::StrCat(what, " has ", n_dims, " dimensions (max 4)"));
  }
  t.ne.resize(n_dims);
  for (uint32_t i = 0; i < n_dims; ++i) RETURN_IF_ERROR(Read(&t.ne[i], what + " shape"));
  const uint64_t type_at = pos_;
  int32_t type = 0;
  RETURN_IF_ERROR(Read(&type, what + " type"));
  const TypeTraits* traits = type >= 0 ? FindTypeTraits(static_cast<uint32_t>(type)) : nullptr;
  if (traits == nullptr) {
    return Err(absl::StatusCode::kUnimplemented, type_at,
               absl::StrCat(what, " has unsupported ggml type ", type));
  }
  t.type = traits->type;
  auto nbytes = internal::TensorBytes(t.type, t.ne, what);
  if (!nbytes.ok()) return Err(absl::StatusCode::kInvalidArgument, dims_at, std::string(nbytes.status().message()));
  t.nbytes = *nbytes;
  RETURN_IF_ERROR(Read(&t.offset, what + " offset"));
  f->tensor_index_[t.name] = f->tensors_.size();
  f->tensors_.push_back(std::move(t));
  return absl::OkStatus();
}

absl::Status GgufParser::CheckLayout(GgufFile* f) {
  if (const Value* a = f->Find(internal::kAlignmentKey)) {
    if (a->type != ValueType::kUint32) {
      return Err(absl::StatusCode::kInvalidArgument, 0,
                 absl::StrCat("key 'general.alignment' must be UINT32 but is ",
                              ValueTypeName(a->type)));
    }
    const uint64_t al = std::get<uint64_t>(a->v);
    if (!internal::IsPowerOfTwo(al)) {
      return Err(absl::StatusCode::kInvalidArgument, 0,
                 absl::StrCat("general.alignment ", al, " is not a power of 2"));
    }
    f->alignment_ = static_cast<uint32_t>(al);
  }
  uint64_t data = pos_;
  if (!f->tensors_.empty()) data = internal::AlignUp(pos_, f->alignment_);
  if (data > size_) {
    return Err(absl::StatusCode::kDataLoss, pos_, "truncated: data section starts past the end");
  }
  f->data_offset_ = data;
  uint64_t expected = 0;
  for (const TensorInfo& t : f->tensors_) {
    if (t.offset != expected) {
      return Err(absl::StatusCode::kInvalidArgument, data,
                 absl::StrCat("tensor '", t.name, "' has offset ", t.offset, ", expected ",
                              expected));
    }
    if (t.nbytes > size_ - data || t.offset > size_ - data - t.nbytes) {
      return Err(absl::StatusCode::kDataLoss, data + t.offset,
                 absl::StrCat("truncated: tensor '", t.name, "' (", t.nbytes,
                              " bytes) extends past the end of the file (", size_, " bytes)"));
    }
    expected = t.offset + internal::AlignUp(t.nbytes, f->alignment_);
  }
  return absl::OkStatus();
}

absl::Status GgufParser::Run(GgufFile* f) {
  f->path_ = path_;
  f->base_ = base_;
  f->size_ = size_;
  int64_t n_tensors = 0, n_kv = 0;
  RETURN_IF_ERROR(ReadHeader(f, &n_tensors, &n_kv));
  for (int64_t i = 0; i < n_kv; ++i) RETURN_IF_ERROR(ReadKv(f));
  for (int64_t i = 0; i < n_tensors; ++i) RETURN_IF_ERROR(ReadTensorInfo(f));
  return CheckLayout(f);
}

absl::StatusOr<GgufFile> GgufFile::Parse(absl::Span<const uint8_t> bytes,
                                         const std::string& name_for_errors) {
  GgufFile f;
  GgufParser p(bytes.data(), bytes.size(), name_for_errors);
  RETURN_IF_ERROR(p.Run(&f));
  return f;
}

absl::StatusOr<GgufFile> GgufFile::Open(const std::string& path) {
  ASSIGN_OR_RETURN(MappedFile m, MappedFile::Open(path));
  auto shared = std::make_shared<MappedFile>(std::move(m));
  ASSIGN_OR_RETURN(GgufFile f, Parse(shared->bytes(), path));
  f.file_ = std::move(shared);
  return f;
}

const Value* GgufFile::Find(const std::string& key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

namespace {
template <typename T>
absl::StatusOr<T> Lookup(const GgufFile& f, const std::string& key,
                         absl::StatusOr<T> (Value::*get)() const) {
  const Value* v = f.Find(key);
  if (v == nullptr) return absl::NotFoundError(absl::StrCat(f.path(), ": no key '", key, "'"));
  absl::StatusOr<T> r = (v->*get)();
  if (!r.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(f.path(), ": key '", key, "': ",
                                                   r.status().message()));
  }
  return r;
}
}  // namespace

absl::StatusOr<uint64_t> GgufFile::GetUint(const std::string& key) const {
  return Lookup<uint64_t>(*this, key, &Value::AsUint);
}
absl::StatusOr<double> GgufFile::GetFloat(const std::string& key) const {
  return Lookup<double>(*this, key, &Value::AsFloat);
}
absl::StatusOr<std::string> GgufFile::GetString(const std::string& key) const {
  return Lookup<std::string>(*this, key, &Value::AsString);
}
absl::StatusOr<bool> GgufFile::GetBool(const std::string& key) const {
  return Lookup<bool>(*this, key, &Value::AsBool);
}

const TensorInfo* GgufFile::FindTensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const uint8_t* GgufFile::TensorData(const TensorInfo& t) const {
  return base_ + data_offset_ + t.offset;
}

}  // namespace qatk::gguf
