// SentencePiece access for the exporters, behind a std-only interface.
//
// The Debian sentencepiece headers declare `namespace absl { using
// std::string_view; }`, which clashes with the system Abseil's own
// absl::string_view class. So sentencepiece is included only by
// spm_vocab.cc, which includes no Abseil header, and this header uses only
// the standard library. Errors come back as a non-empty message string.
#ifndef QATK_EXPORT_SPM_VOCAB_H_
#define QATK_EXPORT_SPM_VOCAB_H_

#include <cstdint>
#include <string>
#include <vector>

namespace qatk::spm {

// llama.cpp token types (llama.h / GGUF tokenizer.ggml.token_type).
enum TokenType : int32_t {
  kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6,
};

struct SpmVocab {
  std::vector<std::string> pieces;  // [V] in id order, e.g. "▁the", "<0x0A>"
  std::vector<float> scores;        // [V]
  std::vector<int32_t> types;       // [V] TokenType
  int32_t unk_id = -1, bos_id = -1, eos_id = -1, pad_id = -1;  // -1 = none
  // NormalizerSpec of the model (proto2 defaults when absent).
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = true;
  std::string normalizer_name;      // e.g. "identity", "nmt_nfkc"
};

// Loads `path` (a SentencePiece .model). Returns "" on success.
std::string LoadSpmVocab(const std::string& path, SpmVocab* out);

// Encodes `text` to ids with the model at `path` (no BOS/EOS). Returns "" on success.
std::string SpmEncode(const std::string& path, const std::string& text, std::vector<int>* ids);

}  // namespace qatk::spm

#endif  // QATK_EXPORT_SPM_VOCAB_H_
