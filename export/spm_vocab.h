// SentencePiece vocabulary for the exporters, read straight from the
// .model protobuf: libsentencepiece is not linked here, because its embedded
// protobuf clashes with LibTorch's in the qat binary. Errors come back as a
// non-empty message string.
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

}  // namespace qatk::spm

#endif  // QATK_EXPORT_SPM_VOCAB_H_
