// GGUF metadata values: constructors, typed accessors, type names, and the
// tensor byte-size rule shared by reader and writer.
#include <limits>

#include "absl/strings/str_cat.h"
#include "formats/gguf/gguf.h"
#include "formats/gguf/gguf_internal.h"

namespace qatk::gguf {

const char* ValueTypeName(ValueType t) {
  switch (t) {
    case ValueType::kUint8: return "UINT8";
    case ValueType::kInt8: return "INT8";
    case ValueType::kUint16: return "UINT16";
    case ValueType::kInt16: return "INT16";
    case ValueType::kUint32: return "UINT32";
    case ValueType::kInt32: return "INT32";
    case ValueType::kFloat32: return "FLOAT32";
    case ValueType::kBool: return "BOOL";
    case ValueType::kString: return "STRING";
    case ValueType::kArray: return "ARRAY";
    case ValueType::kUint64: return "UINT64";
    case ValueType::kInt64: return "INT64";
    case ValueType::kFloat64: return "FLOAT64";
  }
  return "INVALID";
}

Value Value::U32(uint32_t x) { return Scalar(ValueType::kUint32, uint64_t{x}); }
Value Value::I32(int32_t x) { return Scalar(ValueType::kInt32, int64_t{x}); }
Value Value::U64(uint64_t x) { return Scalar(ValueType::kUint64, x); }
Value Value::F32(float x) { return Scalar(ValueType::kFloat32, double{x}); }
Value Value::Bool(bool x) { return Scalar(ValueType::kBool, x); }

Value Value::Str(std::string x) {
  Value v;
  v.type = ValueType::kString;
  v.v = std::move(x);
  return v;
}

Value Value::StrArray(std::vector<std::string> x) {
  Value v;
  v.type = ValueType::kArray;
  v.elem_type = ValueType::kString;
  v.v = std::move(x);
  return v;
}

Value Value::F32Array(const std::vector<float>& x) {
  Value v;
  v.type = ValueType::kArray;
  v.elem_type = ValueType::kFloat32;
  v.v = std::vector<double>(x.begin(), x.end());
  return v;
}

Value Value::I32Array(const std::vector<int32_t>& x) {
  Value v;
  v.type = ValueType::kArray;
  v.elem_type = ValueType::kInt32;
  v.v = std::vector<int64_t>(x.begin(), x.end());
  return v;
}

Value Value::U32Array(const std::vector<uint32_t>& x) {
  Value v;
  v.type = ValueType::kArray;
  v.elem_type = ValueType::kUint32;
  v.v = std::vector<uint64_t>(x.begin(), x.end());
  return v;
}

Value Value::Scalar(ValueType t, std::variant<uint64_t, int64_t, double, bool> x) {
  Value v;
  v.type = t;
  std::visit([&v](auto y) { v.v = y; }, x);
  return v;
}

namespace {
absl::Status TypeMismatch(const Value& v, const char* wanted) {
  std::string have = ValueTypeName(v.type);
  if (v.type == ValueType::kArray) absl::StrAppend(&have, " of ", ValueTypeName(v.elem_type));
  return absl::InvalidArgumentError(absl::StrCat("value has type ", have, ", expected ", wanted));
}
}  // namespace

absl::StatusOr<uint64_t> Value::AsUint() const {
  if (const auto* u = std::get_if<uint64_t>(&v); u && type != ValueType::kArray) return *u;
  if (const auto* i = std::get_if<int64_t>(&v); i && type != ValueType::kArray) {
    if (*i >= 0) return static_cast<uint64_t>(*i);
    return absl::InvalidArgumentError(absl::StrCat("value ", *i, " is negative"));
  }
  return TypeMismatch(*this, "an integer");
}

absl::StatusOr<int64_t> Value::AsInt() const {
  if (const auto* i = std::get_if<int64_t>(&v); i && type != ValueType::kArray) return *i;
  if (const auto* u = std::get_if<uint64_t>(&v); u && type != ValueType::kArray) {
    if (*u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return static_cast<int64_t>(*u);
    }
    return absl::InvalidArgumentError(absl::StrCat("value ", *u, " does not fit int64"));
  }
  return TypeMismatch(*this, "an integer");
}

absl::StatusOr<double> Value::AsFloat() const {
  if (const auto* d = std::get_if<double>(&v); d && type != ValueType::kArray) return *d;
  return TypeMismatch(*this, "FLOAT32 or FLOAT64");
}

absl::StatusOr<bool> Value::AsBool() const {
  if (const auto* b = std::get_if<bool>(&v); b && type == ValueType::kBool) return *b;
  return TypeMismatch(*this, "BOOL");
}

absl::StatusOr<std::string> Value::AsString() const {
  if (const auto* s = std::get_if<std::string>(&v); s && type == ValueType::kString) return *s;
  return TypeMismatch(*this, "STRING");
}

size_t Value::ArraySize() const {
  if (type != ValueType::kArray) return 0;
  return std::visit(
      [](const auto& x) -> size_t {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::vector<uint64_t>> ||
                      std::is_same_v<T, std::vector<int64_t>> ||
                      std::is_same_v<T, std::vector<double>> ||
                      std::is_same_v<T, std::vector<bool>> ||
                      std::is_same_v<T, std::vector<std::string>>) {
          return x.size();
        } else {
          return 0;
        }
      },
      v);
}

int64_t TensorInfo::n_elements() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return n;
}

namespace internal {

absl::StatusOr<uint64_t> TensorBytes(GgmlType type, const std::vector<int64_t>& ne,
                                     const std::string& what) {
  const TypeTraits& t = Traits(type);
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  int64_t n_el = 1;
  for (size_t i = 0; i < ne.size(); ++i) {
    if (ne[i] < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": dimension ", i, " is negative (", ne[i], ")"));
    }
    if (ne[i] != 0 && n_el > kMax / ne[i]) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": element count overflows int64"));
    }
    n_el *= ne[i];
  }
  const int64_t ne0 = ne.empty() ? 1 : ne[0];
  if (ne0 % t.block_size != 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ne[0] = ", ne0, " is not a multiple of ",
                                                   t.name, "'s block size ", t.block_size));
  }
  const uint64_t blocks = static_cast<uint64_t>(n_el / t.block_size);
  if (blocks > static_cast<uint64_t>(kMax) / static_cast<uint64_t>(t.type_size)) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": byte size overflows int64"));
  }
  return blocks * static_cast<uint64_t>(t.type_size);
}

}  // namespace internal
}  // namespace qatk::gguf
