// The Jinja subset chat templates use, rendering byte-for-byte like
// @huggingface/jinja 0.5.x, the engine transformers.js applies chat templates
// with (Template(source) tokenizes with lstrip_blocks and trim_blocks on).
//
// Supported: text, {# #} comments, {{ }} output, whitespace control ({%- -%},
// {{- -}}, {#- -#}), {% set %} (plain, tuple, namespace attribute, block
// form), {% if/elif/else %}, {% for %} (tuple targets, inline `if` filter,
// `else`, loop.index/index0/revindex/revindex0/first/last/length/previtem/
// nextitem, break/continue), {% macro %} with defaults (kwargs/varargs), and
// the transformers {% generation %} tag (dropped). Expressions: literals
// (numbers, strings, lists, tuples, dicts), attribute/subscript/slice access,
// calls with keyword arguments, unary/binary operators (and or not in `not in`
// == != < > <= >= + - * / // % ** ~), `x if c else y`, tests (defined,
// undefined, none, string, number, integer, boolean, iterable, mapping,
// sequence, callable, true, false, odd, even, lower, upper), filters (trim,
// tojson with indent/ensure_ascii/sort_keys/separators, length, list, items,
// first, last, reverse, sort, join, unique, string, int, float, abs, upper,
// lower, title, capitalize, indent, replace, default, safe, selectattr,
// rejectattr, map(attribute=...), dictsort, keys/values/get), string methods
// (startswith, endswith, split, strip, lstrip, rstrip, upper, lower, title,
// capitalize, replace), mapping methods (get, items, keys, values) and the
// globals raise_exception, namespace, range, strftime_now, true/false/none.
//
// Where the reference departs from Python Jinja this follows the reference:
// strip/lstrip/rstrip ignore their argument and trim JavaScript whitespace,
// undefined attributes of anything are undefined (never an error), `==` is
// JavaScript's loose equality, variables set in a loop body persist across
// its iterations, none prints as "undefined" inside a list joined into a
// string, string length/indexing count UTF-16 units.
//
// Not supported (parse errors naming the line and column; the reference has
// them, the Llama 3, Qwen3 and Gemma 3 templates do not use them): {% call %}
// and {% filter %} blocks, `*`/`**` argument unpacking. Known differences: printing a
// function is an error (the reference prints JavaScript source); `**` with a
// non-integral result may differ from V8 in the last digit;
// tojson(sort_keys=true) approximates localeCompare (ASCII case-insensitive,
// lower case first); `first`/`last` of an empty list is an error unless
// assigned directly with set (the reference yields a raw JavaScript
// undefined that fails wherever else it is used).
//
// A parsed template is immutable; Render may run concurrently.
#ifndef QATK_FORMATS_CHAT_JINJA_H_
#define QATK_FORMATS_CHAT_JINJA_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace qatk::chat {

// Bounds on the work one render may do; hostile templates hit them and
// fail with kResourceExhausted instead of hanging or exhausting the stack.
struct JinjaLimits {
  int64_t max_steps = 2'000'000;       // evaluated nodes + loop iterations
  int max_depth = 200;                 // syntax nesting and call recursion
  size_t max_string_bytes = 64 << 20;  // any string, the output included
  size_t max_array_size = 1 << 20;     // range() and list concatenation
};

class JinjaTemplate {
 public:
  // Syntax errors are kInvalidArgument with "line L, column C" in the message.
  static absl::StatusOr<JinjaTemplate> Parse(std::string_view source,
                                             const JinjaLimits& limits = {});

  // `context` is a JSON object; each key becomes a global variable (a key
  // that names a builtin global such as `range` or `true` is an error, as in
  // the reference). Errors (raise_exception, type errors) are
  // kInvalidArgument naming the line and column; exceeded limits are
  // kResourceExhausted.
  absl::StatusOr<std::string> Render(const nlohmann::ordered_json& context) const;

  struct Program;

 private:
  std::shared_ptr<const Program> program_;
};

}  // namespace qatk::chat

#endif  // QATK_FORMATS_CHAT_JINJA_H_
