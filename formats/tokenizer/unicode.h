// UTF-8 helpers and Unicode normalization (ICU) for the tokenizer.
#ifndef QATK_FORMATS_TOKENIZER_UNICODE_H_
#define QATK_FORMATS_TOKENIZER_UNICODE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"

namespace qatk::tokenizer {

// Byte length of the UTF-8 sequence starting with `lead` (valid input).
inline size_t Utf8SeqLen(unsigned char lead) {
  return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

// Decodes the code point at s[*i] (valid UTF-8) and advances *i.
uint32_t DecodeUtf8(absl::string_view s, size_t* i);
void AppendUtf8(uint32_t cp, std::string* out);

bool IsValidUtf8(absl::string_view s);

// Rust's String::from_utf8_lossy: each maximal invalid subsequence becomes
// one U+FFFD.
std::string Utf8Lossy(absl::string_view s);

enum class NormalForm { kNFC, kNFD, kNFKC, kNFKD };

// Unicode normalization of valid UTF-8; *out is replaced.
absl::Status Normalize(NormalForm form, absl::string_view in, std::string* out);
// Full Unicode lowercase mapping (root locale, final sigma in context).
absl::Status Lowercase(absl::string_view in, std::string* out);

// Rust char::is_whitespace / regex \s (White_Space property).
bool IsWhiteSpace(uint32_t cp);
// Rust char::is_numeric: General_Category Nd, Nl or No.
bool IsNumeric(uint32_t cp);
// Rust regex \w: Alphabetic, Mark, Decimal_Number, Connector_Punctuation,
// Join_Control.
bool IsWordChar(uint32_t cp);

}  // namespace qatk::tokenizer

#endif  // QATK_FORMATS_TOKENIZER_UNICODE_H_
