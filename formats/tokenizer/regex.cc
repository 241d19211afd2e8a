#include "formats/tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace qatk::tokenizer {
namespace {

std::string Shorten(absl::string_view s) {
  return s.size() <= 80 ? std::string(s) : absl::StrCat(s.substr(0, 77), "...");
}

// Per-thread matching state: the JIT stack and match data are not shareable
// between concurrent matches, the compiled code is.
struct MatchState {
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* jit_stack = nullptr;
  pcre2_match_data* data = nullptr;
  MatchState() {
    context = pcre2_match_context_create(nullptr);
    // Long whitespace or letter runs need more than the 32 KiB default.
    jit_stack = pcre2_jit_stack_create(64 * 1024, 8 * 1024 * 1024, nullptr);
    if (jit_stack != nullptr) pcre2_jit_stack_assign(context, nullptr, jit_stack);
    data = pcre2_match_data_create(1, nullptr);
  }
  ~MatchState() {
    pcre2_match_data_free(data);
    if (jit_stack != nullptr) pcre2_jit_stack_free(jit_stack);
    pcre2_match_context_free(context);
  }
};

MatchState& ThreadMatchState() {
  thread_local MatchState state;
  return state;
}

// Oniguruma as built into tokenizers 0.23 knows Unicode 16.0, the PCRE2 10.42
// of Debian 12 Unicode 14.0. These are the code points Oniguruma puts in
// \p{L} / \p{N} and PCRE2 does not (measured over every code point; none go
// the other way); listing them is harmless where PCRE2 already has them.
constexpr const char* kExtraLetters =
    "\\x{1C89}-\\x{1C8A}\\x{A7CB}-\\x{A7CD}\\x{A7DA}-\\x{A7DC}\\x{105C0}-\\x{105F3}"
    "\\x{10D4A}-\\x{10D65}\\x{10D6F}-\\x{10D85}\\x{10EC2}-\\x{10EC4}\\x{1123F}-\\x{11240}"
    "\\x{11380}-\\x{11389}\\x{1138B}\\x{1138E}\\x{11390}-\\x{113B5}\\x{113B7}\\x{113D1}\\x{113D3}"
    "\\x{11BC0}-\\x{11BE0}\\x{11F02}\\x{11F04}-\\x{11F10}\\x{11F12}-\\x{11F33}\\x{1342F}"
    "\\x{13441}-\\x{13446}\\x{13460}-\\x{143FA}\\x{16100}-\\x{1611D}\\x{16D40}-\\x{16D6C}"
    "\\x{18CFF}\\x{1B132}\\x{1B155}\\x{1DF25}-\\x{1DF2A}\\x{1E030}-\\x{1E06D}"
    "\\x{1E4D0}-\\x{1E4EB}\\x{1E5D0}-\\x{1E5ED}\\x{1E5F0}\\x{2B739}\\x{2EBF0}-\\x{2EE5D}"
    "\\x{31350}-\\x{323AF}";
constexpr const char* kExtraNumbers =
    "\\x{10D40}-\\x{10D49}\\x{116D0}-\\x{116E3}\\x{11BF0}-\\x{11BF9}\\x{11F50}-\\x{11F59}"
    "\\x{16130}-\\x{16139}\\x{16D70}-\\x{16D79}\\x{1CCF0}-\\x{1CCF9}\\x{1D2C0}-\\x{1D2D3}"
    "\\x{1E4F0}-\\x{1E4F9}\\x{1E5F1}-\\x{1E5FA}";
// Oniguruma's \s is the White_Space property: PCRE2's \s lacks U+0085 and
// has U+180E.
constexpr const char* kSpaces =
    "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}"
    "\\x{205F}\\x{3000}";

// The code points whose class differs between the exact (translated) and
// PCRE2's own pattern: U+0085, U+180E and the extra letters and digits,
// sorted. Text without any of them can use PCRE2's classes, which JIT better.
const std::vector<std::pair<uint32_t, uint32_t>>& ClassGaps() {
  static const auto* gaps = [] {
    auto* v = new std::vector<std::pair<uint32_t, uint32_t>>{{0x85, 0x85}, {0x180E, 0x180E}};
    for (absl::string_view t : {absl::string_view(kExtraLetters), absl::string_view(kExtraNumbers)}) {
      // "\x{A}-\x{B}\x{C}...": ranges and single code points.
      size_t i = 0;
      auto next = [&t, &i]() -> uint32_t {
        i = t.find("{", i) + 1;
        const uint32_t v = static_cast<uint32_t>(std::stoul(std::string(t.substr(i, t.find('}', i) - i)), nullptr, 16));
        i = t.find('}', i) + 1;
        return v;
      };
      while (t.find('{', i) != absl::string_view::npos) {
        const uint32_t lo = next();
        const uint32_t hi = i < t.size() && t[i] == '-' ? next() : lo;
        v->emplace_back(lo, hi);
      }
    }
    std::sort(v->begin(), v->end());
    return v;
  }();
  return *gaps;
}

bool HasClassGap(absl::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto& gaps = ClassGaps();
  size_t i = 0;
  while (i < text.size()) {
    if (p[i] < 0xC2) {  // ASCII (or a continuation byte) cannot be U+0085 or later
      ++i;
      continue;
    }
    uint32_t cp;
    const size_t len = p[i] < 0xE0 ? 2 : p[i] < 0xF0 ? 3 : 4;
    if (i + len > text.size()) return true;
    if (len == 2) {
      cp = ((p[i] & 0x1Fu) << 6) | (p[i + 1] & 0x3Fu);
    } else if (len == 3) {
      cp = ((p[i] & 0x0Fu) << 12) | ((p[i + 1] & 0x3Fu) << 6) | (p[i + 2] & 0x3Fu);
    } else {
      cp = ((p[i] & 0x07u) << 18) | ((p[i + 1] & 0x3Fu) << 12) | ((p[i + 2] & 0x3Fu) << 6) | (p[i + 3] & 0x3Fu);
    }
    i += len;
    auto it = std::upper_bound(gaps.begin(), gaps.end(), std::make_pair(cp, UINT32_MAX));
    if (it != gaps.begin() && std::prev(it)->second >= cp) return true;
  }
  return false;
}

pcre2_code* CompilePcre2(absl::string_view pattern, int* error_code, PCRE2_SIZE* error_offset) {
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP, error_code, error_offset, nullptr);
  // Without JIT support PCRE2 interprets the same code: slower, same matches.
  if (code != nullptr) pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  return code;
}

size_t Utf8Len(unsigned char lead) {
  return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

}  // namespace

absl::StatusOr<std::string> TranslateOnigurumaPattern(absl::string_view p) {
  std::string out;
  out.reserve(p.size() + 16);
  int class_depth = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      const char e = p[++i];
      if (e == 's') {
        absl::StrAppend(&out, class_depth > 0 ? "" : "[", kSpaces, class_depth > 0 ? "" : "]");
      } else if (e == 'S') {
        if (class_depth > 0) {
          return absl::InvalidArgumentError(
              absl::StrCat("regex '", Shorten(p), "': \\S inside a character class is not supported"));
        }
        absl::StrAppend(&out, "[^", kSpaces, "]");
      } else if (e == 'h' || e == 'H') {
        // Oniguruma's \h is a hex digit, PCRE2's horizontal space.
        return absl::InvalidArgumentError(
            absl::StrCat("regex '", Shorten(p), "': \\", std::string(1, e), " is not supported"));
      } else if ((e == 'p' || e == 'P') && i + 1 < p.size()) {
        // \p{L} / \p{N} (also \pL, \pN) get the letters and numbers PCRE2's
        // older tables lack; other properties pass through.
        std::string name;
        size_t end = i + 1;
        if (p[i + 1] == '{') {
          const size_t close = p.find('}', i + 2);
          if (close == absl::string_view::npos) {
            return absl::InvalidArgumentError(absl::StrCat("regex '", Shorten(p), "': unterminated \\p{"));
          }
          name = std::string(p.substr(i + 2, close - i - 2));
          end = close;
        } else {
          name = std::string(1, p[i + 1]);
        }
        const char* extra = name == "L" ? kExtraLetters : name == "N" ? kExtraNumbers : nullptr;
        if (extra == nullptr) {
          out += c;
          out += e;
          continue;
        }
        if (e == 'P' && class_depth > 0) {
          return absl::InvalidArgumentError(absl::StrCat(
              "regex '", Shorten(p), "': \\P{", name, "} inside a character class is not supported"));
        }
        if (class_depth > 0) {
          absl::StrAppend(&out, "\\p{", name, "}", extra);
        } else {
          absl::StrAppend(&out, e == 'P' ? "[^" : "[", "\\p{", name, "}", extra, "]");
        }
        i = end;
      } else {
        out += c;
        out += e;
      }
      continue;
    }
    if (c == '[') {
      if (class_depth > 0 && i + 1 < p.size() && p[i + 1] == ':') {
        // POSIX class [:name:] inside a bracket expression.
        size_t close = p.find(":]", i + 2);
        if (close != absl::string_view::npos) {
          absl::StrAppend(&out, p.substr(i, close + 2 - i));
          i = close + 1;
          continue;
        }
      }
      if (class_depth > 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("regex '", Shorten(p), "': nested character classes are not supported"));
      }
      ++class_depth;
      out += c;
      // A ']' right after '[' or '[^' is a literal.
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];
      continue;
    }
    if (c == ']' && class_depth > 0) {
      --class_depth;
    } else if (c == '&' && class_depth > 0 && i + 1 < p.size() && p[i + 1] == '&') {
      return absl::InvalidArgumentError(
          absl::StrCat("regex '", Shorten(p), "': class intersection (&&) is not supported"));
    }
    out += c;
  }
  return out;
}

absl::StatusOr<std::unique_ptr<Regex>> Regex::Compile(absl::string_view pattern, uint32_t match_limit) {
  auto translated = TranslateOnigurumaPattern(pattern);
  if (!translated.ok()) return translated.status();
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = CompilePcre2(*translated, &error_code, &error_offset);
  if (code == nullptr) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(error_code, buf, sizeof(buf));
    return absl::InvalidArgumentError(absl::StrCat("regex '", Shorten(pattern), "' does not compile: ",
                                                   reinterpret_cast<const char*>(buf), " (at offset ",
                                                   error_offset, ")"));
  }
  std::unique_ptr<Regex> re(new Regex());
  re->pattern_ = std::string(pattern);
  re->code_ = code;
  // The pattern as written, for texts without a class gap (identical matches
  // there); absent if it differs from the translation in nothing.
  if (*translated != pattern) re->native_code_ = CompilePcre2(pattern, &error_code, &error_offset);
  re->match_limit_ = match_limit;
  return re;
}

Regex::~Regex() {
  pcre2_code_free(static_cast<pcre2_code*>(code_));
  pcre2_code_free(static_cast<pcre2_code*>(native_code_));
}

absl::Status Regex::FindAll(absl::string_view text, std::vector<std::pair<size_t, size_t>>* out) const {
  MatchState& st = ThreadMatchState();
  pcre2_set_match_limit(st.context, match_limit_);
  pcre2_set_depth_limit(st.context, match_limit_);
  auto* code = static_cast<pcre2_code*>(native_code_ != nullptr && !HasClassGap(text) ? native_code_ : code_);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  // The onig crate's FindMatches: after an empty match the search resumes
  // one char later, and an empty match right at the previous match's end is
  // not reported.
  size_t pos = 0;
  bool have_last = false;
  size_t last_end = 0;
  while (pos <= text.size()) {
    const int rc = pcre2_match(code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, st.data, st.context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT || rc == PCRE2_ERROR_JIT_STACKLIMIT ||
          rc == PCRE2_ERROR_HEAPLIMIT) {
        return absl::ResourceExhaustedError(
            absl::StrCat("regex '", Shorten(pattern_), "' exceeded its match limit (", match_limit_,
                         ") on a ", text.size(), "-byte input"));
      }
      PCRE2_UCHAR buf[256];
      pcre2_get_error_message(rc, buf, sizeof(buf));
      return absl::InternalError(
          absl::StrCat("regex '", Shorten(pattern_), "': ", reinterpret_cast<const char*>(buf)));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(st.data);
    const size_t start = ov[0], end = ov[1];
    if (start == end) {
      pos = end < text.size() ? end + Utf8Len(static_cast<unsigned char>(text[end])) : text.size() + 1;
      if (have_last && last_end == end) continue;
    } else {
      pos = end;
    }
    have_last = true;
    last_end = end;
    out->emplace_back(start, end);
  }
  return absl::OkStatus();
}

}  // namespace qatk::tokenizer
