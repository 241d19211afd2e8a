// The tokenizer of a GGUF or mobile file's vocabulary (tokenizer.ggml.*),
// run the way llama.cpp runs it:
//   "llama" (SentencePiece style): spaces become U+2581, an optional leading
//     space, then bigram merges of UTF-8 symbols by highest piece score
//     (ties: leftmost), and bytes <0xXX> for whatever is not in the
//     vocabulary;
//   "gpt2" (byte-level BPE): the pre-tokenizer regexes llama.cpp uses for
//     tokenizer.ggml.pre, then the merges by rank (HfTokenizer's BPE, built
//     from the file's tokens and merges). Needs the tokenizer.json library
//     (PCRE2 + ICU); without it Create fails for "gpt2" and names the build.
// Control and user-defined tokens are first cut out of the text, longest
// token first (llama.cpp's tokenizer_st_partition); control tokens only when
// parse_special.
#ifndef QATK_FORMATS_TOKENIZER_GGUF_TOKENIZER_H_
#define QATK_FORMATS_TOKENIZER_GGUF_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace qatk::tokenizer {

class HfTokenizer;

// Token types as in GGUF tokenizer.ggml.token_type.
enum GgufTokenType : int32_t {
  kTokNormal = 1, kTokUnknown = 2, kTokControl = 3, kTokUserDefined = 4, kTokUnused = 5,
  kTokByte = 6,
};

struct Vocab {
  std::string model = "llama";          // tokenizer.ggml.model: "llama" | "gpt2"
  std::string pre;                      // tokenizer.ggml.pre ("gpt2")
  std::vector<std::string> tokens;
  std::vector<float> scores;            // same length as tokens ("llama")
  std::vector<int32_t> types;           // same length as tokens
  std::vector<std::string> merges;      // "a b" in rank order ("gpt2")
  int32_t bos = 1, eos = 2, unk = 0;    // -1 = none
  bool add_bos = true;
  bool add_eos = false;
  bool add_space_prefix = true;
};

// The default add_bos_token llama.cpp assumes for a file without that key.
bool DefaultAddBos(const std::string& model, const std::string& pre);

// The pre-tokenizer regexes (Oniguruma dialect, applied in turn) llama.cpp
// uses for tokenizer.ggml.pre `pre`, and whether it looks whole words up
// before merging (ignore_merges); false if this runtime does not know `pre`.
bool PreTokenizerFor(const std::string& pre, std::vector<std::string>* regexes,
                     bool* ignore_merges);

class GgufTokenizer {
 public:
  // Errors name `name` (the model file): an unknown tokenizer.ggml.model or
  // pre-tokenizer, merges naming unknown tokens.
  static absl::StatusOr<GgufTokenizer> Create(Vocab vocab, const std::string& name);

  GgufTokenizer(GgufTokenizer&&) noexcept;
  GgufTokenizer& operator=(GgufTokenizer&&) noexcept;
  ~GgufTokenizer();

  // Ids of `text`: BOS first (EOS last) when add_special and the vocabulary
  // asks for it; control-token text becomes its id only when parse_special.
  // Fails only when a pre-tokenizer regex hits its match limit.
  absl::StatusOr<std::vector<int32_t>> Encode(absl::string_view text, bool add_special,
                                              bool parse_special) const;
  // The bytes of one token: U+2581 -> ' ' and <0xXX> -> byte ("llama"),
  // byte-level characters -> bytes ("gpt2"); control and unused -> "".
  std::string Piece(int32_t id) const;
  std::string Decode(const std::vector<int32_t>& ids) const;
  const Vocab& vocab() const { return vocab_; }

 private:
  GgufTokenizer() = default;
  int32_t ByteToken(uint8_t b) const;
  void EncodeSpm(absl::string_view raw, bool space_prefix, std::vector<int32_t>* out) const;

  Vocab vocab_;
  std::unordered_map<std::string, int32_t> index_;
  int32_t byte_tokens_[256] = {};
  std::vector<int32_t> special_;  // control / user-defined / unknown ids, longest text first
  std::unique_ptr<HfTokenizer> bpe_;  // "gpt2"
};

}  // namespace qatk::tokenizer

#endif  // QATK_FORMATS_TOKENIZER_GGUF_TOKENIZER_H_
