// Hugging Face tokenizer.json (BPE models) without LibTorch or Python.
//
// Implements what the `tokenizers` library does for the files shipped by
// Llama 3.x, Qwen2.5/Qwen3, SmolLM2 (byte-level BPE) and Gemma 3 (BPE with
// byte_fallback, SentencePiece-style spaces), with matching ids and decodes:
//   added tokens (special/normalized/lstrip/rstrip/single_word), matched
//     before pre-tokenization, longest first;
//   normalizers NFC/NFD/NFKC/NFKD, Lowercase, Strip, Replace, Prepend, Sequence;
//   pre-tokenizers Split (regex or string, every behavior, invert),
//     ByteLevel, Metaspace, Digits, Sequence;
//   model BPE (merges as "a b" or ["a","b"], byte_fallback, ignore_merges,
//     unk_token/fuse_unk, continuing_subword_prefix, end_of_word_suffix);
//   post-processors TemplateProcessing, ByteLevel, Sequence;
//   decoders ByteLevel, ByteFallback, Fuse, Strip, Replace, Metaspace, Sequence.
// Anything else in the file is an error naming it; nothing is skipped.
//
// Regexes run on PCRE2 (UTF + UCP, JIT) with a match limit: a pattern that
// backtracks catastrophically makes Encode fail instead of hang.
#ifndef QATK_FORMATS_TOKENIZER_HF_TOKENIZER_H_
#define QATK_FORMATS_TOKENIZER_HF_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include "absl/strings/string_view.h"
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace qatk::tokenizer {

// GGUF's tokenizer.ggml.token_type values.
enum class TokenType : int32_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,      // special added tokens
  kUserDefined = 4,  // non-special added tokens
  kUnused = 5,       // ids no token string maps to
  kByte = 6,         // <0xNN> tokens of byte_fallback models
};

struct HfTokenizerOptions {
  // PCRE2 match limit for every pattern in the file (see regex.h).
  uint32_t regex_match_limit = 10'000'000;
};

class HfTokenizer {
 public:
  // Errors name the file (or `name`) and the field: bad JSON, missing or
  // mistyped fields, merges naming unknown tokens, unsupported types.
  static absl::StatusOr<HfTokenizer> FromFile(const std::string& path, const HfTokenizerOptions& options = {});
  static absl::StatusOr<HfTokenizer> FromJson(absl::string_view json, const std::string& name,
                                              const HfTokenizerOptions& options = {});

  HfTokenizer(HfTokenizer&&) noexcept;
  HfTokenizer& operator=(HfTokenizer&&) noexcept;
  ~HfTokenizer();

  // Token ids of `text`, as tokenizers' encode(text, add_special_tokens).
  // Invalid UTF-8 is read as Rust's from_utf8_lossy does (U+FFFD per bad
  // sequence). Fails only when a regex hits its match limit. Thread-safe.
  absl::StatusOr<std::vector<int32_t>> Encode(absl::string_view text, bool add_special_tokens) const;

  // tokenizers' decode(ids, skip_special_tokens): unknown ids are dropped.
  std::string Decode(absl::Span<const int32_t> ids, bool skip_special_tokens) const;

  // Largest id + 1 over the model vocab and the added tokens.
  int32_t vocab_size() const;
  // Token string of `id` as stored in the file (byte-level tokens keep their
  // mapped form, e.g. "Ġthe"); "[PAD<id>]" for ids nothing maps to.
  const std::string& token(int32_t id) const;
  std::optional<int32_t> TokenToId(absl::string_view token) const;
  TokenType token_type(int32_t id) const;
  bool is_special(int32_t id) const;
  // Ids of the added tokens marked "special", ascending.
  const std::vector<int32_t>& special_ids() const;
  // The special token the post-processor template puts first (BOS), if any.
  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> unk_id() const;
  // BPE merges in rank order.
  const std::vector<std::pair<std::string, std::string>>& merges() const;
  // Byte-level BPE (GPT-2 style: Llama 3, Qwen, SmolLM2) vs SentencePiece-
  // style BPE (byte_fallback, "▁" for spaces: Gemma, Llama 2).
  bool is_byte_level() const;
  bool is_sentencepiece_style() const;

 private:
  struct Impl;
  explicit HfTokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace qatk::tokenizer

#endif  // QATK_FORMATS_TOKENIZER_HF_TOKENIZER_H_
