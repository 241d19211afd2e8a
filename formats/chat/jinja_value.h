// Runtime values of the chat-template engine (formats/chat/jinja.h).
//
// The engine renders like @huggingface/jinja, the engine transformers.js
// applies chat templates with, so values follow JavaScript where that engine
// leaks it: numbers are doubles tagged integer or float, `==` is JavaScript's
// loose equality, string length and indexing count UTF-16 units, trim/strip
// use JavaScript's whitespace set, tojson is JSON.stringify with Python's
// separators. Arrays and mappings are shared (identity matters for `==`);
// only namespaces are mutable.
//
// Errors inside the engine are thrown as jinja::Error and turned into an
// absl::Status at the public boundary (jinja.cc): every evaluation step can
// fail, and the reference engine's control flow (break/continue discarding a
// partial block) maps onto exceptions directly.
#ifndef QATK_FORMATS_CHAT_JINJA_VALUE_H_
#define QATK_FORMATS_CHAT_JINJA_VALUE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "nlohmann/json.hpp"

namespace qatk::chat::jinja {

// A template error; line/column (1-based, 0 = unknown) point into the source.
struct Error {
  std::string message;
  int line = 0;
  int column = 0;
  bool limit_exceeded = false;  // a JinjaLimits bound, not a template error
};
[[noreturn]] void Fail(std::string message);
[[noreturn]] void FailLimit(std::string message);

// Containers nested deeper than this are an error (also bounds the recursion
// of serialisation and destruction).
inline constexpr int kMaxValueDepth = 512;

enum class Kind : uint8_t {
  kUndefined,
  kNull,
  kBool,
  kInt,  // a double with an integral value (JavaScript number)
  kFloat,
  kString,
  kArray,
  kTuple,  // an array that tojson / printing reject, as the reference does
  kObject,
  kKwargs,  // keyword arguments passed to a call (an object)
  kNamespace,
  kFunction,
};

class Value;
struct Env;
struct ArrayData {
  std::vector<Value> items;
  int depth = 1;
};
struct ObjectData;
using NativeFn = std::function<Value(std::vector<Value>& args, Env* caller)>;

class Value {
 public:
  Kind kind = Kind::kUndefined;
  bool boolean = false;
  double number = 0;
  std::string str;
  std::shared_ptr<ArrayData> array;
  std::shared_ptr<ObjectData> object;
  std::shared_ptr<NativeFn> fn;

  static Value Undefined() { return Value(); }
  static Value Null();
  static Value Bool(bool b);
  static Value Int(double d);
  static Value Float(double d);
  static Value String(std::string s);
  // Fails if the nesting exceeds kMaxValueDepth.
  static Value Array(std::vector<Value> items, Kind kind = Kind::kArray);
  static Value Object(std::shared_ptr<ObjectData> data, Kind kind = Kind::kObject);
  static Value Function(NativeFn f);

  bool is_undefined() const { return kind == Kind::kUndefined; }
  bool is_null() const { return kind == Kind::kNull; }
  bool is_string() const { return kind == Kind::kString; }
  bool is_number() const { return kind == Kind::kInt || kind == Kind::kFloat; }
  // `instanceof ArrayValue` (tuples included) / `instanceof ObjectValue`
  // (keyword arguments included; namespaces are not).
  bool is_array() const { return kind == Kind::kArray || kind == Kind::kTuple; }
  bool is_object() const { return kind == Kind::kObject || kind == Kind::kKwargs; }
  bool is_attr_container() const { return is_object() || kind == Kind::kNamespace; }
  int depth() const;
  const char* TypeName() const;
};

// An insertion-ordered string map (JavaScript Map). Small maps (messages,
// loop state) are searched linearly; `index` is built from kIndexThreshold
// entries on.
struct ObjectData {
  static constexpr size_t kIndexThreshold = 16;
  std::vector<std::pair<std::string, Value>> entries;
  std::unordered_map<std::string, size_t> index;
  int depth = 1;

  const Value* Find(const std::string& key) const;
  void Set(const std::string& key, Value v);
  size_t size() const { return entries.size(); }
};

// __bool__ of the reference: empty arrays/objects are false, namespaces true.
bool Truthy(const Value& v);
// JavaScript truthiness of the raw value (any array/object is true).
bool RawTruthy(const Value& v);
// RuntimeValue.toString(): what `{{ v }}` prints (floats keep ".0", arrays
// and objects print as JSON).
std::string ToOutputString(const Value& v);
// String(v.value): what `+` and `~` concatenate (floats lose ".0", arrays
// join their elements' output strings with ",", objects "[object Map]").
std::string ToJsString(const Value& v);
// Number.prototype.toString() of a double.
std::string JsNumberToString(double x);

struct JsonOptions {
  int indent = 0;  // 0: single line
  bool ensure_ascii = false;
  bool sort_keys = false;
  std::optional<std::pair<std::string, std::string>> separators;
};
std::string ToJson(const Value& v, const JsonOptions& options, int depth, bool undefined_to_null);
// JSON.stringify of a string.
std::string JsonQuote(std::string_view s, bool ensure_ascii = false);

bool LooseEquals(const Value& a, const Value& b);    // JavaScript ==
bool StrictEquals(const Value& a, const Value& b);   // JavaScript ===
bool SameValueZero(const Value& a, const Value& b);  // Set membership

// convertToRuntimeValues(JSON.parse(...)): integral numbers become integers,
// object keys that are array indices come first (JavaScript property order).
Value FromJson(const nlohmann::ordered_json& j, int depth = 0);

// JavaScript whitespace (String.prototype.trim, /\s/).
size_t JsSpaceLenAt(std::string_view s, size_t i);
size_t JsSpaceLenBefore(std::string_view s, size_t end);
std::string_view JsTrimStart(std::string_view s);
std::string_view JsTrimEnd(std::string_view s);
std::string_view JsTrim(std::string_view s);
// UTF-8 helpers. Invalid bytes decode as U+FFFD, one byte each.
size_t Utf8Next(std::string_view s, size_t i, uint32_t* cp);
void AppendUtf8(std::string* out, uint32_t cp);
size_t Utf16Length(std::string_view s);
// Strings are UTF-8, except that a lone UTF-16 surrogate (from indexing
// into an astral character, or a "\ud83d" escape) is kept as its 3-byte
// generalized UTF-8 form, so that string operations see what JavaScript
// sees. AppendJs joins a high and a low surrogate that meet into the real
// character; WellFormed turns the remaining ones into U+FFFD (as writing the
// JavaScript string out as UTF-8 does).
void AppendJs(std::string* out, std::string_view s);
std::string WellFormed(std::string s);
// String.prototype.toUpperCase / toLowerCase: Unicode simple case mapping
// (glibc's C.UTF-8 tables; ASCII only where that locale is missing) plus the
// common special cases (ß -> SS, ligatures, İ -> i̇, final sigma).
std::string JsToUpper(std::string_view s);
std::string JsToLower(std::string_view s);
std::vector<std::string> CodePoints(std::string_view s);
// StringToNumber / parseInt(s, 10) / parseFloat(s); NaN when not a number.
double JsStringToNumber(std::string_view s);
double JsParseInt(std::string_view s);
double JsParseFloat(std::string_view s);

}  // namespace qatk::chat::jinja

#endif  // QATK_FORMATS_CHAT_JINJA_VALUE_H_
