// safetensors reader (untrusted input: header size capped, JSON nesting
// bounded, every tensor's dtype/shape/offsets checked, tensors must tile the
// data section exactly) and atomic writer.
#include "formats/safetensors/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <set>

#include "absl/strings/str_cat.h"
#include "formats/quant/fp16.h"
#include "formats/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace qatk::safetensors {
namespace {

using Json = nlohmann::ordered_json;
constexpr const char* kMetadataKey = "__metadata__";
constexpr int kMaxJsonDepth = 16;  // real headers nest 3 deep

struct DTypeInfo {
  DType dtype;
  const char* name;
  size_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {DType::kF32, "F32", 4}, {DType::kF16, "F16", 2}, {DType::kBF16, "BF16", 2},
    {DType::kI8, "I8", 1},   {DType::kI32, "I32", 4}, {DType::kU8, "U8", 1},
    {DType::kI64, "I64", 8},
};


// numel * elem_size without overflow; -1 on a negative dim or overflow.
int64_t ShapeBytes(const std::vector<int64_t>& shape, size_t elem_size) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  int64_t n = static_cast<int64_t>(elem_size);
  for (int64_t d : shape) {
    if (d < 0) return -1;
    if (d != 0 && n > kMax / d) return -1;
    n *= d;
  }
  return n;
}

}  // namespace

int JsonDepth(absl::string_view json) {
  int depth = 0, max_depth = 0;
  bool in_str = false;
  for (size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (in_str) {
      if (c == '\\') ++i;
      else if (c == '"') in_str = false;
    } else if (c == '"') {
      in_str = true;
    } else if (c == '{' || c == '[') {
      max_depth = std::max(max_depth, ++depth);
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return max_depth;
}


const char* DTypeName(DType d) {
  for (const DTypeInfo& i : kDTypes) {
    if (i.dtype == d) return i.name;
  }
  return "?";
}

size_t DTypeSize(DType d) {
  for (const DTypeInfo& i : kDTypes) {
    if (i.dtype == d) return i.size;
  }
  return 0;
}

int64_t TensorView::n_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

namespace {

class HeaderParser {
 public:
  HeaderParser(const std::string& path, const uint8_t* data, uint64_t data_size, uint64_t data_start)
      : path_(path), data_(data), data_size_(data_size), data_start_(data_start) {}

  absl::Status Err(absl::StatusCode code, const std::string& what) const {
    return absl::Status(code, absl::StrCat(path_, ": ", what));
  }

  absl::Status ParseMetadata(const Json& j, std::map<std::string, std::string>* out) const {
    if (!j.is_object()) return Err(absl::StatusCode::kInvalidArgument, "__metadata__ is not an object");
    for (const auto& [k, v] : j.items()) {
      if (!v.is_string()) {
        return Err(absl::StatusCode::kInvalidArgument,
                   absl::StrCat("__metadata__ value of '", k, "' is not a string"));
      }
      (*out)[k] = v.get<std::string>();
    }
    return absl::OkStatus();
  }

  absl::Status ParseTensor(const std::string& name, const Json& j, TensorView* t) const {
    const std::string what = absl::StrCat("tensor '", name, "'");
    auto bad = [&](const std::string& m) { return Err(absl::StatusCode::kInvalidArgument, what + ": " + m); };
    if (!j.is_object()) return bad("entry is not an object");
    auto dt = j.find("dtype");
    auto sh = j.find("shape");
    auto of = j.find("data_offsets");
    if (dt == j.end() || !dt->is_string()) return bad("missing or non-string \"dtype\"");
    if (sh == j.end() || !sh->is_array()) return bad("missing or non-array \"shape\"");
    if (of == j.end() || !of->is_array() || of->size() != 2) return bad("\"data_offsets\" must be [begin, end]");
    const std::string dname = dt->get<std::string>();
    const DTypeInfo* info = nullptr;
    for (const DTypeInfo& i : kDTypes) {
      if (dname == i.name) info = &i;
    }
    if (info == nullptr) {
      return Err(absl::StatusCode::kUnimplemented, absl::StrCat(what, ": unsupported dtype '", dname, "'"));
    }
    t->name = name;
    t->dtype = info->dtype;
    for (const Json& d : *sh) {
      if (!d.is_number_unsigned()) return bad("shape entries must be non-negative integers");
      const uint64_t v = d.get<uint64_t>();
      if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return bad("dimension too large");
      t->shape.push_back(static_cast<int64_t>(v));
    }
    if (!(*of)[0].is_number_unsigned() || !(*of)[1].is_number_unsigned()) {
      return bad("data_offsets must be non-negative integers");
    }
    const uint64_t begin = (*of)[0].get<uint64_t>(), end = (*of)[1].get<uint64_t>();
    if (begin > end || end > data_size_) {
      return Err(absl::StatusCode::kDataLoss,
                 absl::StrCat(what, ": data_offsets [", begin, ", ", end, "] outside the data section of ",
                              data_size_, " bytes (file offset ", data_start_, ")"));
    }
    const int64_t want = ShapeBytes(t->shape, info->size);
    if (want < 0 || static_cast<uint64_t>(want) != end - begin) {
      return bad(absl::StrCat("shape and dtype need ", want, " bytes but data_offsets span ", end - begin));
    }
    t->data = data_ + begin;
    t->nbytes = end - begin;
    return absl::OkStatus();
  }

  // Sorted by offset, tensors must follow each other with no gap or overlap
  // and end exactly at the end of the file.
  absl::Status CheckTiling(const std::vector<TensorView>& ts) const {
    std::vector<const TensorView*> order;
    for (const TensorView& t : ts) order.push_back(&t);
    std::sort(order.begin(), order.end(), [](const TensorView* a, const TensorView* b) {
      return a->data != b->data ? a->data < b->data : a->nbytes < b->nbytes;
    });
    uint64_t expected = 0;
    for (const TensorView* t : order) {
      const uint64_t begin = static_cast<uint64_t>(t->data - data_);
      if (begin != expected) {
        return Err(absl::StatusCode::kInvalidArgument,
                   absl::StrCat("tensor '", t->name, "' starts at data offset ", begin, ", expected ", expected,
                                begin < expected ? " (overlap)" : " (gap)"));
      }
      expected = begin + t->nbytes;
    }
    if (expected != data_size_) {
      return Err(absl::StatusCode::kInvalidArgument,
                 absl::StrCat("tensors cover ", expected, " of the ", data_size_, " data bytes"));
    }
    return absl::OkStatus();
  }

 private:
  const std::string& path_;
  const uint8_t* data_;
  uint64_t data_size_;
  uint64_t data_start_;
};

}  // namespace

absl::StatusOr<SafetensorsFile> SafetensorsFile::Parse(absl::Span<const uint8_t> bytes,
                                                       const std::string& name_for_errors) {
  const std::string& path = name_for_errors;
  if (bytes.size() < 8) {
    return absl::DataLossError(absl::StrCat(path, ": truncated: ", bytes.size(), " bytes, no header length"));
  }
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  if (n > kMaxHeaderBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": header length ", n, " exceeds the cap of ", kMaxHeaderBytes, " bytes"));
  }
  if (n > bytes.size() - 8) {
    return absl::DataLossError(absl::StrCat(path, ": truncated: header of ", n, " bytes at byte 8 but only ",
                                            bytes.size() - 8, " bytes follow"));
  }
  const char* hdr = reinterpret_cast<const char*>(bytes.data() + 8);
  if (JsonDepth(absl::string_view(hdr, n)) > kMaxJsonDepth) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": header JSON nests deeper than ", kMaxJsonDepth));
  }
  // nlohmann keeps one value per key: detect duplicate top-level keys while parsing.
  std::set<std::string> seen;
  std::string dup;
  Json::parser_callback_t cb = [&](int depth, Json::parse_event_t ev, Json& parsed) {
    if (ev == Json::parse_event_t::key && depth == 1 && parsed.is_string()) {
      if (!seen.insert(parsed.get<std::string>()).second && dup.empty()) dup = parsed.get<std::string>();
    }
    return true;
  };
  Json j = Json::parse(hdr, hdr + n, cb, /*allow_exceptions=*/false);
  if (!dup.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": duplicate tensor '", dup, "' in header"));
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": header (bytes 8..", 8 + n, ") is not a JSON object"));
  }
  SafetensorsFile f;
  f.path_ = path;
  const uint8_t* data = bytes.data() + 8 + n;
  HeaderParser p(path, data, bytes.size() - 8 - n, 8 + n);
  for (const auto& [key, value] : j.items()) {
    if (key == kMetadataKey) {
      RETURN_IF_ERROR(p.ParseMetadata(value, &f.metadata_));
      continue;
    }
    TensorView t;
    RETURN_IF_ERROR(p.ParseTensor(key, value, &t));
    f.index_[key] = f.tensors_.size();
    f.tensors_.push_back(std::move(t));
  }
  RETURN_IF_ERROR(p.CheckTiling(f.tensors_));
  return f;
}

absl::StatusOr<SafetensorsFile> SafetensorsFile::Open(const std::string& path) {
  ASSIGN_OR_RETURN(MappedFile m, MappedFile::Open(path));
  auto shared = std::make_shared<MappedFile>(std::move(m));
  ASSIGN_OR_RETURN(SafetensorsFile f, Parse(shared->bytes(), path));
  f.file_ = std::move(shared);
  return f;
}

const TensorView* SafetensorsFile::Find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

absl::StatusOr<std::vector<float>> SafetensorsFile::ReadFloat(const std::string& name) const {
  const TensorView* t = Find(name);
  if (t == nullptr) return absl::NotFoundError(absl::StrCat(path_, ": no tensor '", name, "'"));
  const size_t n = t->nbytes / DTypeSize(t->dtype);
  std::vector<float> out(n);
  switch (t->dtype) {
    case DType::kF32:
      if (n > 0) std::memcpy(out.data(), t->data, n * 4);
      break;
    case DType::kF16:
    case DType::kBF16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, t->data + 2 * i, 2);
        out[i] = t->dtype == DType::kF16 ? Fp16ToFp32(h) : Bf16ToFp32(h);
      }
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(path_, ": tensor '", name, "' has dtype ",
                                                     DTypeName(t->dtype), ", not a float type"));
  }
  return out;
}

void SafetensorsWriter::SetMetadata(const std::string& key, const std::string& value) {
  metadata_[key] = value;
}

absl::Status SafetensorsWriter::Add(const std::string& name, DType dtype, std::vector<int64_t> shape,
                                    const void* data, size_t nbytes) {
  if (name.empty() || name == kMetadataKey) {
    return absl::InvalidArgumentError(absl::StrCat("invalid tensor name '", name, "'"));
  }
  for (const Entry& e : entries_) {
    if (e.name == name) return absl::InvalidArgumentError(absl::StrCat("duplicate tensor '", name, "'"));
  }
  const int64_t want = ShapeBytes(shape, DTypeSize(dtype));
  if (want < 0 || static_cast<uint64_t>(want) != nbytes) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "': shape and dtype ", DTypeName(dtype),
                                                   " need ", want, " bytes, got ", nbytes));
  }
  const auto* p = static_cast<const uint8_t*>(data);
  entries_.push_back({name, dtype, std::move(shape), std::vector<uint8_t>(p, p + nbytes)});
  return absl::OkStatus();
}

absl::Status SafetensorsWriter::AddF32(const std::string& name, std::vector<int64_t> shape,
                                       absl::Span<const float> data) {
  return Add(name, DType::kF32, std::move(shape), data.data(), data.size() * sizeof(float));
}

absl::Status SafetensorsWriter::Write(const std::string& path) const {
  Json j = Json::object();
  if (!metadata_.empty()) {
    Json m = Json::object();
    for (const auto& [k, v] : metadata_) m[k] = v;
    j[kMetadataKey] = m;
  }
  uint64_t offset = 0;
  for (const Entry& e : entries_) {
    j[e.name] = {{"dtype", DTypeName(e.dtype)}, {"shape", e.shape}, {"data_offsets", {offset, offset + e.bytes.size()}}};
    offset += e.bytes.size();
  }
  std::string header;
  try {
    header = j.dump(-1, ' ', false, Json::error_handler_t::strict);
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": cannot encode header: ", e.what()));
  }
  header.append((8 - header.size() % 8) % 8, ' ');  // data starts 8-byte aligned
  ASSIGN_OR_RETURN(AtomicFileWriter w, AtomicFileWriter::Create(path));
  const uint64_t n = header.size();
  RETURN_IF_ERROR(w.Write(&n, 8));
  RETURN_IF_ERROR(w.Write(header.data(), header.size()));
  for (const Entry& e : entries_) RETURN_IF_ERROR(w.Write(e.bytes.data(), e.bytes.size()));
  return w.Commit();
}

}  // namespace qatk::safetensors
