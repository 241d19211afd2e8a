#include "formats/tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

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
        out += class_depth > 0 ? "\\s\\x{85}" : "[\\s\\x{85}]";
      } else if (e == 'S') {
        if (class_depth > 0) {
          return absl::InvalidArgumentError(
              absl::StrCat("regex '", Shorten(p), "': \\S inside a character class is not supported"));
        }
        out += "[^\\s\\x{85}]";
      } else if (e == 'h' || e == 'H') {
        // Oniguruma's \h is a hex digit, PCRE2's horizontal space.
        return absl::InvalidArgumentError(
            absl::StrCat("regex '", Shorten(p), "': \\", std::string(1, e), " is not supported"));
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
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated->data()), translated->size(),
                                   PCRE2_UTF | PCRE2_UCP, &error_code, &error_offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(error_code, buf, sizeof(buf));
    return absl::InvalidArgumentError(absl::StrCat("regex '", Shorten(pattern), "' does not compile: ",
                                                   reinterpret_cast<const char*>(buf), " (at offset ",
                                                   error_offset, ")"));
  }
  // Without JIT support PCRE2 interprets the same code: slower, same matches.
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  std::unique_ptr<Regex> re(new Regex());
  re->pattern_ = std::string(pattern);
  re->code_ = code;
  re->match_limit_ = match_limit;
  return re;
}

Regex::~Regex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

absl::Status Regex::FindAll(absl::string_view text, std::vector<std::pair<size_t, size_t>>* out) const {
  MatchState& st = ThreadMatchState();
  pcre2_set_match_limit(st.context, match_limit_);
  pcre2_set_depth_limit(st.context, match_limit_);
  auto* code = static_cast<pcre2_code*>(code_);
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
