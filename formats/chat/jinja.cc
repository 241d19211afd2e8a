#include "formats/chat/jinja.h"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "formats/chat/jinja_value.h"

namespace qatk::chat {
namespace jinja {
namespace {

// ---------------------------------------------------------------------------
// Source preprocessing (lstrip_blocks, trim_blocks, the generation tag), with
// a map from each preprocessed byte back to its offset in the template.

struct Source {
  std::string text;
  std::vector<size_t> orig;  // orig[i]: offset of text[i]; orig[size] = end

  void Push(char c, size_t offset) {
    text += c;
    orig.push_back(offset);
  }
  size_t End() const { return orig.back(); }
};

Source Preprocess(std::string_view tmpl) {
  Source s;
  for (size_t i = 0; i < tmpl.size(); ++i) s.Push(tmpl[i], i);
  s.orig.push_back(tmpl.size());
  // A single trailing newline is dropped.
  if (!s.text.empty() && s.text.back() == '\n') {
    s.text.pop_back();
    s.orig.erase(s.orig.end() - 2);
  }
  // lstrip_blocks: /^[ \t]*({[#%-])/gm -> "$1".
  {
    Source out;
    const std::string& t = s.text;
    for (size_t i = 0; i < t.size();) {
      const bool line_start = i == 0 || t[i - 1] == '\n' || t[i - 1] == '\r' ||
                              (i >= 3 && t.compare(i - 3, 2, "\xE2\x80") == 0 &&
                               (t[i - 1] == '\xA8' || t[i - 1] == '\xA9'));
      if (line_start) {
        size_t j = i;
        while (j < t.size() && (t[j] == ' ' || t[j] == '\t')) ++j;
        if (j + 1 < t.size() && t[j] == '{' &&
            (t[j + 1] == '#' || t[j + 1] == '%' || t[j + 1] == '-')) {
          i = j;
        }
      }
      out.Push(t[i], s.orig[i]);
      ++i;
    }
    out.orig.push_back(s.End());
    s = std::move(out);
  }
  // trim_blocks: /([#%-]})\n/g -> "$1".
  {
    Source out;
    const std::string& t = s.text;
    for (size_t i = 0; i < t.size();) {
      if (i + 2 < t.size() && (t[i] == '#' || t[i] == '%' || t[i] == '-') && t[i + 1] == '}' &&
          t[i + 2] == '\n') {
        out.Push(t[i], s.orig[i]);
        out.Push(t[i + 1], s.orig[i + 1]);
        i += 3;
        continue;
      }
      out.Push(t[i], s.orig[i]);
      ++i;
    }
    out.orig.push_back(s.End());
    s = std::move(out);
  }
  // /(\s*){%(-?)\s*(?:end)?generation\s*(-?)%}(\s*)/gs: the tag goes, and
  // the whitespace around it unless the tag has '-' on that side.
  {
    const std::string& t = s.text;
    Source out;
    size_t copied = 0;
    for (size_t p = t.find("{%"); p != std::string::npos; p = t.find("{%", p + 1)) {
      if (p < copied) continue;
      size_t q = p + 2;
      const bool lstrip = q < t.size() && t[q] == '-';
      if (lstrip) ++q;
      while (size_t len = JsSpaceLenAt(t, q)) q += len;
      if (t.compare(q, 3, "end") == 0 && t.compare(q + 3, 10, "generation") == 0) q += 3;
      if (t.compare(q, 10, "generation") != 0) continue;
      q += 10;
      while (size_t len = JsSpaceLenAt(t, q)) q += len;
      const bool rstrip = q < t.size() && t[q] == '-';
      if (rstrip) ++q;
      if (t.compare(q, 2, "%}") != 0) continue;
      q += 2;
      size_t before = p;
      while (before > copied) {
        const size_t len = JsSpaceLenBefore(std::string_view(t).substr(0, before), before);
        if (len == 0 || before - len < copied) break;
        before -= len;
      }
      size_t after = q;
      while (size_t len = JsSpaceLenAt(t, after)) after += len;
      for (size_t i = copied; i < before; ++i) out.Push(t[i], s.orig[i]);
      if (!lstrip) {
        for (size_t i = before; i < p; ++i) out.Push(t[i], s.orig[i]);
      }
      if (!rstrip) {
        for (size_t i = q; i < after; ++i) out.Push(t[i], s.orig[i]);
      }
      copied = after;
      p = after - 1;
    }
    if (copied > 0) {
      for (size_t i = copied; i < t.size(); ++i) out.Push(t[i], s.orig[i]);
      out.orig.push_back(s.End());
      s = std::move(out);
    }
  }
  return s;
}

// Maps a template offset to a 1-based line and column (in code points).
class LineMap {
 public:
  explicit LineMap(std::string_view src) : src_(src) {
    starts_.push_back(0);
    for (size_t i = 0; i < src.size(); ++i) {
      if (src[i] == '\n') starts_.push_back(i + 1);
    }
  }
  void Locate(size_t offset, int* line, int* column) const {
    offset = std::min(offset, src_.size());
    const size_t idx =
        std::upper_bound(starts_.begin(), starts_.end(), offset) - starts_.begin() - 1;
    *line = static_cast<int>(idx + 1);
    int col = 1;
    for (size_t i = starts_[idx]; i < offset;) {
      uint32_t cp;
      i += Utf8Next(src_, i, &cp);
      ++col;
    }
    *column = col;
  }

 private:
  std::string_view src_;
  std::vector<size_t> starts_;
};

// Errors raised before evaluation carry a template offset.
struct SyntaxError {
  std::string message;
  size_t offset;
  bool limit_exceeded = false;
};

// ---------------------------------------------------------------------------
// Lexer (a port of @huggingface/jinja's tokenize).

enum class Tok {
  kText,
  kNumber,
  kString,
  kIdent,
  kEquals,
  kOpenParen,
  kCloseParen,
  kOpenStatement,
  kCloseStatement,
  kOpenExpression,
  kCloseExpression,
  kOpenBracket,
  kCloseBracket,
  kOpenCurly,
  kCloseCurly,
  kComma,
  kDot,
  kColon,
  kPipe,
  kAdditive,
  kMultiplicative,
  kPower,
  kComparison,
  kUnary,
  kComment,
};

struct Token {
  Tok type;
  std::string value;
  size_t offset;  // in the original template
};

bool IsWordChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

std::vector<Token> Tokenize(const Source& src) {
  const std::string& s = src.text;
  const size_t n = s.size();
  std::vector<Token> tokens;
  size_t pos = 0;
  int curly_depth = 0;
  const auto fail = [&](std::string msg, size_t at) -> void {
    throw SyntaxError{std::move(msg), src.orig[std::min(at, n)]};
  };
  const auto push = [&](Tok type, std::string value, size_t at) {
    tokens.push_back(Token{type, std::move(value), src.orig[std::min(at, n)]});
  };
  // consumeWhile, with the string escapes of the reference.
  const auto consume_while = [&](auto pred) {
    std::string out;
    uint32_t pending_high = 0;
    const auto flush_high = [&] {
      if (pending_high != 0) AppendUtf8(&out, pending_high);
      pending_high = 0;
    };
    while (pos < n && pred(s[pos])) {
      if (s[pos] == '\\') {
        const size_t at = pos;
        ++pos;
        if (pos >= n) fail("unexpected end of input", at);
        const char esc = s[pos++];
        if (esc == 'x' || esc == 'u') {
          const size_t len = esc == 'x' ? 2 : 4;
          if (pos + len > n) fail("invalid escape sequence", at);
          uint32_t unit = 0;
          for (size_t k = 0; k < len; ++k) {
            const char h = s[pos + k];
            if (!std::isxdigit(static_cast<unsigned char>(h))) fail("invalid escape sequence", at);
            unit = unit * 16 + (IsDigit(h) ? h - '0' : std::tolower(h) - 'a' + 10);
          }
          pos += len;
          if (unit >= 0xDC00 && unit <= 0xDFFF && pending_high != 0) {
            AppendUtf8(&out, 0x10000 + ((pending_high - 0xD800) << 10) + (unit - 0xDC00));
            pending_high = 0;
          } else {
            flush_high();
            if (unit >= 0xD800 && unit <= 0xDBFF) {
              pending_high = unit;
            } else {
              AppendUtf8(&out, unit);
            }
          }
          continue;
        }
        flush_high();
        switch (esc) {
          case 'n':
            out += '\n';
            break;
          case 't':
            out += '\t';
            break;
          case 'r':
            out += '\r';
            break;
          case 'b':
            out += '\b';
            break;
          case 'f':
            out += '\f';
            break;
          case 'v':
            out += '\v';
            break;
          case '\'':
            out += '\'';
            break;
          case '"':
            out += '"';
            break;
          case '\\':
            out += '\\';
            break;
          default:
            fail(std::string("unexpected escaped character: ") + esc, at);
        }
        continue;
      }
      flush_high();
      out += s[pos++];
      if (pos >= n) fail("unexpected end of input", pos);
    }
    flush_high();
    return out;
  };
  const auto strip_trailing_ws = [&] {
    if (!tokens.empty() && tokens.back().type == Tok::kText) {
      tokens.back().value = std::string(JsTrimEnd(tokens.back().value));
      if (tokens.back().value.empty()) tokens.pop_back();
    }
  };
  const auto skip_leading_ws = [&] {
    while (size_t len = JsSpaceLenAt(s, pos)) pos += len;
  };
  static const std::pair<const char*, Tok> kTable[] = {
      {"{%", Tok::kOpenStatement},  {"%}", Tok::kCloseStatement},
      {"{{", Tok::kOpenExpression}, {"}}", Tok::kCloseExpression},
      {"(", Tok::kOpenParen},       {")", Tok::kCloseParen},
      {"{", Tok::kOpenCurly},       {"}", Tok::kCloseCurly},
      {"[", Tok::kOpenBracket},     {"]", Tok::kCloseBracket},
      {",", Tok::kComma},           {".", Tok::kDot},
      {":", Tok::kColon},           {"|", Tok::kPipe},
      {"<=", Tok::kComparison},     {">=", Tok::kComparison},
      {"==", Tok::kComparison},     {"!=", Tok::kComparison},
      {"<", Tok::kComparison},      {">", Tok::kComparison},
      {"+", Tok::kAdditive},        {"-", Tok::kAdditive},
      {"~", Tok::kAdditive},        {"**", Tok::kPower},
      {"*", Tok::kMultiplicative},  {"//", Tok::kMultiplicative},
      {"/", Tok::kMultiplicative},  {"%", Tok::kMultiplicative},
      {"=", Tok::kEquals},
  };

  while (pos < n) {
    const Tok* last = tokens.empty() ? nullptr : &tokens.back().type;
    if (last == nullptr || *last == Tok::kCloseStatement || *last == Tok::kCloseExpression ||
        *last == Tok::kComment) {
      const size_t start = pos;
      while (pos < n && !(s[pos] == '{' && pos + 1 < n &&
                          (s[pos + 1] == '%' || s[pos + 1] == '{' || s[pos + 1] == '#'))) {
        ++pos;
      }
      if (pos > start) {
        push(Tok::kText, s.substr(start, pos - start), start);
        continue;
      }
    }
    if (s.compare(pos, 2, "{#") == 0) {
      const size_t start = pos;
      pos += 2;
      const bool strip_before = pos < n && s[pos] == '-';
      if (strip_before) ++pos;
      std::string comment;
      while (!(pos + 1 < n && s[pos] == '#' && s[pos + 1] == '}')) {
        if (pos + 2 >= n) fail("missing end of comment tag", start);
        comment += s[pos++];
      }
      const bool strip_after = !comment.empty() && comment.back() == '-';
      if (strip_after) comment.pop_back();
      if (strip_before) strip_trailing_ws();
      push(Tok::kComment, comment, start);
      pos += 2;
      if (strip_after) skip_leading_ws();
      continue;
    }
    if (s.compare(pos, 3, "{%-") == 0) {
      strip_trailing_ws();
      push(Tok::kOpenStatement, "{%", pos);
      pos += 3;
      continue;
    }
    if (s.compare(pos, 3, "{{-") == 0) {
      strip_trailing_ws();
      push(Tok::kOpenExpression, "{{", pos);
      curly_depth = 0;
      pos += 3;
      continue;
    }
    consume_while([](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); });
    // Non-ASCII whitespace inside a tag (consumeWhile(/\s/)).
    while (size_t len = JsSpaceLenAt(s, pos)) {
      pos += len;
      if (pos >= n) fail("unexpected end of input", pos);
      consume_while([](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); });
    }
    if (s.compare(pos, 3, "-%}") == 0) {
      push(Tok::kCloseStatement, "%}", pos);
      pos += 3;
      skip_leading_ws();
      continue;
    }
    if (s.compare(pos, 3, "-}}") == 0) {
      push(Tok::kCloseExpression, "}}", pos);
      pos += 3;
      skip_leading_ws();
      continue;
    }
    const char c = s[pos];
    if (c == '-' || c == '+') {
      const Tok* prev = tokens.empty() ? nullptr : &tokens.back().type;
      if (prev == nullptr || *prev == Tok::kText)
        fail(std::string("unexpected character: ") + c, pos);
      switch (*prev) {
        case Tok::kIdent:
        case Tok::kNumber:
        case Tok::kString:
        case Tok::kCloseParen:
        case Tok::kCloseBracket:
          break;
        default: {
          const size_t start = pos;
          ++pos;
          std::string num = consume_while(IsDigit);
          if (!num.empty() && pos + 1 < n && s[pos] == '.' && IsDigit(s[pos + 1])) {
            ++pos;
            num += "." + consume_while(IsDigit);
          }
          push(num.empty() ? Tok::kUnary : Tok::kNumber, std::string(1, c) + num, start);
          continue;
        }
      }
    }
    bool matched = false;
    for (const auto& [seq, type] : kTable) {
      if (type == Tok::kCloseExpression && curly_depth > 0) continue;
      const size_t len = std::char_traits<char>::length(seq);
      if (s.compare(pos, len, seq) == 0) {
        push(type, seq, pos);
        if (type == Tok::kOpenExpression) curly_depth = 0;
        if (type == Tok::kOpenCurly) ++curly_depth;
        if (type == Tok::kCloseCurly) --curly_depth;
        pos += len;
        matched = true;
        break;
      }
    }
    if (matched) continue;
    if (c == '\'' || c == '"') {
      const size_t start = pos;
      ++pos;
      if (pos >= n) fail("unexpected end of input in a string", start);
      std::string str = consume_while([c](char x) { return x != c; });
      push(Tok::kString, std::move(str), start);
      ++pos;
      continue;
    }
    if (IsDigit(c)) {
      const size_t start = pos;
      std::string num = consume_while(IsDigit);
      if (tokens.empty() || tokens.back().type != Tok::kDot) {
        if (pos + 1 < n && s[pos] == '.' && IsDigit(s[pos + 1])) {
          ++pos;
          num += "." + consume_while(IsDigit);
        }
      }
      push(Tok::kNumber, std::move(num), start);
      continue;
    }
    if (IsWordChar(c)) {
      const size_t start = pos;
      push(Tok::kIdent, consume_while(IsWordChar), start);
      continue;
    }
    fail(std::string("unexpected character: ") + c, pos);
  }
  return tokens;
}

// ---------------------------------------------------------------------------
// Syntax tree.

enum class NodeType {
  kText,
  kComment,
  kSet,
  kIf,
  kFor,
  kBreak,
  kContinue,
  kMacro,
  kIntLit,
  kFloatLit,
  kStringLit,
  kArrayLit,
  kTupleLit,
  kObjectLit,
  kIdentifier,
  kMember,
  kCall,
  kUnary,
  kBinary,
  kFilter,
  kTest,
  kSelect,
  kTernary,
  kSlice,
  kKwarg,
};

struct Node;
using NodePtr = std::unique_ptr<Node>;
using NodeList = std::vector<NodePtr>;

// One node shape for all: see the comment on each NodeType in Parser.
struct Node {
  NodeType type;
  size_t offset = 0;
  std::string name;  // identifier, operator, string value, test name
  double number = 0;
  bool flag = false;  // member: computed; test: negated
  NodePtr a, b, c;
  NodeList list, list2;
  int height = 1;
};

}  // namespace
}  // namespace jinja

struct JinjaTemplate::Program {
  std::string source;
  jinja::NodeList body;
  JinjaLimits limits;
};

namespace jinja {
namespace {

// A port of @huggingface/jinja's parse(). Node fields by type:
//   kText/kStringLit: name; kSet: a=target b=value|null list=body;
//   kIf: a=test list=body list2=else; kFor: a=target b=iterable list=body
//   list2=else; kMacro: name list=params list2=body; kArrayLit/kTupleLit:
//   list; kObjectLit: list=keys list2=values; kMember: a=object b=property
//   flag=computed; kCall: a=callee list=args; kUnary: name a; kBinary: name a
//   b; kFilter: a=operand b=filter (identifier or call); kTest: a name flag;
//   kSelect: a=value b=test; kTernary: a=test b=then c=else; kSlice: a b c
//   (each optional); kKwarg: name a.
class Parser {
 public:
  Parser(std::vector<Token> tokens, size_t end, const JinjaLimits& limits)
      : tokens_(std::move(tokens)), end_(end), limits_(limits) {}

  NodeList ParseProgram() {
    NodeList body;
    while (cur_ < tokens_.size()) body.push_back(ParseAny());
    return body;
  }

 private:
  struct DepthGuard {
    explicit DepthGuard(Parser* p) : p(p) {
      if (++p->depth_ > p->limits_.max_depth) {
        throw SyntaxError{"template nested too deeply", p->Offset(), true};
      }
    }
    ~DepthGuard() { --p->depth_; }
    Parser* p;
  };

  size_t Offset() const { return cur_ < tokens_.size() ? tokens_[cur_].offset : end_; }
  [[noreturn]] void Error(std::string msg) { throw SyntaxError{std::move(msg), Offset()}; }
  [[noreturn]] void ErrorAt(std::string msg, size_t offset) {
    throw SyntaxError{std::move(msg), offset};
  }

  NodePtr Make(NodeType type, size_t offset) {
    auto node = std::make_unique<Node>();
    node->type = type;
    node->offset = offset;
    return node;
  }
  // Bounds the tree height: evaluation and destruction recurse over it.
  NodePtr Finish(NodePtr node) {
    int h = 0;
    for (const NodePtr* child : {&node->a, &node->b, &node->c}) {
      if (*child) h = std::max(h, (*child)->height);
    }
    for (const NodeList* l : {&node->list, &node->list2}) {
      for (const NodePtr& child : *l) h = std::max(h, child->height);
    }
    node->height = h + 1;
    if (node->height > 2 * limits_.max_depth) {
      throw SyntaxError{"expression nested too deeply", node->offset, true};
    }
    return node;
  }

  const Token& Peek(size_t k = 0) {
    if (cur_ + k >= tokens_.size()) Error("unexpected end of template");
    return tokens_[cur_ + k];
  }
  bool Is(Tok type, size_t k = 0) const {
    return cur_ + k < tokens_.size() && tokens_[cur_ + k].type == type;
  }
  bool IsIdent(std::string_view name, size_t k = 0) const {
    return Is(Tok::kIdent, k) && tokens_[cur_ + k].value == name;
  }
  bool IsStatement(std::initializer_list<std::string_view> names) const {
    if (!Is(Tok::kOpenStatement) || !Is(Tok::kIdent, 1)) return false;
    for (std::string_view name : names) {
      if (tokens_[cur_ + 1].value == name) return true;
    }
    return false;
  }
  const Token& Expect(Tok type, const char* what) {
    if (cur_ >= tokens_.size()) Error(absl::StrCat("unexpected end of template: expected ", what));
    if (tokens_[cur_].type != type) Error(absl::StrCat("expected ", what));
    return tokens_[cur_++];
  }
  void ExpectIdent(std::string_view name) {
    if (!IsIdent(name)) Error(absl::StrCat("expected '", std::string(name), "'"));
    ++cur_;
  }
  // Statements until one of `names`; an unclosed block names its opening tag.
  NodeList ParseBody(std::initializer_list<std::string_view> names, const char* block,
                     size_t open) {
    NodeList body;
    while (!IsStatement(names)) {
      if (cur_ >= tokens_.size()) {
        ErrorAt(absl::StrCat("unclosed '", block, "' block (missing {% end", block, " %})"), open);
      }
      body.push_back(ParseAny());
    }
    return body;
  }

  NodePtr ParseAny() {
    DepthGuard guard(this);
    const Token& t = Peek();
    switch (t.type) {
      case Tok::kComment:
        ++cur_;
        return Finish(Make(NodeType::kComment, t.offset));
      case Tok::kText: {
        auto node = Make(NodeType::kText, t.offset);
        node->name = t.value;
        ++cur_;
        return Finish(std::move(node));
      }
      case Tok::kOpenStatement:
        return ParseStatement();
      case Tok::kOpenExpression: {
        ++cur_;
        NodePtr e = ParseExpression();
        Expect(Tok::kCloseExpression, "'}}'");
        return e;
      }
      default:
        Error("unexpected token");
    }
  }

  NodePtr ParseStatement() {
    const size_t open = Peek().offset;
    Expect(Tok::kOpenStatement, "'{%'");
    if (!Is(Tok::kIdent)) Error("expected a statement name");
    const std::string name = Peek().value;
    ++cur_;
    if (name == "set") return ParseSet(open);
    if (name == "if") {
      NodePtr node = ParseIf(open);
      Expect(Tok::kOpenStatement, "'{% endif %}'");
      ExpectIdent("endif");
      Expect(Tok::kCloseStatement, "'%}'");
      return node;
    }
    if (name == "for") {
      NodePtr node = ParseFor(open);
      Expect(Tok::kOpenStatement, "'{% endfor %}'");
      ExpectIdent("endfor");
      Expect(Tok::kCloseStatement, "'%}'");
      return node;
    }
    if (name == "macro") {
      NodePtr node = ParseMacro(open);
      Expect(Tok::kOpenStatement, "'{% endmacro %}'");
      ExpectIdent("endmacro");
      Expect(Tok::kCloseStatement, "'%}'");
      return node;
    }
    if (name == "break" || name == "continue") {
      Expect(Tok::kCloseStatement, "'%}'");
      return Finish(Make(name == "break" ? NodeType::kBreak : NodeType::kContinue, open));
    }
    if (name == "call" || name == "filter") {
      ErrorAt(absl::StrCat("unsupported statement '", name, "'"), open);
    }
    ErrorAt(absl::StrCat("unknown statement '", name, "'"), open);
  }

  NodePtr ParseSet(size_t open) {
    auto node = Make(NodeType::kSet, open);
    node->a = ParseExpressionSequence(false);
    if (Is(Tok::kEquals)) {
      ++cur_;
      node->b = ParseExpressionSequence(false);
    } else {
      Expect(Tok::kCloseStatement, "'%}'");
      node->list = ParseBody({"endset"}, "set", open);
      Expect(Tok::kOpenStatement, "'{%'");
      ExpectIdent("endset");
    }
    Expect(Tok::kCloseStatement, "'%}'");
    return Finish(std::move(node));
  }

  NodePtr ParseIf(size_t open) {
    DepthGuard guard(this);
    auto node = Make(NodeType::kIf, open);
    node->a = ParseExpression();
    Expect(Tok::kCloseStatement, "'%}'");
    node->list = ParseBody({"elif", "else", "endif"}, "if", open);
    if (IsStatement({"elif"})) {
      const size_t elif = Peek().offset;
      cur_ += 2;
      node->list2.push_back(ParseIf(elif));
    } else if (IsStatement({"else"})) {
      cur_ += 2;
      Expect(Tok::kCloseStatement, "'%}'");
      node->list2 = ParseBody({"endif"}, "if", open);
    }
    return Finish(std::move(node));
  }

  NodePtr ParseMacro(size_t open) {
    auto node = Make(NodeType::kMacro, open);
    NodePtr name = ParsePrimary();
    if (name->type != NodeType::kIdentifier) ErrorAt("expected a macro name", name->offset);
    node->name = name->name;
    node->list = ParseArgs(/*parameters=*/true);
    Expect(Tok::kCloseStatement, "'%}'");
    node->list2 = ParseBody({"endmacro"}, "macro", open);
    return Finish(std::move(node));
  }

  NodePtr ParseFor(size_t open) {
    auto node = Make(NodeType::kFor, open);
    node->a = ParseExpressionSequence(true);
    if (node->a->type != NodeType::kIdentifier && node->a->type != NodeType::kTupleLit) {
      ErrorAt("expected a loop variable or tuple", node->a->offset);
    }
    if (!IsIdent("in")) Error("expected 'in' after the loop variable");
    ++cur_;
    node->b = ParseExpression();
    Expect(Tok::kCloseStatement, "'%}'");
    node->list = ParseBody({"endfor", "else"}, "for", open);
    if (IsStatement({"else"})) {
      cur_ += 2;
      Expect(Tok::kCloseStatement, "'%}'");
      node->list2 = ParseBody({"endfor"}, "for", open);
    }
    return Finish(std::move(node));
  }

  NodePtr ParseExpressionSequence(bool primary) {
    const size_t offset = Offset();
    NodePtr first = primary ? ParsePrimary() : ParseExpression();
    if (!Is(Tok::kComma)) return first;
    auto tuple = Make(NodeType::kTupleLit, offset);
    tuple->list.push_back(std::move(first));
    while (Is(Tok::kComma)) {
      ++cur_;
      tuple->list.push_back(primary ? ParsePrimary() : ParseExpression());
    }
    return Finish(std::move(tuple));
  }

  NodePtr ParseExpression() {
    DepthGuard guard(this);
    return ParseIfExpression();
  }

  NodePtr ParseIfExpression() {
    NodePtr a = ParseOr();
    if (IsIdent("if")) {
      const size_t offset = Peek().offset;
      ++cur_;
      NodePtr test = ParseOr();
      if (IsIdent("else")) {
        ++cur_;
        DepthGuard guard(this);
        auto node = Make(NodeType::kTernary, offset);
        node->a = std::move(test);
        node->b = std::move(a);
        node->c = ParseIfExpression();
        return Finish(std::move(node));
      }
      auto node = Make(NodeType::kSelect, offset);
      node->a = std::move(a);
      node->b = std::move(test);
      return Finish(std::move(node));
    }
    return a;
  }

  NodePtr Binary(std::string op, size_t offset, NodePtr left, NodePtr right) {
    auto node = Make(NodeType::kBinary, offset);
    node->name = std::move(op);
    node->a = std::move(left);
    node->b = std::move(right);
    return Finish(std::move(node));
  }

  NodePtr ParseOr() {
    NodePtr left = ParseAnd();
    while (IsIdent("or")) {
      const size_t offset = tokens_[cur_++].offset;
      left = Binary("or", offset, std::move(left), ParseAnd());
    }
    return left;
  }

  NodePtr ParseAnd() {
    NodePtr left = ParseNot();
    while (IsIdent("and")) {
      const size_t offset = tokens_[cur_++].offset;
      left = Binary("and", offset, std::move(left), ParseNot());
    }
    return left;
  }

  NodePtr ParseNot() {
    if (IsIdent("not")) {
      DepthGuard guard(this);
      auto node = Make(NodeType::kUnary, tokens_[cur_++].offset);
      node->name = "not";
      node->a = ParseNot();
      return Finish(std::move(node));
    }
    return ParseComparison();
  }

  NodePtr ParseComparison() {
    NodePtr left = ParseAdditive();
    while (true) {
      std::string op;
      const size_t offset = Offset();
      if (IsIdent("not") && IsIdent("in", 1)) {
        op = "not in";
        cur_ += 2;
      } else if (IsIdent("in")) {
        op = "in";
        ++cur_;
      } else if (Is(Tok::kComparison)) {
        op = tokens_[cur_++].value;
      } else {
        break;
      }
      left = Binary(op, offset, std::move(left), ParseAdditive());
    }
    return left;
  }

  NodePtr ParseAdditive() {
    NodePtr left = ParseMultiplicative();
    while (Is(Tok::kAdditive)) {
      const Token& t = tokens_[cur_++];
      left = Binary(t.value, t.offset, std::move(left), ParseMultiplicative());
    }
    return left;
  }

  NodePtr ParseMultiplicative() {
    NodePtr left = ParsePower();
    while (Is(Tok::kMultiplicative)) {
      const Token& t = tokens_[cur_++];
      left = Binary(t.value, t.offset, std::move(left), ParsePower());
    }
    return left;
  }

  NodePtr ParsePower() {
    NodePtr left = ParseTest();
    while (Is(Tok::kPower)) {
      const Token& t = tokens_[cur_++];
      left = Binary(t.value, t.offset, std::move(left), ParseTest());
    }
    return left;
  }

  NodePtr ParseTest() {
    NodePtr operand = ParseFilter();
    while (IsIdent("is")) {
      const size_t offset = tokens_[cur_++].offset;
      const bool negate = IsIdent("not");
      if (negate) ++cur_;
      NodePtr test = ParsePrimary();
      if (test->type != NodeType::kIdentifier) ErrorAt("expected a test name", test->offset);
      if (Is(Tok::kOpenParen)) Error("tests with arguments are not supported");
      auto node = Make(NodeType::kTest, offset);
      node->a = std::move(operand);
      node->name = test->name;
      node->flag = negate;
      operand = Finish(std::move(node));
    }
    return operand;
  }

  NodePtr ParseFilter() {
    NodePtr operand = ParseUnarySign();
    while (Is(Tok::kPipe)) {
      const size_t offset = tokens_[cur_++].offset;
      NodePtr filter = ParsePrimary();
      if (filter->type != NodeType::kIdentifier) ErrorAt("expected a filter name", filter->offset);
      if (Is(Tok::kOpenParen)) filter = ParseCall(std::move(filter));
      auto node = Make(NodeType::kFilter, offset);
      node->a = std::move(operand);
      node->b = std::move(filter);
      operand = Finish(std::move(node));
    }
    return operand;
  }

  NodePtr ParseUnarySign() {
    if (cur_ < tokens_.size() && (Is(Tok::kUnary) || Is(Tok::kAdditive)) &&
        (tokens_[cur_].value == "-" || tokens_[cur_].value == "+")) {
      DepthGuard guard(this);
      const Token& t = tokens_[cur_++];
      auto node = Make(NodeType::kUnary, t.offset);
      node->name = t.value;
      node->a = ParseUnarySign();
      return Finish(std::move(node));
    }
    return ParseCallMember();
  }

  NodePtr ParseCallMember() {
    NodePtr member = ParseMember(ParsePrimary());
    if (Is(Tok::kOpenParen)) return ParseCall(std::move(member));
    return member;
  }

  NodePtr ParseCall(NodePtr callee) {
    DepthGuard guard(this);
    auto node = Make(NodeType::kCall, callee->offset);
    node->a = std::move(callee);
    node->list = ParseArgs(/*parameters=*/false);
    NodePtr expr = ParseMember(Finish(std::move(node)));
    if (Is(Tok::kOpenParen)) expr = ParseCall(std::move(expr));
    return expr;
  }

  NodeList ParseArgs(bool parameters) {
    Expect(Tok::kOpenParen, "'('");
    NodeList args;
    bool saw_keyword = false;
    std::vector<std::string> names;
    while (!Is(Tok::kCloseParen)) {
      if (Is(Tok::kPower) || (Is(Tok::kMultiplicative) && Peek().value == "*")) {
        Error("argument unpacking (* / **) is not supported");
      }
      NodePtr arg = ParseExpression();
      if (Is(Tok::kEquals)) {
        ++cur_;
        if (arg->type != NodeType::kIdentifier) {
          ErrorAt(parameters ? "expected a parameter name" : "expected a keyword argument name",
                  arg->offset);
        }
        auto kw = Make(NodeType::kKwarg, arg->offset);
        kw->name = arg->name;
        kw->a = ParseExpression();
        arg = Finish(std::move(kw));
      }
      if (parameters) {
        if (arg->type != NodeType::kIdentifier && arg->type != NodeType::kKwarg) {
          ErrorAt("expected a parameter name", arg->offset);
        }
        if (std::find(names.begin(), names.end(), arg->name) != names.end()) {
          ErrorAt(absl::StrCat("duplicate parameter name: ", arg->name), arg->offset);
        }
        names.push_back(arg->name);
      }
      if (arg->type == NodeType::kKwarg) {
        saw_keyword = true;
      } else if (saw_keyword) {
        ErrorAt(parameters ? "non-default parameter follows a default one"
                           : "positional argument follows a keyword argument",
                arg->offset);
      }
      args.push_back(std::move(arg));
      if (Is(Tok::kComma)) ++cur_;
      if (cur_ >= tokens_.size()) Error("unexpected end of template: expected ')'");
    }
    ++cur_;
    return args;
  }

  NodePtr ParseSubscript() {
    const size_t offset = Offset();
    std::vector<NodePtr> slices;
    bool is_slice = false;
    while (!Is(Tok::kCloseBracket)) {
      if (cur_ >= tokens_.size()) Error("unexpected end of template: expected ']'");
      if (Is(Tok::kColon)) {
        slices.push_back(nullptr);
        ++cur_;
        is_slice = true;
      } else {
        slices.push_back(ParseExpression());
        if (Is(Tok::kColon)) {
          ++cur_;
          is_slice = true;
        }
      }
    }
    if (slices.empty()) Error("expected an index or a slice");
    if (!is_slice) return std::move(slices[0]);
    if (slices.size() > 3) ErrorAt("a slice takes at most 3 parts", offset);
    auto node = Make(NodeType::kSlice, offset);
    node->a = std::move(slices[0]);
    if (slices.size() > 1) node->b = std::move(slices[1]);
    if (slices.size() > 2) node->c = std::move(slices[2]);
    return Finish(std::move(node));
  }

  NodePtr ParseMember(NodePtr object) {
    while (Is(Tok::kDot) || Is(Tok::kOpenBracket)) {
      const Token& op = tokens_[cur_++];
      auto node = Make(NodeType::kMember, op.offset);
      node->flag = op.type == Tok::kOpenBracket;
      if (node->flag) {
        node->b = ParseSubscript();
        Expect(Tok::kCloseBracket, "']'");
      } else {
        node->b = ParsePrimary();
        if (node->b->type != NodeType::kIdentifier && node->b->type != NodeType::kIntLit) {
          ErrorAt("expected a name after '.'", node->b->offset);
        }
      }
      node->a = std::move(object);
      object = Finish(std::move(node));
    }
    return object;
  }

  NodePtr ParsePrimary() {
    if (cur_ >= tokens_.size()) Error("unexpected end of template: expected an expression");
    const Token& t = tokens_[cur_++];
    switch (t.type) {
      case Tok::kNumber: {
        const bool is_float = t.value.find('.') != std::string::npos;
        auto node = Make(is_float ? NodeType::kFloatLit : NodeType::kIntLit, t.offset);
        node->number = std::strtod(t.value.c_str(), nullptr);
        return Finish(std::move(node));
      }
      case Tok::kString: {
        auto node = Make(NodeType::kStringLit, t.offset);
        node->name = t.value;
        while (Is(Tok::kString)) node->name += tokens_[cur_++].value;
        return Finish(std::move(node));
      }
      case Tok::kIdent: {
        auto node = Make(NodeType::kIdentifier, t.offset);
        node->name = t.value;
        return Finish(std::move(node));
      }
      case Tok::kOpenParen: {
        NodePtr e = ParseExpressionSequence(false);
        Expect(Tok::kCloseParen, "')'");
        return e;
      }
      case Tok::kOpenBracket: {
        auto node = Make(NodeType::kArrayLit, t.offset);
        while (!Is(Tok::kCloseBracket)) {
          node->list.push_back(ParseExpression());
          if (Is(Tok::kComma)) ++cur_;
        }
        ++cur_;
        return Finish(std::move(node));
      }
      case Tok::kOpenCurly: {
        auto node = Make(NodeType::kObjectLit, t.offset);
        while (!Is(Tok::kCloseCurly)) {
          node->list.push_back(ParseExpression());
          Expect(Tok::kColon, "':' in a dict literal");
          node->list2.push_back(ParseExpression());
          if (Is(Tok::kComma)) ++cur_;
        }
        ++cur_;
        return Finish(std::move(node));
      }
      default:
        ErrorAt(absl::StrCat("unexpected token '", t.value, "'"), t.offset);
    }
  }

  std::vector<Token> tokens_;
  size_t end_;
  const JinjaLimits& limits_;
  size_t cur_ = 0;
  int depth_ = 0;
};

// ---------------------------------------------------------------------------
// Interpreter (a port of @huggingface/jinja's Interpreter).

struct BreakSignal {};
struct ContinueSignal {};

}  // namespace

struct Env {
  Env* parent = nullptr;
  std::unordered_map<std::string, Value> vars;
};

namespace {

// /\b\w/g -> upper case.
std::string TitleCase(const std::string& s) {
  std::string out = s;
  for (size_t i = 0; i < out.size(); ++i) {
    if (IsWordChar(out[i]) && (i == 0 || !IsWordChar(out[i - 1]))) {
      out[i] = static_cast<char>(std::toupper(static_cast<unsigned char>(out[i])));
    }
  }
  return out;
}

std::vector<std::string> SplitString(const std::string& s, const std::string& sep) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    const size_t p = s.find(sep, start);
    if (p == std::string::npos) break;
    parts.push_back(s.substr(start, p - start));
    start = p + sep.size();
  }
  parts.push_back(s.substr(start));
  return parts;
}

std::string Join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) AppendJs(&out, sep);
    AppendJs(&out, parts[i]);
  }
  return out;
}

// Python's str.replace as the reference implements it (count < 0 or null:
// all; an empty `old` matches between code points).
std::string ReplaceString(const std::string& s, const std::string& old_value,
                          const std::string& new_value, double count) {
  if (count == 0) return s;
  double remaining = std::isnan(count) || count < 0 ? INFINITY : count;
  std::string out;
  if (old_value.empty()) {
    for (size_t i = 0; i <= s.size();) {
      if (remaining > 0) {
        AppendJs(&out, new_value);
        --remaining;
      }
      if (i == s.size()) break;
      uint32_t cp;
      const size_t len = Utf8Next(s, i, &cp);
      AppendJs(&out, std::string_view(s).substr(i, len));
      i += len;
    }
    return out;
  }
  size_t start = 0;
  while (remaining > 0) {
    const size_t p = s.find(old_value, start);
    if (p == std::string::npos) break;
    AppendJs(&out, std::string_view(s).substr(start, p - start));
    AppendJs(&out, new_value);
    start = p + old_value.size();
    --remaining;
  }
  AppendJs(&out, std::string_view(s).substr(start));
  return out;
}

// The UTF-16 unit at index i (negative counts from the end), as the code
// point it belongs to; nullopt when out of range.
std::optional<std::string> StringAt(const std::string& s, double index) {
  const double len = static_cast<double>(Utf16Length(s));
  double i = std::trunc(index);
  if (i < 0) i += len;
  if (i < 0 || i >= len) return std::nullopt;
  size_t unit = 0;
  for (size_t b = 0; b < s.size();) {
    uint32_t cp;
    const size_t n = Utf8Next(s, b, &cp);
    const size_t units = cp >= 0x10000 ? 2 : 1;
    if (static_cast<double>(unit + units) > i) {
      if (units == 1) return s.substr(b, n);
      // Half of a surrogate pair, as JavaScript indexes it.
      std::string half;
      const bool high = static_cast<double>(unit) == i;
      AppendUtf8(&half, high ? 0xD800 + ((cp - 0x10000) >> 10) : 0xDC00 + ((cp - 0x10000) & 0x3FF));
      return half;
    }
    unit += units;
    b += n;
  }
  return std::nullopt;
}

int CompareValues(const Value& a, const Value& b, bool case_sensitive) {
  if (a.is_null() && b.is_null()) return 0;
  if (a.is_null() || b.is_null())
    Fail(absl::StrCat("cannot compare ", a.TypeName(), " with ", b.TypeName()));
  if (a.is_undefined() && b.is_undefined()) return 0;
  if (a.is_undefined() || b.is_undefined()) {
    Fail(absl::StrCat("cannot compare ", a.TypeName(), " with ", b.TypeName()));
  }
  const auto numeric = [](const Value& v) { return v.is_number() || v.kind == Kind::kBool; };
  if (numeric(a) && numeric(b)) {
    const double x = a.kind == Kind::kBool ? a.boolean : a.number;
    const double y = b.kind == Kind::kBool ? b.boolean : b.number;
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.kind != b.kind) Fail(absl::StrCat("cannot compare ", a.TypeName(), " and ", b.TypeName()));
  if (a.kind == Kind::kString) {
    const std::string x = case_sensitive ? a.str : JsToLower(a.str);
    const std::string y = case_sensitive ? b.str : JsToLower(b.str);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  Fail(absl::StrCat("cannot compare values of type ", a.TypeName()));
}

// Dotted attribute path ("a.b", "items.0") for sort/map.
Value AttributePath(const Value& item, const std::string& path) {
  Value v = item;
  for (const std::string& part : SplitString(path, ".")) {
    if (v.is_attr_container()) {
      const Value* found = v.object->Find(part);
      v = found ? *found : Value::Undefined();
    } else if (v.is_array()) {
      char* end = nullptr;
      const long idx = std::strtol(part.c_str(), &end, 10);
      if (end == part.c_str() || idx < 0 || static_cast<size_t>(idx) >= v.array->items.size()) {
        return Value::Undefined();
      }
      Value next = v.array->items[idx];
      v = std::move(next);
    } else {
      return Value::Undefined();
    }
  }
  return v;
}

Value KwargOr(const ObjectData* kwargs, const char* name, Value fallback) {
  if (kwargs != nullptr) {
    if (const Value* v = kwargs->Find(name)) return *v;
  }
  return fallback;
}

std::string StrftimeNow(const std::string& format) {
  static const char* kMonthsShort[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  static const char* kMonthsLong[] = {"January",   "February", "March",    "April",
                                      "May",       "June",     "July",     "August",
                                      "September", "October",  "November", "December"};
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  const auto pad2 = [](int v) { return v < 10 ? absl::StrCat("0", v) : absl::StrCat(v); };
  std::string out;
  for (size_t i = 0; i < format.size(); ++i) {
    if (format[i] == '%' && i + 1 < format.size()) {
      const char c = format[i + 1];
      std::string rep;
      switch (c) {
        case 'Y':
          rep = absl::StrCat(tm.tm_year + 1900);
          break;
        case 'm':
          rep = pad2(tm.tm_mon + 1);
          break;
        case 'd':
          rep = pad2(tm.tm_mday);
          break;
        case 'b':
          rep = kMonthsShort[tm.tm_mon];
          break;
        case 'B':
          rep = kMonthsLong[tm.tm_mon];
          break;
        case 'H':
          rep = pad2(tm.tm_hour);
          break;
        case 'M':
          rep = pad2(tm.tm_min);
          break;
        case '%':
          rep = "%";
          break;
        default:
          break;
      }
      if (!rep.empty()) {
        out += rep;
        ++i;
        continue;
      }
    }
    out += format[i];
  }
  return out;
}

// Whether a macro body reads `kwargs` / `varargs` (then extra arguments are
// collected instead of being an error).
void FindNames(const Node& node, bool* kwargs, bool* varargs) {
  if (node.type == NodeType::kIdentifier) {
    if (node.name == "kwargs") *kwargs = true;
    if (node.name == "varargs") *varargs = true;
  }
  for (const NodePtr* child : {&node.a, &node.b, &node.c}) {
    if (*child) FindNames(**child, kwargs, varargs);
  }
  for (const NodeList* l : {&node.list, &node.list2}) {
    for (const NodePtr& child : *l) FindNames(*child, kwargs, varargs);
  }
}

class Interpreter {
 public:
  explicit Interpreter(const JinjaLimits& limits) : limits_(limits) {
    namespace_fn_ =
        Value::Function([this](std::vector<Value>& args, Env*) { return MakeNamespace(args); });
  }
  ~Interpreter() {
    // Namespaces are the only mutable values, so the only possible cycles.
    for (const auto& ns : namespaces_) {
      ns->entries.clear();
      ns->index.clear();
    }
  }

  void SetupGlobals(Env* env) {
    env->vars["false"] = Value::Bool(false);
    env->vars["true"] = Value::Bool(true);
    env->vars["none"] = Value::Null();
    env->vars["raise_exception"] = Value::Function([](std::vector<Value>& args, Env*) -> Value {
      Fail(absl::StrCat("raise_exception: ", args.empty() ? "" : ToJsString(args[0])));
    });
    env->vars["range"] =
        Value::Function([this](std::vector<Value>& args, Env*) { return Range(args); });
    env->vars["strftime_now"] = Value::Function([](std::vector<Value>& args, Env*) {
      if (args.empty() || !args[0].is_string()) Fail("strftime_now expects a format string");
      return Value::String(StrftimeNow(args[0].str));
    });
    env->vars["True"] = Value::Bool(true);
    env->vars["False"] = Value::Bool(false);
    env->vars["None"] = Value::Null();
  }

  std::string EvalBlock(const NodeList& body, Env* env) {
    std::string out;
    for (const NodePtr& stmt : body) {
      Value v = Eval(*stmt, env);
      if (v.is_null() || v.is_undefined()) continue;
      if (v.is_string()) {
        AppendJs(&out, v.str);
      } else {
        AppendJs(&out, ToOutputString(v));
      }
      CheckSize(out.size());
    }
    return out;
  }

  Value Eval(const Node& node, Env* env) {
    if (++steps_ > limits_.max_steps) FailLimit("template evaluation exceeded the step limit");
    if (++depth_ > 4 * limits_.max_depth) {
      --depth_;
      FailLimit("template recursion too deep");
    }
    struct Unwind {
      int* d;
      ~Unwind() { --*d; }
    } unwind{&depth_};
    try {
      return EvalNode(node, env);
    } catch (Error& e) {
      if (e.line == 0 && e.column == 0 && !e.limit_exceeded) {
        error_offset_ = node.offset;
        e.line = -1;  // position filled in by Render from error_offset_
      }
      throw;
    }
  }

  size_t error_offset() const { return error_offset_; }

 private:
  void CheckSize(size_t bytes) const {
    if (bytes > limits_.max_string_bytes) FailLimit("template output exceeded the size limit");
  }

  Value Lookup(const std::string& name, Env* env) const {
    if (name == "namespace") {
      auto it = env->vars.find(name);
      return it != env->vars.end() ? it->second : namespace_fn_;
    }
    for (Env* e = env; e != nullptr; e = e->parent) {
      auto it = e->vars.find(name);
      if (it != e->vars.end()) return it->second;
    }
    return Value::Undefined();
  }

  Value MakeNamespace(std::vector<Value>& args) {
    std::vector<Value> positional = args;
    const ObjectData* kwargs = nullptr;
    if (!positional.empty() && positional.back().kind == Kind::kKwargs) {
      kwargs = positional.back().object.get();
      positional.pop_back();
    }
    if (positional.size() > 1) Fail("namespace() takes at most 1 positional argument");
    auto data = std::make_shared<ObjectData>();
    if (positional.size() == 1) {
      const Value& source = positional[0];
      if (source.is_object()) {
        for (const auto& [k, v] : source.object->entries) data->Set(k, v);
      } else if (source.is_array()) {
        for (const Value& pair : source.array->items) {
          std::vector<Value> kv;
          if (pair.is_array()) {
            kv = pair.array->items;
          } else if (pair.is_string()) {
            for (std::string& cp : CodePoints(pair.str)) kv.push_back(Value::String(std::move(cp)));
          }
          if (kv.size() != 2)
            Fail("namespace expected an object or an iterable of [key, value] pairs");
          if (!kv[0].is_string()) Fail("namespace keys must be strings");
          data->Set(kv[0].str, kv[1]);
        }
      } else {
        Fail(absl::StrCat("'", source.TypeName(), "' object is not iterable"));
      }
    }
    if (kwargs != nullptr) {
      for (const auto& [k, v] : kwargs->entries) data->Set(k, v);
    }
    namespaces_.push_back(data);
    return Value::Object(std::move(data), Kind::kNamespace);
  }

  // range() receives raw values, as the reference's JavaScript function:
  // they go through ToNumber (a keyword-argument object is NaN).
  Value Range(std::vector<Value>& args) {
    const auto num = [&](size_t i) -> double {
      const Value& a = args[i];
      switch (a.kind) {
        case Kind::kInt:
        case Kind::kFloat:
          return a.number;
        case Kind::kBool:
          return a.boolean ? 1 : 0;
        case Kind::kNull:
          return 0;
        case Kind::kString:
          return JsStringToNumber(a.str);
        case Kind::kArray:
        case Kind::kTuple:
          return JsStringToNumber(ToJsString(a));
        default:
          return NAN;
      }
    };
    double start = 0, stop = NAN, step = 1;
    if (args.size() <= 1 || args[1].is_undefined()) {
      if (!args.empty() && !args[0].is_undefined()) stop = num(0);
    } else {
      start = args[0].is_undefined() ? NAN : num(0);
      stop = num(1);
    }
    if (args.size() > 2 && !args[2].is_undefined()) step = num(2);
    if (step == 0) Fail("range() step must not be zero");
    std::vector<Value> items;
    for (double i = start; step > 0 ? i < stop : i > stop; i += step) {
      if (items.size() >= limits_.max_array_size) FailLimit("range() exceeded the size limit");
      items.push_back(std::floor(i) == i ? Value::Int(i) : Value::Float(i));
    }
    return Value::Array(std::move(items));
  }

  Value EvalNode(const Node& node, Env* env) {
    switch (node.type) {
      case NodeType::kText:
      case NodeType::kStringLit:
        return Value::String(node.name);
      case NodeType::kComment:
        return Value::Null();
      case NodeType::kIntLit:
        return Value::Int(node.number);
      case NodeType::kFloatLit:
        return Value::Float(node.number);
      case NodeType::kSet:
        return EvalSet(node, env);
      case NodeType::kIf:
        return Value::String(EvalBlock(Truthy(Eval(*node.a, env)) ? node.list : node.list2, env));
      case NodeType::kFor:
        return EvalFor(node, env);
      case NodeType::kBreak:
        throw BreakSignal{};
      case NodeType::kContinue:
        throw ContinueSignal{};
      case NodeType::kMacro:
        return EvalMacro(node, env);
      case NodeType::kArrayLit:
      case NodeType::kTupleLit: {
        std::vector<Value> items;
        for (const NodePtr& e : node.list) items.push_back(Eval(*e, env));
        return Value::Array(std::move(items),
                            node.type == NodeType::kTupleLit ? Kind::kTuple : Kind::kArray);
      }
      case NodeType::kObjectLit: {
        auto data = std::make_shared<ObjectData>();
        for (size_t i = 0; i < node.list.size(); ++i) {
          Value key = Eval(*node.list[i], env);
          if (!key.is_string())
            Fail(absl::StrCat("object keys must be strings: got ", key.TypeName()));
          data->Set(key.str, Eval(*node.list2[i], env));
        }
        return Value::Object(std::move(data));
      }
      case NodeType::kIdentifier:
        return Lookup(node.name, env);
      case NodeType::kMember:
        return EvalMember(node, env);
      case NodeType::kCall:
        return EvalCall(node, env);
      case NodeType::kUnary:
        return EvalUnary(node, env);
      case NodeType::kBinary:
        return EvalBinary(node, env);
      case NodeType::kFilter: {
        Value operand = Eval(*node.a, env);
        return ApplyFilter(operand, *node.b, env);
      }
      case NodeType::kTest:
        return EvalTest(node, env);
      case NodeType::kSelect:
        if (!Truthy(Eval(*node.b, env))) return Value::Undefined();
        return Eval(*node.a, env);
      case NodeType::kTernary:
        return Truthy(Eval(*node.a, env)) ? Eval(*node.b, env) : Eval(*node.c, env);
      case NodeType::kSlice:
      case NodeType::kKwarg:
        Fail("unexpected slice or keyword argument");
    }
    Fail("unknown node");
  }

  // `first`/`last` of an empty list give the reference a raw JavaScript
  // undefined: an error wherever it is used, but `set` stores it (and reads
  // it back as undefined). This is the stored case.
  Value EvalForSet(const Node& node, Env* env) {
    if (node.type == NodeType::kTernary) {
      return Truthy(Eval(*node.a, env)) ? EvalForSet(*node.b, env) : EvalForSet(*node.c, env);
    }
    if (node.type == NodeType::kFilter && node.b->type == NodeType::kIdentifier &&
        (node.b->name == "first" || node.b->name == "last")) {
      Value operand = Eval(*node.a, env);
      if (operand.is_array() && operand.array->items.empty()) return Value::Undefined();
      return ApplyFilter(operand, *node.b, env);
    }
    return Eval(node, env);
  }

  Value EvalSet(const Node& node, Env* env) {
    Value rhs = node.b ? EvalForSet(*node.b, env) : Value::String(EvalBlock(node.list, env));
    const Node& target = *node.a;
    if (target.type == NodeType::kIdentifier) {
      env->vars[target.name] = std::move(rhs);
    } else if (target.type == NodeType::kTupleLit) {
      if (!rhs.is_array())
        Fail(absl::StrCat("cannot unpack non-iterable type in set: ", rhs.TypeName()));
      const auto& items = rhs.array->items;
      if (items.size() != target.list.size()) {
        Fail(target.list.size() > items.size() ? "too few items to unpack in set"
                                               : "too many items to unpack in set");
      }
      for (size_t i = 0; i < items.size(); ++i) {
        if (target.list[i]->type != NodeType::kIdentifier)
          Fail("cannot unpack to a non-identifier in set");
        env->vars[target.list[i]->name] = items[i];
      }
    } else if (target.type == NodeType::kMember) {
      Value object = Eval(*target.a, env);
      if (object.kind != Kind::kNamespace)
        Fail("cannot assign an attribute of a non-namespace object");
      if (target.b->type != NodeType::kIdentifier || target.flag) {
        Fail("cannot assign to a member with a non-identifier property");
      }
      const int depth = rhs.depth() + 1;
      if (depth > kMaxValueDepth) FailLimit("value nested too deeply");
      object.object->depth = std::max(object.object->depth, depth);
      object.object->Set(target.b->name, std::move(rhs));
    } else {
      Fail("invalid assignment target");
    }
    return Value::Null();
  }

  Value EvalFor(const Node& node, Env* env) {
    Env scope{env, {}};
    const Node* test = nullptr;
    Value iterable;
    if (node.b->type == NodeType::kSelect) {
      iterable = Eval(*node.b->a, &scope);
      test = node.b->b.get();
    } else {
      iterable = Eval(*node.b, &scope);
    }
    if (!iterable.is_array() && !iterable.is_object()) {
      Fail(absl::StrCat("expected an iterable or object in a for loop: got ", iterable.TypeName()));
    }
    std::vector<Value> all;
    if (iterable.is_object()) {
      for (const auto& [k, v] : iterable.object->entries) all.push_back(Value::String(k));
    } else if (iterable.array.use_count() == 1) {
      all = std::move(iterable.array->items);  // a temporary (range(), a literal)
    } else {
      all = iterable.array->items;
    }
    const Node& target = *node.a;
    const auto bind = [&](Env* e, const Value& current) {
      if (target.type == NodeType::kIdentifier) {
        e->vars[target.name] = current;
        return;
      }
      if (current.kind != Kind::kArray)
        Fail(absl::StrCat("cannot unpack non-iterable type: ", current.TypeName()));
      const auto& items = current.array->items;
      if (items.size() != target.list.size()) {
        Fail(target.list.size() > items.size() ? "too few items to unpack"
                                               : "too many items to unpack");
      }
      for (size_t j = 0; j < items.size(); ++j) {
        if (target.list[j]->type != NodeType::kIdentifier)
          Fail("cannot unpack to a non-identifier");
        e->vars[target.list[j]->name] = items[j];
      }
    };
    std::vector<Value> items;
    items.reserve(all.size());
    for (Value& current : all) {
      if (test != nullptr) {
        Env loop_scope{&scope, {}};
        bind(&loop_scope, current);
        if (!Truthy(Eval(*test, &loop_scope))) continue;
      } else if (target.type == NodeType::kTupleLit) {
        Env check{&scope, {}};
        bind(&check, current);  // unpack errors surface before the body runs
      }
      items.push_back(std::move(current));
    }
    std::string result;
    bool no_iteration = true;
    const double n = static_cast<double>(items.size());
    for (size_t i = 0; i < items.size(); ++i) {
      if (++steps_ > limits_.max_steps) FailLimit("template evaluation exceeded the step limit");
      auto loop = std::make_shared<ObjectData>();
      loop->entries.reserve(9);
      loop->Set("index", Value::Int(i + 1.0));
      loop->Set("index0", Value::Int(static_cast<double>(i)));
      loop->Set("revindex", Value::Int(n - i));
      loop->Set("revindex0", Value::Int(n - i - 1));
      loop->Set("first", Value::Bool(i == 0));
      loop->Set("last", Value::Bool(i + 1 == items.size()));
      loop->Set("length", Value::Int(n));
      loop->Set("previtem", i > 0 ? items[i - 1] : Value::Undefined());
      loop->Set("nextitem", i + 1 < items.size() ? items[i + 1] : Value::Undefined());
      scope.vars["loop"] = Value::Object(std::move(loop));
      bind(&scope, items[i]);
      try {
        AppendJs(&result, EvalBlock(node.list, &scope));
        CheckSize(result.size());
      } catch (const ContinueSignal&) {
        continue;
      } catch (const BreakSignal&) {
        break;
      }
      no_iteration = false;
    }
    if (no_iteration) AppendJs(&result, EvalBlock(node.list2, &scope));
    return Value::String(std::move(result));
  }

  Value EvalMacro(const Node& node, Env* env) {
    bool uses_kwargs = false, uses_varargs = false;
    for (const NodePtr& stmt : node.list2) FindNames(*stmt, &uses_kwargs, &uses_varargs);
    for (const NodePtr& p : node.list) {
      if (p->name == "kwargs") uses_kwargs = false;
      if (p->name == "varargs") uses_varargs = false;
    }
    const Node* macro = &node;
    env->vars[node.name] = Value::Function(
        [this, macro, uses_kwargs, uses_varargs](std::vector<Value>& args, Env* caller) {
          if (++call_depth_ > limits_.max_depth) {
            --call_depth_;
            FailLimit("macro recursion too deep");
          }
          struct Unwind {
            int* d;
            ~Unwind() { --*d; }
          } unwind{&call_depth_};
          Env scope{caller, {}};
          std::vector<Value> positional = args;
          std::vector<std::pair<std::string, Value>> kwargs;
          if (!positional.empty() && positional.back().kind == Kind::kKwargs) {
            kwargs = positional.back().object->entries;
            positional.pop_back();
          }
          std::vector<bool> consumed(kwargs.size(), false);
          std::vector<std::pair<std::string, const Node*>> defaults;
          for (size_t i = 0; i < macro->list.size(); ++i) {
            const Node& param = *macro->list[i];
            std::optional<Value> value;
            if (i < positional.size()) value = positional[i];
            for (size_t k = 0; !value && k < kwargs.size(); ++k) {
              if (!consumed[k] && kwargs[k].first == param.name) {
                value = kwargs[k].second;
                consumed[k] = true;
              }
            }
            if (!value && param.type == NodeType::kKwarg)
              defaults.emplace_back(param.name, param.a.get());
            scope.vars[param.name] = value ? *value : Value::Undefined();
          }
          auto rest = std::make_shared<ObjectData>();
          for (size_t k = 0; k < kwargs.size(); ++k) {
            if (!consumed[k]) rest->Set(kwargs[k].first, kwargs[k].second);
          }
          if (uses_kwargs) {
            scope.vars["kwargs"] = Value::Object(rest);
          } else if (rest->size() > 0) {
            Fail(absl::StrCat("macro '", macro->name, "' takes no keyword argument '",
                              rest->entries[0].first, "'"));
          }
          if (uses_varargs) {
            std::vector<Value> extra;
            for (size_t i = macro->list.size(); i < positional.size(); ++i)
              extra.push_back(positional[i]);
            scope.vars["varargs"] = Value::Array(std::move(extra));
          } else if (positional.size() > macro->list.size()) {
            Fail(absl::StrCat("macro '", macro->name, "' takes not more than ", macro->list.size(),
                              " argument(s)"));
          }
          for (const auto& [name, expr] : defaults) scope.vars[name] = Eval(*expr, &scope);
          return Value::String(EvalBlock(macro->list2, &scope));
        });
    return Value::Null();
  }

  // Positional values, then keyword arguments as one trailing kKwargs value.
  std::vector<Value> EvalArgs(const NodeList& args, Env* env, bool always_kwargs = false) {
    std::vector<Value> out;
    for (const NodePtr& a : args) {
      if (a->type != NodeType::kKwarg) out.push_back(Eval(*a, env));
    }
    auto kwargs = std::make_shared<ObjectData>();
    for (const NodePtr& a : args) {
      if (a->type != NodeType::kKwarg) continue;
      if (kwargs->Find(a->name))
        Fail(absl::StrCat("got multiple values for keyword argument '", a->name, "'"));
      kwargs->Set(a->name, Eval(*a->a, env));
    }
    if (kwargs->size() > 0 || always_kwargs)
      out.push_back(Value::Object(std::move(kwargs), Kind::kKwargs));
    return out;
  }

  Value EvalCall(const Node& node, Env* env) {
    std::vector<Value> args = EvalArgs(node.list, env);
    Value fn = Eval(*node.a, env);
    if (fn.kind != Kind::kFunction)
      Fail(absl::StrCat("cannot call something that is not a function: got ", fn.TypeName()));
    return (*fn.fn)(args, env);
  }

  Value EvalUnary(const Node& node, Env* env) {
    Value arg = Eval(*node.a, env);
    if (node.name == "not") return Value::Bool(!Truthy(arg));
    const double sign = node.name == "-" ? -1 : 1;
    if (arg.is_number() || arg.kind == Kind::kBool) {
      const double v = arg.kind == Kind::kBool ? (arg.boolean ? 1 : 0) : arg.number;
      return arg.kind == Kind::kFloat ? Value::Float(sign * v) : Value::Int(sign * v);
    }
    Fail(absl::StrCat("unknown operator '", node.name, "' for ", arg.TypeName()));
  }

  Value EvalBinary(const Node& node, Env* env) {
    const std::string& op = node.name;
    Value left = Eval(*node.a, env);
    if (op == "and") return Truthy(left) ? Eval(*node.b, env) : left;
    if (op == "or") return Truthy(left) ? left : Eval(*node.b, env);
    Value right = Eval(*node.b, env);
    if (op == "==") return Value::Bool(LooseEquals(left, right));
    if (op == "!=") return Value::Bool(!LooseEquals(left, right));
    const bool membership = op == "in" || op == "not in";
    if (left.is_undefined() || right.is_undefined()) {
      if (right.is_undefined() && membership) return Value::Bool(op == "not in");
      Fail(absl::StrCat("cannot perform operation '", op, "' on undefined values"));
    }
    if (left.is_null() || right.is_null())
      Fail(absl::StrCat("cannot perform operation '", op, "' on null values"));
    if (op == "~") return Concat(ToJsString(left), ToJsString(right));
    const auto numeric_like = [](const Value& v) { return v.is_number() || v.kind == Kind::kBool; };
    if (op == "**" && numeric_like(left) && numeric_like(right)) {
      const double a = left.kind == Kind::kBool ? left.boolean : left.number;
      const double b = right.kind == Kind::kBool ? right.boolean : right.number;
      if (a == 0 && b < 0) Fail("0.0 cannot be raised to a negative power");
      const double r = std::pow(a, b);
      if (!std::isfinite(r)) Fail("exponentiation result is not a finite real number");
      const bool is_float = left.kind == Kind::kFloat || right.kind == Kind::kFloat || b < 0;
      return is_float ? Value::Float(r) : Value::Int(r);
    }
    if (left.is_number() && right.is_number()) {
      const double a = left.number, b = right.number;
      const bool is_float = left.kind == Kind::kFloat || right.kind == Kind::kFloat;
      const auto num = [is_float](double r) { return is_float ? Value::Float(r) : Value::Int(r); };
      if (op == "+") return num(a + b);
      if (op == "-") return num(a - b);
      if (op == "*") return num(a * b);
      if (op == "/") return Value::Float(a / b);
      if (op == "//") return num(std::floor(a / b));
      if (op == "%") return num(std::fmod(a, b));
      if (op == "<") return Value::Bool(a < b);
      if (op == ">") return Value::Bool(a > b);
      if (op == ">=") return Value::Bool(a >= b);
      if (op == "<=") return Value::Bool(a <= b);
    } else if (left.is_array() && right.is_array()) {
      if (op == "+") {
        if (left.array->items.size() + right.array->items.size() > limits_.max_array_size) {
          FailLimit("list concatenation exceeded the size limit");
        }
        std::vector<Value> items = left.array->items;
        items.insert(items.end(), right.array->items.begin(), right.array->items.end());
        return Value::Array(std::move(items));
      }
    } else if (right.is_array()) {
      if (membership) {
        bool found = false;
        for (const Value& x : right.array->items) {
          if (StrictEquals(x, left)) {
            found = true;
            break;
          }
        }
        return Value::Bool(found == (op == "in"));
      }
    }
    if ((left.is_string() || right.is_string()) && op == "+")
      return Concat(ToJsString(left), ToJsString(right));
    if (left.is_string() && right.is_string() && membership) {
      return Value::Bool((right.str.find(left.str) != std::string::npos) == (op == "in"));
    }
    if (left.is_string() && right.is_object() && membership) {
      return Value::Bool((right.object->Find(left.str) != nullptr) == (op == "in"));
    }
    Fail(absl::StrCat("unknown operator '", op, "' between ", left.TypeName(), " and ",
                      right.TypeName()));
  }

  Value Concat(std::string a, const std::string& b) {
    CheckSize(a.size() + b.size());
    AppendJs(&a, b);
    return Value::String(std::move(a));
  }

  Value EvalSlice(const Value& object, const Node& slice, Env* env) {
    if (!object.is_array() && !object.is_string()) Fail("slice object must be an array or string");
    const auto part = [&](const NodePtr& n) -> std::optional<double> {
      if (!n) return std::nullopt;
      Value v = Eval(*n, env);
      if (v.is_undefined()) return std::nullopt;
      if (v.kind != Kind::kInt) Fail("slice indices must be integers or undefined");
      return v.number;
    };
    const std::optional<double> start_v = part(slice.a), stop_v = part(slice.b),
                                step_v = part(slice.c);
    std::vector<std::string> chars;
    const bool is_string = object.is_string();
    if (is_string) chars = CodePoints(object.str);
    const double len = static_cast<double>(is_string ? chars.size() : object.array->items.size());
    const double step = step_v.value_or(1);
    const double direction = step > 0 ? 1 : step < 0 ? -1 : 0;
    double start, stop;
    if (direction >= 0) {
      start = start_v.value_or(0);
      start = start < 0 ? std::max(len + start, 0.0) : std::min(start, len);
      stop = stop_v.value_or(len);
      stop = stop < 0 ? std::max(len + stop, 0.0) : std::min(stop, len);
    } else {
      start = start_v.value_or(len - 1);
      start = start < 0 ? std::max(len + start, -1.0) : std::min(start, len - 1);
      stop = stop_v.value_or(-1);
      stop = stop < -1 ? std::max(len + stop, -1.0) : std::min(stop, len - 1);
    }
    std::vector<Value> items;
    std::string text;
    for (double i = start; direction * i < direction * stop; i += step) {
      const size_t idx = static_cast<size_t>(i);
      if (is_string) {
        AppendJs(&text, chars[idx]);
      } else {
        items.push_back(object.array->items[idx]);
      }
    }
    return is_string ? Value::String(std::move(text)) : Value::Array(std::move(items));
  }

  Value EvalMember(const Node& node, Env* env) {
    Value object = Eval(*node.a, env);
    Value property;
    if (node.flag) {
      if (node.b->type == NodeType::kSlice) return EvalSlice(object, *node.b, env);
      property = Eval(*node.b, env);
    } else if (node.b->type == NodeType::kIntLit) {
      property = Value::Int(node.b->number);
    } else {
      property = Value::String(node.b->name);
    }
    if (object.is_attr_container()) {
      if (!property.is_string())
        Fail(absl::StrCat("cannot access a property with a non-string: got ", property.TypeName()));
      if (const Value* v = object.object->Find(property.str)) return *v;
      if (object.is_object()) return ObjectBuiltin(object, property.str);
      return Value::Undefined();
    }
    if (object.is_array() || object.is_string()) {
      if (property.kind == Kind::kInt) {
        if (object.is_string()) {
          std::optional<std::string> c = StringAt(object.str, property.number);
          return c ? Value::String(*c) : Value::Undefined();
        }
        const double len = static_cast<double>(object.array->items.size());
        double i = std::trunc(property.number);
        if (i < 0) i += len;
        if (i < 0 || i >= len) return Value::Undefined();
        return object.array->items[static_cast<size_t>(i)];
      }
      if (property.is_string()) {
        if (object.is_string()) return StringBuiltin(object.str, property.str);
        if (property.str == "length")
          return Value::Int(static_cast<double>(object.array->items.size()));
        return Value::Undefined();
      }
      Fail(absl::StrCat("cannot access a property with a non-string/non-number: got ",
                        property.TypeName()));
    }
    if (!property.is_string())
      Fail(absl::StrCat("cannot access a property with a non-string: got ", property.TypeName()));
    return Value::Undefined();
  }

  Value StringBuiltin(const std::string& s, const std::string& name) {
    using Args = std::vector<Value>;
    const auto fn = [](auto f) {
      return Value::Function([f](Args& args, Env*) { return f(args); });
    };
    if (name == "length") return Value::Int(static_cast<double>(Utf16Length(s)));
    if (name == "upper") return fn([s](Args&) { return Value::String(JsToUpper(s)); });
    if (name == "lower") return fn([s](Args&) { return Value::String(JsToLower(s)); });
    if (name == "strip") return fn([s](Args&) { return Value::String(std::string(JsTrim(s))); });
    if (name == "lstrip")
      return fn([s](Args&) { return Value::String(std::string(JsTrimStart(s))); });
    if (name == "rstrip")
      return fn([s](Args&) { return Value::String(std::string(JsTrimEnd(s))); });
    if (name == "title") return fn([s](Args&) { return Value::String(TitleCase(s)); });
    if (name == "capitalize") {
      return fn([s](Args&) {
        // charAt(0).toUpperCase() + slice(1): a first character outside the
        // BMP is half a surrogate pair there, which has no case.
        if (s.empty()) return Value::String(s);
        uint32_t cp;
        const size_t len = Utf8Next(s, 0, &cp);
        if (cp >= 0x10000) return Value::String(s);
        return Value::String(JsToUpper(s.substr(0, len)) + s.substr(len));
      });
    }
    if (name == "startswith" || name == "endswith") {
      const bool starts = name == "startswith";
      return fn([s, starts, name](Args& args) {
        if (args.empty()) Fail(absl::StrCat(name, "() requires at least one argument"));
        const auto test = [&](const std::string& p) {
          return p.size() <= s.size() &&
                 (starts ? s.compare(0, p.size(), p) == 0
                         : s.compare(s.size() - p.size(), p.size(), p) == 0);
        };
        const Value& pattern = args[0];
        if (pattern.is_string()) return Value::Bool(test(pattern.str));
        if (pattern.is_array()) {
          for (const Value& item : pattern.array->items) {
            if (!item.is_string()) Fail(absl::StrCat(name, "() tuple elements must be strings"));
            if (test(item.str)) return Value::Bool(true);
          }
          return Value::Bool(false);
        }
        Fail(absl::StrCat(name, "() argument must be a string or tuple of strings"));
      });
    }
    if (name == "split") {
      return fn([s](Args& args) {
        const Value sep = args.size() > 0 ? args[0] : Value::Null();
        if (!sep.is_string() && !sep.is_null()) Fail("sep argument must be a string or null");
        const Value maxsplit = args.size() > 1 ? args[1] : Value::Int(-1);
        if (maxsplit.kind != Kind::kInt) Fail("maxsplit argument must be a number");
        const double max = maxsplit.number;
        std::vector<std::string> parts;
        if (sep.is_null()) {
          const std::string_view text = JsTrimStart(s);
          size_t i = 0;
          while (i < text.size()) {
            while (size_t len = JsSpaceLenAt(text, i)) i += len;
            if (i >= text.size()) break;
            const size_t start = i;
            while (i < text.size() && JsSpaceLenAt(text, i) == 0) {
              uint32_t cp;
              i += Utf8Next(text, i, &cp);
            }
            if (max != -1 && static_cast<double>(parts.size()) >= max) {
              parts.emplace_back(text.substr(start));
              break;
            }
            parts.emplace_back(text.substr(start, i - start));
          }
        } else {
          if (sep.str.empty()) Fail("empty separator");
          parts = SplitString(s, sep.str);
          if (max != -1 && static_cast<double>(parts.size()) > max) {
            const double len = static_cast<double>(parts.size());
            const size_t cut =
                static_cast<size_t>(max < 0 ? std::max(len + max, 0.0) : std::min(max, len));
            std::vector<std::string> tail(parts.begin() + cut, parts.end());
            parts.resize(cut);
            parts.push_back(Join(tail, sep.str));
          }
        }
        std::vector<Value> out;
        for (std::string& p : parts) out.push_back(Value::String(std::move(p)));
        return Value::Array(std::move(out));
      });
    }
    if (name == "replace") {
      return fn([this, s](Args& args) {
        if (args.size() < 2) Fail("replace() requires at least two arguments");
        if (!args[0].is_string() || !args[1].is_string())
          Fail("replace() arguments must be strings");
        Value count = Value::Null();
        if (args.size() > 2) {
          if (args[2].kind == Kind::kKwargs) {
            const Value* c = args[2].object->Find("count");
            count = c ? *c : Value::Null();
          } else {
            count = args[2];
          }
        }
        if (count.kind != Kind::kInt && !count.is_null())
          Fail("replace() count argument must be a number or null");
        std::string out =
            ReplaceString(s, args[0].str, args[1].str, count.is_null() ? NAN : count.number);
        CheckSize(out.size());
        return Value::String(std::move(out));
      });
    }
    return Value::Undefined();
  }

  static std::vector<Value> Items(const ObjectData& o) {
    std::vector<Value> out;
    for (const auto& [k, v] : o.entries) out.push_back(Value::Array({Value::String(k), v}));
    return out;
  }

  Value ObjectBuiltin(const Value& object, const std::string& name) {
    using Args = std::vector<Value>;
    std::shared_ptr<ObjectData> o = object.object;
    if (name == "get") {
      return Value::Function([o](Args& args, Env*) {
        const Value key = args.empty() ? Value::Undefined() : args[0];
        if (!key.is_string())
          Fail(absl::StrCat("object key must be a string: got ", key.TypeName()));
        if (const Value* v = o->Find(key.str)) return *v;
        return args.size() > 1 ? args[1] : Value::Null();
      });
    }
    if (name == "items")
      return Value::Function([o](Args&, Env*) { return Value::Array(Items(*o)); });
    if (name == "keys") {
      return Value::Function([o](Args&, Env*) {
        std::vector<Value> out;
        for (const auto& [k, v] : o->entries) out.push_back(Value::String(k));
        return Value::Array(std::move(out));
      });
    }
    if (name == "values") {
      return Value::Function([o](Args&, Env*) {
        std::vector<Value> out;
        for (const auto& [k, v] : o->entries) out.push_back(v);
        return Value::Array(std::move(out));
      });
    }
    if (name == "dictsort") {
      return Value::Function([o](Args& args, Env*) {
        const ObjectData* kwargs = nullptr;
        std::vector<Value> positional;
        for (const Value& a : args) {
          if (a.kind == Kind::kKwargs) {
            kwargs = a.object.get();
          } else {
            positional.push_back(a);
          }
        }
        const Value case_sensitive = positional.size() > 0
                                         ? positional[0]
                                         : KwargOr(kwargs, "case_sensitive", Value::Bool(false));
        if (case_sensitive.kind != Kind::kBool) Fail("case_sensitive must be a boolean");
        const Value by =
            positional.size() > 1 ? positional[1] : KwargOr(kwargs, "by", Value::String("key"));
        if (!by.is_string()) Fail("by must be a string");
        if (by.str != "key" && by.str != "value") Fail("by must be either 'key' or 'value'");
        const Value reverse =
            positional.size() > 2 ? positional[2] : KwargOr(kwargs, "reverse", Value::Bool(false));
        if (reverse.kind != Kind::kBool) Fail("reverse must be a boolean");
        std::vector<Value> items = Items(*o);
        const size_t index = by.str == "key" ? 0 : 1;
        std::stable_sort(items.begin(), items.end(), [&](const Value& a, const Value& b) {
          const int r =
              CompareValues(a.array->items[index], b.array->items[index], case_sensitive.boolean);
          return (reverse.boolean ? -r : r) < 0;
        });
        return Value::Array(std::move(items));
      });
    }
    return Value::Undefined();
  }

  bool RunTest(const std::string& name, const Value& v) {
    if (name == "boolean") return v.kind == Kind::kBool;
    if (name == "callable") return v.kind == Kind::kFunction;
    if (name == "odd" || name == "even") {
      if (v.kind != Kind::kInt) Fail(absl::StrCat("cannot ", name, " on ", v.TypeName()));
      const bool odd = std::fmod(v.number, 2) != 0;
      return name == "odd" ? odd : !odd;
    }
    if (name == "false") return v.kind == Kind::kBool && !v.boolean;
    if (name == "true") return v.kind == Kind::kBool && v.boolean;
    if (name == "none") return v.is_null();
    if (name == "string") return v.is_string();
    if (name == "number") return v.is_number();
    if (name == "integer") return v.kind == Kind::kInt;
    if (name == "iterable") return v.kind == Kind::kArray || v.is_string();
    if (name == "mapping") return v.is_object();
    if (name == "sequence") return v.is_array() || v.is_object() || v.is_string();
    if (name == "lower") return v.is_string() && v.str == JsToLower(v.str);
    if (name == "upper") return v.is_string() && v.str == JsToUpper(v.str);
    if (name == "defined") return !v.is_undefined();
    if (name == "undefined") return v.is_undefined();
    if (name == "equalto" || name == "eq")
      Fail(absl::StrCat("test '", name, "' needs an argument"));
    Fail(absl::StrCat("unknown test: ", name));
  }

  Value EvalTest(const Node& node, Env* env) {
    Value operand = Eval(*node.a, env);
    const bool result = RunTest(node.name, operand);
    return Value::Bool(node.flag ? !result : result);
  }

  // Array.prototype.join over raw values (null/undefined join as "").
  std::string JoinRaw(const std::vector<Value>& items, const std::string& sep) {
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
      if (i > 0) AppendJs(&out, sep);
      if (!items[i].is_null() && !items[i].is_undefined()) AppendJs(&out, ToJsString(items[i]));
      CheckSize(out.size());
    }
    return out;
  }

  std::string Indent(const std::string& s, const std::string& indent, bool first, bool blank) {
    std::vector<std::string> lines = SplitString(s, "\n");
    for (size_t i = 0; i < lines.size(); ++i) {
      if ((!first && i == 0) || (!blank && lines[i].empty())) continue;
      lines[i] = indent + lines[i];
    }
    std::string out = Join(lines, "\n");
    CheckSize(out.size());
    return out;
  }

  Value ApplyFilter(const Value& operand, const Node& filter, Env* env) {
    if (filter.type == NodeType::kIdentifier) return ApplySimpleFilter(operand, filter.name);
    if (filter.type != NodeType::kCall || filter.a->type != NodeType::kIdentifier)
      Fail("unknown filter");
    const std::string& name = filter.a->name;
    const NodeList& arg_nodes = filter.list;
    Value kwargs_value;  // keeps *kwargs alive
    const auto eval_args = [&](const ObjectData** kwargs) {
      std::vector<Value> args = EvalArgs(arg_nodes, env, /*always_kwargs=*/true);
      kwargs_value = std::move(args.back());
      args.pop_back();
      *kwargs = kwargs_value.object.get();
      return args;
    };
    const ObjectData* kwargs = nullptr;
    if (name == "tojson") {
      eval_args(&kwargs);
      const Value indent = KwargOr(kwargs, "indent", Value::Null());
      if (indent.kind != Kind::kInt && !indent.is_null()) Fail("if set, indent must be a number");
      const Value ensure_ascii = KwargOr(kwargs, "ensure_ascii", Value::Bool(false));
      if (ensure_ascii.kind != Kind::kBool) Fail("if set, ensure_ascii must be a boolean");
      const Value sort_keys = KwargOr(kwargs, "sort_keys", Value::Bool(false));
      if (sort_keys.kind != Kind::kBool) Fail("if set, sort_keys must be a boolean");
      const Value separators = KwargOr(kwargs, "separators", Value::Null());
      JsonOptions options;
      if (separators.is_array()) {
        const auto& s = separators.array->items;
        if (s.size() != 2 || !s[0].is_string() || !s[1].is_string())
          Fail("separators must be a tuple of two strings");
        options.separators = std::make_pair(s[0].str, s[1].str);
      } else if (!separators.is_null()) {
        Fail("if set, separators must be a tuple of two strings");
      }
      if (indent.kind == Kind::kInt) {
        if (indent.number < 0 || indent.number > 1024) Fail("invalid indent");
        options.indent = static_cast<int>(indent.number);
      }
      options.ensure_ascii = ensure_ascii.boolean;
      options.sort_keys = sort_keys.boolean;
      std::string out = ToJson(operand, options, 0, true);
      CheckSize(out.size());
      return Value::String(std::move(out));
    }
    if (name == "join") {
      std::vector<Value> items;
      if (operand.is_string()) {
        for (std::string& cp : CodePoints(operand.str))
          items.push_back(Value::String(std::move(cp)));
      } else if (operand.is_array()) {
        items = operand.array->items;
      } else {
        Fail(absl::StrCat("cannot apply filter 'join' to type: ", operand.TypeName()));
      }
      std::vector<Value> args = eval_args(&kwargs);
      const Value sep = !args.empty() ? args[0] : KwargOr(kwargs, "separator", Value::String(""));
      if (!sep.is_string()) Fail("separator must be a string");
      return Value::String(JoinRaw(items, sep.str));
    }
    if (name == "int" || name == "float") {
      std::vector<Value> args = eval_args(&kwargs);
      const bool is_int = name == "int";
      const Value fallback =
          !args.empty() ? args[0]
                        : KwargOr(kwargs, "default", is_int ? Value::Int(0) : Value::Float(0));
      if (operand.is_string()) {
        const double v = is_int ? JsParseInt(operand.str) : JsParseFloat(operand.str);
        if (std::isnan(v)) return fallback;
        return is_int ? Value::Int(v) : Value::Float(v);
      }
      if (operand.is_number()) return operand;
      if (operand.kind == Kind::kBool)
        return is_int ? Value::Int(operand.boolean) : Value::Float(operand.boolean);
      Fail(absl::StrCat("cannot apply filter '", name, "' to type: ", operand.TypeName()));
    }
    if (name == "default") {
      std::vector<Value> args = eval_args(&kwargs);
      const Value fallback = !args.empty() ? args[0] : Value::String("");
      const Value boolean =
          args.size() > 1 ? args[1] : KwargOr(kwargs, "boolean", Value::Bool(false));
      if (boolean.kind != Kind::kBool) Fail("`default` filter flag must be a boolean");
      if (operand.is_undefined() || (boolean.boolean && !Truthy(operand))) return fallback;
      return operand;
    }
    if (operand.is_array()) {
      const std::vector<Value>& items = operand.array->items;
      if (name == "sort") {
        std::vector<Value> args = eval_args(&kwargs);
        const Value reverse =
            args.size() > 0 ? args[0] : KwargOr(kwargs, "reverse", Value::Bool(false));
        if (reverse.kind != Kind::kBool) Fail("reverse must be a boolean");
        const Value case_sensitive =
            args.size() > 1 ? args[1] : KwargOr(kwargs, "case_sensitive", Value::Bool(false));
        if (case_sensitive.kind != Kind::kBool) Fail("case_sensitive must be a boolean");
        const Value attribute =
            args.size() > 2 ? args[2] : KwargOr(kwargs, "attribute", Value::Null());
        if (!attribute.is_string() && attribute.kind != Kind::kInt && !attribute.is_null()) {
          Fail("attribute must be a string, integer, or null");
        }
        const auto key = [&](const Value& item) {
          if (attribute.is_null()) return item;
          return AttributePath(
              item, attribute.is_string() ? attribute.str : JsNumberToString(attribute.number));
        };
        std::vector<Value> sorted = items;
        std::stable_sort(sorted.begin(), sorted.end(), [&](const Value& a, const Value& b) {
          const int r = CompareValues(key(a), key(b), case_sensitive.boolean);
          return (reverse.boolean ? -r : r) < 0;
        });
        return Value::Array(std::move(sorted));
      }
      if (name == "selectattr" || name == "rejectattr") {
        const bool select = name == "selectattr";
        for (const Value& item : items) {
          if (!item.is_attr_container())
            Fail(absl::StrCat("`", name, "` can only be applied to array of objects"));
        }
        for (const NodePtr& a : arg_nodes) {
          if (a->type != NodeType::kStringLit)
            Fail(absl::StrCat("arguments of `", name, "` must be strings"));
        }
        if (arg_nodes.empty()) Fail(absl::StrCat("`", name, "` needs an attribute name"));
        const std::string attr = arg_nodes[0]->name;
        const std::string test = arg_nodes.size() > 1 ? arg_nodes[1]->name : "";
        const std::optional<std::string> expected =
            arg_nodes.size() > 2 ? std::optional<std::string>(arg_nodes[2]->name) : std::nullopt;
        std::vector<Value> out;
        for (const Value& item : items) {
          const Value* a = item.object->Find(attr);
          bool result = false;
          if (a != nullptr) {
            if (test.empty()) {
              result = Truthy(*a);
            } else if (test == "equalto" || test == "eq") {
              if (!expected) Fail(absl::StrCat("test '", test, "' needs an argument"));
              result = StrictEquals(*a, Value::String(*expected));
            } else {
              result = RunTest(test, *a);
            }
          }
          if (result == select) out.push_back(item);
        }
        return Value::Array(std::move(out));
      }
      if (name == "map") {
        eval_args(&kwargs);
        const Value* attr = kwargs->Find("attribute");
        if (attr == nullptr)
          Fail("`map` expressions without `attribute` set are not currently supported");
        if (!attr->is_string()) Fail("attribute must be a string");
        const Value* fallback = kwargs->Find("default");
        std::vector<Value> out;
        for (const Value& item : items) {
          if (!item.is_attr_container()) Fail("items in map must be an object");
          Value v = AttributePath(item, attr->str);
          out.push_back(v.is_undefined() && fallback ? *fallback : v);
        }
        return Value::Array(std::move(out));
      }
      Fail(absl::StrCat("unknown ArrayValue filter: ", name));
    }
    if (operand.is_string()) {
      if (name == "indent") {
        std::vector<Value> args = eval_args(&kwargs);
        const Value width = args.size() > 0 ? args[0] : KwargOr(kwargs, "width", Value::Int(4));
        if (width.kind != Kind::kInt) Fail("width must be a number");
        if (width.number < 0 || width.number > 1024) Fail("invalid indent width");
        const Value first =
            args.size() > 1 ? args[1] : KwargOr(kwargs, "first", Value::Bool(false));
        const Value blank =
            args.size() > 2 ? args[2] : KwargOr(kwargs, "blank", Value::Bool(false));
        return Value::String(Indent(operand.str,
                                    std::string(static_cast<size_t>(width.number), ' '),
                                    RawTruthy(first), RawTruthy(blank)));
      }
      if (name == "replace") {
        std::vector<Value> args = EvalArgs(arg_nodes, env, /*always_kwargs=*/true);
        Value fn = StringBuiltin(operand.str, "replace");
        return (*fn.fn)(args, env);
      }
      Fail(absl::StrCat("unknown StringValue filter: ", name));
    }
    if (operand.is_object()) {
      Value fn = ObjectBuiltin(operand, name);
      if (fn.kind == Kind::kFunction) {
        std::vector<Value> args = EvalArgs(arg_nodes, env);
        return (*fn.fn)(args, env);
      }
      Fail(absl::StrCat("unknown ObjectValue filter: ", name));
    }
    Fail(absl::StrCat("cannot apply filter '", name, "' to type: ", operand.TypeName()));
  }

  Value ApplySimpleFilter(const Value& operand, const std::string& name) {
    if (name == "safe") return operand;
    if (name == "tojson") {
      std::string out = ToJson(operand, JsonOptions(), 0, true);
      CheckSize(out.size());
      return Value::String(std::move(out));
    }
    if (operand.is_array()) {
      const std::vector<Value>& items = operand.array->items;
      if (name == "list") return operand;
      // The reference yields a raw JavaScript undefined here, which fails
      // wherever it is used.
      if (name == "first" || name == "last") {
        if (items.empty()) Fail(absl::StrCat("'", name, "' of an empty list"));
        return name == "first" ? items.front() : items.back();
      }
      if (name == "length") return Value::Int(static_cast<double>(items.size()));
      if (name == "reverse") return Value::Array(std::vector<Value>(items.rbegin(), items.rend()));
      if (name == "sort") {
        std::vector<Value> sorted = items;
        std::stable_sort(sorted.begin(), sorted.end(), [](const Value& a, const Value& b) {
          return CompareValues(a, b, false) < 0;
        });
        return Value::Array(std::move(sorted));
      }
      if (name == "join") return Value::String(JoinRaw(items, ""));
      if (name == "string") return Value::String(ToJson(operand, JsonOptions(), 0, false));
      if (name == "unique") {
        std::vector<Value> out;
        for (const Value& item : items) {
          bool seen = false;
          for (const Value& o : out) {
            if (SameValueZero(o, item)) {
              seen = true;
              break;
            }
          }
          if (!seen) out.push_back(item);
        }
        return Value::Array(std::move(out));
      }
      Fail(absl::StrCat("unknown ArrayValue filter: ", name));
    }
    if (operand.is_string()) {
      if (name == "length" || name == "upper" || name == "lower" || name == "title" ||
          name == "capitalize") {
        Value b = StringBuiltin(operand.str, name);
        if (b.kind != Kind::kFunction) return b;
        std::vector<Value> none;
        return (*b.fn)(none, nullptr);
      }
      if (name == "trim") return Value::String(std::string(JsTrim(operand.str)));
      if (name == "indent") return Value::String(Indent(operand.str, "    ", false, false));
      if (name == "join" || name == "string") return operand;
      if (name == "int") {
        const double v = JsParseInt(operand.str);
        return Value::Int(std::isnan(v) ? 0 : v);
      }
      if (name == "float") {
        const double v = JsParseFloat(operand.str);
        return Value::Float(std::isnan(v) ? 0 : v);
      }
      Fail(absl::StrCat("unknown StringValue filter: ", name));
    }
    if (operand.is_number()) {
      if (name == "abs") {
        return operand.kind == Kind::kInt ? Value::Int(std::fabs(operand.number))
                                          : Value::Float(std::fabs(operand.number));
      }
      if (name == "int") return Value::Int(std::floor(operand.number));
      if (name == "float") return Value::Float(operand.number);
      if (name == "string") return Value::String(ToOutputString(operand));
      Fail(absl::StrCat("unknown NumericValue filter: ", name));
    }
    if (operand.is_object()) {
      if (name == "items") return Value::Array(Items(*operand.object));
      if (name == "length") return Value::Int(static_cast<double>(operand.object->size()));
      Value fn = ObjectBuiltin(operand, name);
      if (fn.kind == Kind::kFunction) {
        std::vector<Value> none;
        return (*fn.fn)(none, nullptr);
      }
      if (!fn.is_undefined()) return fn;
      Fail(absl::StrCat("unknown ObjectValue filter: ", name));
    }
    if (operand.kind == Kind::kBool) {
      if (name == "bool") return operand;
      if (name == "int") return Value::Int(operand.boolean ? 1 : 0);
      if (name == "float") return Value::Float(operand.boolean ? 1 : 0);
      if (name == "string") return Value::String(operand.boolean ? "true" : "false");
      Fail(absl::StrCat("unknown BooleanValue filter: ", name));
    }
    Fail(absl::StrCat("cannot apply filter '", name, "' to type: ", operand.TypeName()));
  }

  const JinjaLimits& limits_;
  int64_t steps_ = 0;
  int depth_ = 0;
  int call_depth_ = 0;
  size_t error_offset_ = 0;
  Value namespace_fn_;
  std::vector<std::shared_ptr<ObjectData>> namespaces_;
};

std::string Located(const std::string& source, size_t offset, const std::string& message) {
  int line, column;
  LineMap(source).Locate(offset, &line, &column);
  return absl::StrCat("line ", line, ", column ", column, ": ", message);
}

}  // namespace
}  // namespace jinja

absl::StatusOr<JinjaTemplate> JinjaTemplate::Parse(std::string_view source,
                                                   const JinjaLimits& limits) {
  auto program = std::make_shared<Program>();
  program->source = std::string(source);
  program->limits = limits;
  try {
    const jinja::Source src = jinja::Preprocess(program->source);
    jinja::Parser parser(jinja::Tokenize(src), src.End(), program->limits);
    program->body = parser.ParseProgram();
  } catch (const jinja::SyntaxError& e) {
    const std::string msg = jinja::Located(program->source, e.offset, e.message);
    return e.limit_exceeded ? absl::ResourceExhaustedError(msg) : absl::InvalidArgumentError(msg);
  } catch (const jinja::Error& e) {
    return absl::InvalidArgumentError(e.message);
  }
  JinjaTemplate t;
  t.program_ = std::move(program);
  return t;
}

absl::StatusOr<std::string> JinjaTemplate::Render(const nlohmann::ordered_json& context) const {
  if (program_ == nullptr) return absl::FailedPreconditionError("template not parsed");
  if (!context.is_object())
    return absl::InvalidArgumentError("render context must be a JSON object");
  jinja::Interpreter interpreter(program_->limits);
  jinja::Env global;
  try {
    interpreter.SetupGlobals(&global);
    for (const auto& [key, value] : context.items()) {
      if (global.vars.count(key) || key == "namespace") {
        return absl::InvalidArgumentError(
            absl::StrCat("context variable '", key, "' is already declared"));
      }
      global.vars[key] = jinja::FromJson(value);
    }
    return jinja::WellFormed(interpreter.EvalBlock(program_->body, &global));
  } catch (const jinja::Error& e) {
    std::string msg = e.message;
    if (e.line == -1) msg = jinja::Located(program_->source, interpreter.error_offset(), e.message);
    return e.limit_exceeded ? absl::ResourceExhaustedError(msg) : absl::InvalidArgumentError(msg);
  } catch (const jinja::BreakSignal&) {
    return absl::InvalidArgumentError("{% break %} outside a loop");
  } catch (const jinja::ContinueSignal&) {
    return absl::InvalidArgumentError("{% continue %} outside a loop");
  }
}

}  // namespace qatk::chat
