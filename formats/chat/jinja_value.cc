#include "formats/chat/jinja_value.h"

#include <locale.h>
#include <wctype.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <clocale>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

namespace qatk::chat::jinja {

void Fail(std::string message) { throw Error{std::move(message), 0, 0, false}; }
void FailLimit(std::string message) { throw Error{std::move(message), 0, 0, true}; }

Value Value::Null() {
  Value v;
  v.kind = Kind::kNull;
  return v;
}
Value Value::Bool(bool b) {
  Value v;
  v.kind = Kind::kBool;
  v.boolean = b;
  return v;
}
Value Value::Int(double d) {
  Value v;
  v.kind = Kind::kInt;
  v.number = d;
  return v;
}
Value Value::Float(double d) {
  Value v;
  v.kind = Kind::kFloat;
  v.number = d;
  return v;
}
Value Value::String(std::string s) {
  Value v;
  v.kind = Kind::kString;
  v.str = std::move(s);
  return v;
}
Value Value::Array(std::vector<Value> items, Kind kind) {
  Value v;
  v.kind = kind;
  v.array = std::make_shared<ArrayData>();
  int depth = 0;
  for (const Value& item : items) depth = std::max(depth, item.depth());
  if (depth + 1 > kMaxValueDepth) FailLimit("value nested too deeply");
  v.array->depth = depth + 1;
  v.array->items = std::move(items);
  return v;
}
Value Value::Object(std::shared_ptr<ObjectData> data, Kind kind) {
  Value v;
  v.kind = kind;
  int depth = 0;
  for (const auto& [key, item] : data->entries) depth = std::max(depth, item.depth());
  if (depth + 1 > kMaxValueDepth) FailLimit("value nested too deeply");
  data->depth = depth + 1;
  v.object = std::move(data);
  return v;
}
Value Value::Function(NativeFn f) {
  Value v;
  v.kind = Kind::kFunction;
  v.fn = std::make_shared<NativeFn>(std::move(f));
  return v;
}

int Value::depth() const {
  if (array) return array->depth;
  if (object) return object->depth;
  return 0;
}

const char* Value::TypeName() const {
  switch (kind) {
    case Kind::kUndefined:
      return "UndefinedValue";
    case Kind::kNull:
      return "NullValue";
    case Kind::kBool:
      return "BooleanValue";
    case Kind::kInt:
      return "IntegerValue";
    case Kind::kFloat:
      return "FloatValue";
    case Kind::kString:
      return "StringValue";
    case Kind::kArray:
      return "ArrayValue";
    case Kind::kTuple:
      return "TupleValue";
    case Kind::kObject:
      return "ObjectValue";
    case Kind::kKwargs:
      return "KeywordArgumentsValue";
    case Kind::kNamespace:
      return "NamespaceValue";
    case Kind::kFunction:
      return "FunctionValue";
  }
  return "?";
}

const Value* ObjectData::Find(const std::string& key) const {
  if (index.empty()) {
    for (const auto& [k, v] : entries) {
      if (k == key) return &v;
    }
    return nullptr;
  }
  auto it = index.find(key);
  return it == index.end() ? nullptr : &entries[it->second].second;
}

void ObjectData::Set(const std::string& key, Value v) {
  if (Value* existing = const_cast<Value*>(Find(key))) {
    *existing = std::move(v);
    return;
  }
  entries.emplace_back(key, std::move(v));
  if (entries.size() == kIndexThreshold) {
    for (size_t i = 0; i < entries.size(); ++i) index.emplace(entries[i].first, i);
  } else if (entries.size() > kIndexThreshold) {
    index.emplace(key, entries.size() - 1);
  }
}

bool RawTruthy(const Value& v) {
  switch (v.kind) {
    case Kind::kUndefined:
    case Kind::kNull:
      return false;
    case Kind::kBool:
      return v.boolean;
    case Kind::kInt:
    case Kind::kFloat:
      return v.number != 0 && !std::isnan(v.number);
    case Kind::kString:
      return !v.str.empty();
    default:
      return true;
  }
}

bool Truthy(const Value& v) {
  if (v.is_array()) return !v.array->items.empty();
  if (v.is_object()) return v.object->size() > 0;
  return RawTruthy(v);
}

std::string JsNumberToString(double x) {
  if (std::isnan(x)) return "NaN";
  if (x == 0) return "0";
  if (std::isinf(x)) return x < 0 ? "-Infinity" : "Infinity";
  if (x < 0) return "-" + JsNumberToString(-x);
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof(buf), x, std::chars_format::scientific);
  std::string s(buf, r.ptr);  // shortest round trip: d[.ddd]e±XX
  size_t e = s.find('e');
  std::string digits;
  for (size_t i = 0; i < e; ++i) {
    if (s[i] != '.') digits += s[i];
  }
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  const int k = static_cast<int>(digits.size());
  const int n = std::atoi(s.c_str() + e + 1) + 1;
  if (k <= n && n <= 21) return digits + std::string(n - k, '0');
  if (0 < n && n <= 21) return digits.substr(0, n) + "." + digits.substr(n);
  if (-6 < n && n <= 0) return "0." + std::string(-n, '0') + digits;
  std::string out = digits.substr(0, 1);
  if (k > 1) out += "." + digits.substr(1);
  out += n - 1 >= 0 ? "e+" : "e-";
  out += std::to_string(std::abs(n - 1));
  return out;
}

namespace {

std::string FloatToString(double x) {
  if (x == 0 && std::signbit(x)) return "-0.0";
  if (std::isfinite(x) && std::fmod(x, 1.0) == 0) {
    if (std::fabs(x) < 1e21) {
      char buf[512];
      std::snprintf(buf, sizeof(buf), "%.1f", x);
      return buf;
    }
  }
  return JsNumberToString(x);
}

void AppendHex4(std::string* out, uint32_t unit) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "\\u%04x", unit);
  *out += buf;
}

}  // namespace

// The reference's NullValue holds a JavaScript undefined (its constructor
// gets no argument), so none prints and compares like undefined wherever the
// raw value shows through.
std::string ToOutputString(const Value& v) {
  switch (v.kind) {
    case Kind::kUndefined:
    case Kind::kNull:
      return "undefined";
    case Kind::kBool:
      return v.boolean ? "true" : "false";
    case Kind::kInt:
      return JsNumberToString(v.number);
    case Kind::kFloat:
      return FloatToString(v.number);
    case Kind::kString:
      return v.str;
    case Kind::kFunction:
      Fail("cannot print a function");
    default:
      return ToJson(v, JsonOptions(), 0, false);
  }
}

std::string ToJsString(const Value& v) {
  switch (v.kind) {
    case Kind::kUndefined:
    case Kind::kNull:
      return "undefined";
    case Kind::kBool:
      return v.boolean ? "true" : "false";
    case Kind::kInt:
    case Kind::kFloat:
      return JsNumberToString(v.number);
    case Kind::kString:
      return v.str;
    case Kind::kArray:
    case Kind::kTuple: {
      std::string out;
      bool first = true;
      for (const Value& item : v.array->items) {
        if (!first) out += ',';
        first = false;
        out += ToOutputString(item);
      }
      return out;
    }
    case Kind::kObject:
    case Kind::kKwargs:
    case Kind::kNamespace:
      return "[object Map]";
    case Kind::kFunction:
      Fail("cannot convert a function to a string");
  }
  return "";
}

size_t Utf8Next(std::string_view s, size_t i, uint32_t* cp) {
  const auto b = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  const uint8_t c = b(i);
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  int len = c >= 0xF0 && c < 0xF8 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
  if (len == 0 || i + len > s.size()) {
    *cp = 0xFFFD;
    return 1;
  }
  uint32_t value = c & (0x3F >> (len - 1));
  for (int k = 1; k < len; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) {
      *cp = 0xFFFD;
      return 1;
    }
    value = (value << 6) | (b(i + k) & 0x3F);
  }
  *cp = value;
  return len;
}

void AppendUtf8(std::string* out, uint32_t cp) {
  if (cp < 0x80) {
    *out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    *out += static_cast<char>(0xC0 | (cp >> 6));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    *out += static_cast<char>(0xE0 | (cp >> 12));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    *out += static_cast<char>(0xF0 | (cp >> 18));
    *out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string JsonQuote(std::string_view s, bool ensure_ascii) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size();) {
    uint32_t cp;
    const size_t len = Utf8Next(s, i, &cp);
    switch (cp) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (cp < 0x20 || (cp >= 0xD800 && cp <= 0xDFFF)) {
          AppendHex4(&out, cp);
        } else if (ensure_ascii && cp >= 0x7F) {
          if (cp < 0x10000) {
            AppendHex4(&out, cp);
          } else {
            AppendHex4(&out, 0xD800 + ((cp - 0x10000) >> 10));
            AppendHex4(&out, 0xDC00 + ((cp - 0x10000) & 0x3FF));
          }
        } else if (cp == 0xFFFD && len == 1) {
          AppendUtf8(&out, cp);
        } else {
          out.append(s.substr(i, len));
        }
    }
    i += len;
  }
  out += '"';
  return out;
}

namespace {

// localeCompare approximation for sort_keys: case-insensitive first,
// lower case before upper case on ties (ICU root collation for ASCII letters).
bool LocaleLess(const std::string& a, const std::string& b) {
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const int ca = std::tolower(static_cast<unsigned char>(a[i]));
    const int cb = std::tolower(static_cast<unsigned char>(b[i]));
    if (ca != cb) return ca < cb;
  }
  if (a.size() != b.size()) return a.size() < b.size();
  for (size_t i = 0; i < n; ++i) {
    if (a[i] != b[i]) return std::islower(static_cast<unsigned char>(a[i])) != 0;
  }
  return false;
}

}  // namespace

std::string ToJson(const Value& v, const JsonOptions& options, int depth, bool undefined_to_null) {
  if (depth > kMaxValueDepth) FailLimit("tojson: value nested too deeply");
  std::string item_sep = ", ", key_sep = ": ";
  if (options.separators) {
    item_sep = options.separators->first;
    key_sep = options.separators->second;
  } else if (options.indent > 0) {
    item_sep = ",";
  }
  switch (v.kind) {
    case Kind::kNull:
      return "null";
    case Kind::kUndefined:
      return undefined_to_null ? "null" : "undefined";
    case Kind::kBool:
      return v.boolean ? "true" : "false";
    case Kind::kInt:
    case Kind::kFloat:
      return std::isfinite(v.number) ? JsNumberToString(v.number) : "null";
    case Kind::kString:
      return JsonQuote(v.str, options.ensure_ascii);
    case Kind::kArray:
    case Kind::kObject:
    case Kind::kNamespace:
      break;
    default:
      Fail(std::string("Cannot convert to JSON: ") + v.TypeName());
  }
  const std::string indent(std::max(options.indent, 0), ' ');
  std::string base = "\n";
  for (int i = 0; i < depth; ++i) base += indent;
  const std::string children = base + indent;
  const bool pretty = options.indent > 0;
  std::string out;
  if (v.kind == Kind::kArray) {
    const auto& items = v.array->items;
    out = "[";
    if (pretty && !items.empty()) out += children;
    for (size_t i = 0; i < items.size(); ++i) {
      if (i > 0) out += pretty ? item_sep + children : item_sep;
      out += ToJson(items[i], options, depth + 1, undefined_to_null);
    }
    if (pretty && !items.empty()) out += base;
    return out + "]";
  }
  std::vector<const std::pair<std::string, Value>*> entries;
  for (const auto& e : v.object->entries) entries.push_back(&e);
  if (options.sort_keys) {
    std::stable_sort(entries.begin(), entries.end(),
                     [](const auto* a, const auto* b) { return LocaleLess(a->first, b->first); });
  }
  out = "{";
  for (size_t i = 0; i < entries.size(); ++i) {
    if (i > 0) out += item_sep;
    if (pretty) out += children;
    out += JsonQuote(entries[i]->first, options.ensure_ascii);
    out += key_sep;
    out += ToJson(entries[i]->second, options, depth + 1, undefined_to_null);
  }
  if (pretty && !entries.empty()) out += base;
  return out + "}";
}

namespace {

enum class JsType { kUndefined, kNull, kBool, kNumber, kString, kObject };

JsType JsTypeOf(const Value& v) {
  switch (v.kind) {
    case Kind::kUndefined:
    case Kind::kNull:
      return JsType::kUndefined;  // see ToOutputString
    case Kind::kBool:
      return JsType::kBool;
    case Kind::kInt:
    case Kind::kFloat:
      return JsType::kNumber;
    case Kind::kString:
      return JsType::kString;
    default:
      return JsType::kObject;
  }
}

const void* Identity(const Value& v) {
  if (v.array) return v.array.get();
  if (v.object) return v.object.get();
  return v.fn.get();
}

bool SameTypeEquals(const Value& a, const Value& b, JsType t) {
  switch (t) {
    case JsType::kUndefined:
    case JsType::kNull:
      return true;
    case JsType::kBool:
      return a.boolean == b.boolean;
    case JsType::kNumber:
      return a.number == b.number;
    case JsType::kString:
      return a.str == b.str;
    case JsType::kObject:
      return Identity(a) == Identity(b);
  }
  return false;
}

}  // namespace

bool LooseEquals(const Value& a, const Value& b) {
  const JsType ta = JsTypeOf(a), tb = JsTypeOf(b);
  if (ta == tb) return SameTypeEquals(a, b, ta);
  const auto nullish = [](JsType t) { return t == JsType::kUndefined || t == JsType::kNull; };
  if (nullish(ta) || nullish(tb)) return nullish(ta) && nullish(tb);
  if (ta == JsType::kNumber && tb == JsType::kString) return a.number == JsStringToNumber(b.str);
  if (ta == JsType::kString && tb == JsType::kNumber) return JsStringToNumber(a.str) == b.number;
  if (ta == JsType::kBool) return LooseEquals(Value::Int(a.boolean ? 1 : 0), b);
  if (tb == JsType::kBool) return LooseEquals(a, Value::Int(b.boolean ? 1 : 0));
  if (ta == JsType::kObject) return LooseEquals(Value::String(ToJsString(a)), b);
  if (tb == JsType::kObject) return LooseEquals(a, Value::String(ToJsString(b)));
  return false;
}

bool StrictEquals(const Value& a, const Value& b) {
  const JsType t = JsTypeOf(a);
  return t == JsTypeOf(b) && SameTypeEquals(a, b, t);
}

bool SameValueZero(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number() && std::isnan(a.number) && std::isnan(b.number)) return true;
  return StrictEquals(a, b);
}

namespace {

// A canonical array index ("0", "17"; not "01" or "4294967295").
bool IsArrayIndex(const std::string& key) {
  if (key.empty() || key.size() > 10) return false;
  if (key.size() > 1 && key[0] == '0') return false;
  uint64_t n = 0;
  for (char c : key) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  return n < 4294967295ull;
}

}  // namespace

Value FromJson(const nlohmann::ordered_json& j, int depth) {
  if (depth > kMaxValueDepth) FailLimit("JSON value nested too deeply");
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null:
      return Value::Null();
    case nlohmann::ordered_json::value_t::boolean:
      return Value::Bool(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
      return Value::Int(static_cast<double>(j.get<int64_t>()));
    case nlohmann::ordered_json::value_t::number_unsigned:
      return Value::Int(static_cast<double>(j.get<uint64_t>()));
    case nlohmann::ordered_json::value_t::number_float: {
      const double d = j.get<double>();
      return std::isfinite(d) && std::floor(d) == d ? Value::Int(d) : Value::Float(d);
    }
    case nlohmann::ordered_json::value_t::string:
      return Value::String(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(FromJson(e, depth + 1));
      return Value::Array(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      auto data = std::make_shared<ObjectData>();
      std::vector<std::pair<uint64_t, const std::string*>> indices;
      for (const auto& [key, value] : j.items()) {
        if (IsArrayIndex(key)) indices.emplace_back(std::stoull(key), &key);
      }
      std::sort(indices.begin(), indices.end());
      for (const auto& [n, key] : indices) data->Set(*key, FromJson(j.at(*key), depth + 1));
      for (const auto& [key, value] : j.items()) {
        if (!IsArrayIndex(key)) data->Set(key, FromJson(value, depth + 1));
      }
      return Value::Object(std::move(data));
    }
    default:
      Fail("unsupported JSON value");
  }
}

namespace {

bool IsJsSpace(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000 || cp == 0xFEFF;
}

}  // namespace

size_t JsSpaceLenAt(std::string_view s, size_t i) {
  if (i >= s.size()) return 0;
  uint32_t cp;
  const size_t len = Utf8Next(s, i, &cp);
  return IsJsSpace(cp) ? len : 0;
}

size_t JsSpaceLenBefore(std::string_view s, size_t end) {
  if (end == 0) return 0;
  size_t start = end - 1;
  while (start > 0 && end - start < 4 && (static_cast<uint8_t>(s[start]) & 0xC0) == 0x80) --start;
  uint32_t cp;
  const size_t len = Utf8Next(s, start, &cp);
  if (start + len != end) return 0;
  return IsJsSpace(cp) ? len : 0;
}

std::string_view JsTrimStart(std::string_view s) {
  size_t i = 0;
  while (size_t len = JsSpaceLenAt(s, i)) i += len;
  return s.substr(i);
}

std::string_view JsTrimEnd(std::string_view s) {
  size_t end = s.size();
  while (size_t len = JsSpaceLenBefore(s, end)) end -= len;
  return s.substr(0, end);
}

std::string_view JsTrim(std::string_view s) { return JsTrimEnd(JsTrimStart(s)); }

size_t Utf16Length(std::string_view s) {
  size_t n = 0;
  for (size_t i = 0; i < s.size();) {
    uint32_t cp;
    i += Utf8Next(s, i, &cp);
    n += cp >= 0x10000 ? 2 : 1;
  }
  return n;
}

namespace {

// The 3-byte form of a surrogate: ED A0..BF xx (high: A0..AF, low: B0..BF).
bool SurrogateAt(std::string_view s, size_t i, bool high) {
  if (i + 3 > s.size() || static_cast<uint8_t>(s[i]) != 0xED) return false;
  const uint8_t b = static_cast<uint8_t>(s[i + 1]);
  return high ? (b >= 0xA0 && b <= 0xAF) : (b >= 0xB0 && b <= 0xBF);
}

}  // namespace

void AppendJs(std::string* out, std::string_view s) {
  if (out->size() >= 3 && !s.empty() && SurrogateAt(*out, out->size() - 3, true) &&
      SurrogateAt(s, 0, false)) {
    uint32_t hi, lo;
    Utf8Next(*out, out->size() - 3, &hi);
    Utf8Next(s, 0, &lo);
    out->resize(out->size() - 3);
    AppendUtf8(out, 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00));
    s.remove_prefix(3);
  }
  out->append(s);
}

std::string WellFormed(std::string s) {
  if (s.find('\xED') == std::string::npos) return s;
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    if (SurrogateAt(s, i, true) || SurrogateAt(s, i, false)) {
      out += "\xEF\xBF\xBD";
      i += 3;
    } else {
      out += s[i++];
    }
  }
  return out;
}

namespace {

locale_t Utf8Locale() {
  static const locale_t loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(nullptr));
  return loc;
}

uint32_t MapCase(uint32_t cp, bool upper) {
  if (cp < 0x80) {
    if (upper && cp >= 'a' && cp <= 'z') return cp - 32;
    if (!upper && cp >= 'A' && cp <= 'Z') return cp + 32;
    return cp;
  }
  const locale_t loc = Utf8Locale();
  if (loc == static_cast<locale_t>(nullptr)) return cp;
  return static_cast<uint32_t>(upper ? towupper_l(static_cast<wint_t>(cp), loc)
                                     : towlower_l(static_cast<wint_t>(cp), loc));
}

bool IsCasedLetter(uint32_t cp) {
  const locale_t loc = Utf8Locale();
  if (cp < 0x80 || loc == static_cast<locale_t>(nullptr))
    return std::isalpha(static_cast<int>(cp & 0x7F)) && cp < 0x80;
  return iswalpha_l(static_cast<wint_t>(cp), loc) &&
         (towupper_l(static_cast<wint_t>(cp), loc) != static_cast<wint_t>(cp) ||
          towlower_l(static_cast<wint_t>(cp), loc) != static_cast<wint_t>(cp));
}

}  // namespace

std::string JsToUpper(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    uint32_t cp;
    const size_t len = Utf8Next(s, i, &cp);
    switch (cp) {
      case 0xDF:
        out += "SS";
        break;
      case 0x149:
        out += "\xCA\xBCN";
        break;
      case 0x1F0:
        out += "J\xCC\x8C";
        break;
      case 0xFB00:
        out += "FF";
        break;
      case 0xFB01:
        out += "FI";
        break;
      case 0xFB02:
        out += "FL";
        break;
      case 0xFB03:
        out += "FFI";
        break;
      case 0xFB04:
        out += "FFL";
        break;
      case 0xFB05:
      case 0xFB06:
        out += "ST";
        break;
      default:
        if (cp == 0xFFFD && len == 1) {
          out.append(s.substr(i, 1));
        } else {
          AppendUtf8(&out, MapCase(cp, true));
        }
    }
    i += len;
  }
  return out;
}

std::string JsToLower(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  uint32_t prev = 0;
  for (size_t i = 0; i < s.size();) {
    uint32_t cp;
    const size_t len = Utf8Next(s, i, &cp);
    if (cp == 0x130) {
      out += "i\xCC\x87";
    } else if (cp == 0x3A3) {
      // Final sigma: after a letter and not before one.
      uint32_t next = 0;
      if (i + len < s.size()) Utf8Next(s, i + len, &next);
      const bool final = prev != 0 && IsCasedLetter(prev) && !(next != 0 && IsCasedLetter(next));
      AppendUtf8(&out, final ? 0x3C2 : 0x3C3);
    } else if (cp == 0xFFFD && len == 1) {
      out.append(s.substr(i, 1));
    } else {
      AppendUtf8(&out, MapCase(cp, false));
    }
    prev = cp;
    i += len;
  }
  return out;
}

std::vector<std::string> CodePoints(std::string_view s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    uint32_t cp;
    const size_t len = Utf8Next(s, i, &cp);
    out.emplace_back(s.substr(i, len));
    i += len;
  }
  return out;
}

namespace {

// Length of the longest StrDecimalLiteral prefix of s ([+-] digits [. digits]
// [e[+-]digits] or Infinity); 0 if none.
size_t DecimalPrefix(std::string_view s) {
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  if (s.substr(i, 8) == "Infinity") return i + 8;
  const size_t digits_start = i;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
  size_t n_digits = i - digits_start;
  if (i < s.size() && s[i] == '.') {
    size_t j = i + 1;
    while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
    n_digits += j - i - 1;
    if (n_digits > 0) i = j;
  }
  if (n_digits == 0) return 0;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    size_t j = i + 1;
    if (j < s.size() && (s[j] == '+' || s[j] == '-')) ++j;
    const size_t exp_start = j;
    while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
    if (j > exp_start) i = j;
  }
  return i;
}

double ParseDecimal(std::string_view s) {
  std::string t(s);
  const bool neg = !t.empty() && t[0] == '-';
  const std::string_view body =
      std::string_view(t).substr(!t.empty() && (t[0] == '+' || t[0] == '-'));
  if (body == "Infinity") return neg ? -INFINITY : INFINITY;
  return std::strtod(t.c_str(), nullptr);
}

}  // namespace

double JsStringToNumber(std::string_view s) {
  s = JsTrim(s);
  if (s.empty()) return 0;
  if (s.size() > 2 && s[0] == '0' && std::strchr("xXoObB", s[1]) != nullptr) {
    const int base = (s[1] == 'x' || s[1] == 'X') ? 16 : (s[1] == 'o' || s[1] == 'O') ? 8 : 2;
    double n = 0;
    for (char c : s.substr(2)) {
      int d = std::isdigit(static_cast<unsigned char>(c))   ? c - '0'
              : std::isalpha(static_cast<unsigned char>(c)) ? std::tolower(c) - 'a' + 10
                                                            : 99;
      if (d >= base) return NAN;
      n = n * base + d;
    }
    return n;
  }
  const size_t len = DecimalPrefix(s);
  if (len != s.size()) return NAN;
  return ParseDecimal(s);
}

double JsParseInt(std::string_view s) {
  s = JsTrimStart(s);
  size_t i = 0;
  bool neg = false;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
  const size_t start = i;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
  if (i == start) return NAN;
  const double v = std::strtod(std::string(s.substr(start, i - start)).c_str(), nullptr);
  return neg ? -v : v;
}

double JsParseFloat(std::string_view s) {
  s = JsTrimStart(s);
  const size_t len = DecimalPrefix(s);
  if (len == 0) return NAN;
  return ParseDecimal(s.substr(0, len));
}

}  // namespace qatk::chat::jinja
