// The SentencePiece-style ("llama" tokenizer.ggml.model) tokenizer, built
// from the vocabulary stored in the model file, following llama.cpp's SPM
// algorithm: spaces become U+2581, an optional leading space, then bigram
// merges of UTF-8 symbols by highest piece score (ties: leftmost), and
// bytes <0xXX> for whatever is not in the vocabulary.
#ifndef QATK_INFERENCE_TOKENIZER_H_
#define QATK_INFERENCE_TOKENIZER_H_

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/strings/string_view.h"

namespace qatk::inference {

// Token types as in GGUF tokenizer.ggml.token_type.
enum TokenType : int32_t {
  kTokNormal = 1, kTokUnknown = 2, kTokControl = 3, kTokUserDefined = 4, kTokUnused = 5,
  kTokByte = 6,
};

struct Vocab {
  std::vector<std::string> tokens;
  std::vector<float> scores;   // same length as tokens
  std::vector<int32_t> types;  // same length as tokens
  int32_t bos = 1, eos = 2, unk = 0;
  bool add_bos = true;
  bool add_space_prefix = true;
};

class Tokenizer {
 public:
  explicit Tokenizer(const Vocab& vocab);

  // Ids of `text` (BOS first when add_bos && vocab.add_bos).
  std::vector<int32_t> Encode(absl::string_view text, bool add_bos) const;
  // The bytes of one token: U+2581 -> ' ', <0xXX> -> byte, control -> "".
  std::string Piece(int32_t id) const;
  std::string Decode(const std::vector<int32_t>& ids) const;
  const Vocab& vocab() const { return vocab_; }

 private:
  int32_t ByteToken(uint8_t b) const;

  Vocab vocab_;
  std::unordered_map<std::string, int32_t> index_;
  int32_t byte_tokens_[256];
};

}  // namespace qatk::inference

#endif  // QATK_INFERENCE_TOKENIZER_H_
