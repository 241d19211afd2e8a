// PCRE2-backed regular expressions for tokenizer.json patterns.
//
// Hugging Face tokenizers compiles its patterns with Oniguruma; PCRE2 (UTF +
// UCP, JIT-compiled) accepts the same syntax for what tokenizer files use
// (\p{L}, \p{N}, (?i:...), lookahead). The one semantic gap, Oniguruma's \s
// also matching U+0085, is closed by rewriting \s / \S in the pattern.
#ifndef QATK_FORMATS_TOKENIZER_REGEX_H_
#define QATK_FORMATS_TOKENIZER_REGEX_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include "absl/strings/string_view.h"
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace qatk::tokenizer {

class Regex {
 public:
  // Backtracking budget per match attempt: far above what a tokenizer
  // pattern needs on any input, low enough that a catastrophic pattern fails
  // in well under a second.
  static constexpr uint32_t kDefaultMatchLimit = 10'000'000;

  // Compiles an Oniguruma-dialect pattern. Errors name the pattern and the
  // offending construct.
  static absl::StatusOr<std::unique_ptr<Regex>> Compile(absl::string_view pattern,
                                                        uint32_t match_limit = kDefaultMatchLimit);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Appends the [start, end) byte ranges of the successive non-overlapping
  // matches in `text` (valid UTF-8), leftmost first, like Oniguruma's
  // find_iter (onig crate): after an empty match the search resumes one
  // character later; an empty match at the previous match's end is dropped.
  // kResourceExhausted when the match limit is hit.
  absl::Status FindAll(absl::string_view text, std::vector<std::pair<size_t, size_t>>* out) const;

  const std::string& pattern() const { return pattern_; }

 private:
  Regex() = default;
  std::string pattern_;
  void* code_ = nullptr;         // pcre2_code_8 of the translated pattern
  void* native_code_ = nullptr;  // the pattern as written, see FindAll
  uint32_t match_limit_ = kDefaultMatchLimit;
};

// Rewrites an Oniguruma pattern into PCRE2 syntax (exposed for tests).
absl::StatusOr<std::string> TranslateOnigurumaPattern(absl::string_view pattern);

}  // namespace qatk::tokenizer

#endif  // QATK_FORMATS_TOKENIZER_REGEX_H_
