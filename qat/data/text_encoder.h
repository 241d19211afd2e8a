// The tokenizer of a model, as the data pipeline sees it: text to ids, the
// EOS id that separates documents, and a fingerprint of the tokenizer file
// that prepared datasets record (docs/formats/dataset.md).
//
// LoadModelEncoder picks the encoder from the files of a model folder:
// tokenizer.json (Hugging Face, formats/tokenizer/hf_tokenizer.h; needs the
// qatk_tokenizer library, built where PCRE2 and ICU are found) before
// tokenizer.model (SentencePiece, qat/data/tokenizer.h).
#ifndef QATK_QAT_DATA_TEXT_ENCODER_H_
#define QATK_QAT_DATA_TEXT_ENCODER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace qatk::data {

class TextEncoder {
 public:
  virtual ~TextEncoder() = default;
  // Ids of `text`; with `add_special` the tokenizer's own specials are added
  // (tokenizer.json: its post-processor, e.g. BOS for Llama 3 and Gemma 3;
  // tokenizer.model: BOS).
  virtual absl::StatusOr<std::vector<int32_t>> Encode(absl::string_view text, bool add_special) const = 0;
  virtual int32_t eos_id() const = 0;
  // FNV-1a 64 of the tokenizer file's bytes.
  virtual uint64_t fingerprint() const = 0;
  // The file the encoder was loaded from ("<dir>/tokenizer.json" ...).
  virtual const std::string& source() const = 0;
};

// FNV-1a 64 of the tokenizer file of a model folder: tokenizer.json if there
// is one, else tokenizer.model. `file` (optional) receives the path used.
absl::StatusOr<uint64_t> TokenizerFingerprint(const std::string& model_dir, std::string* file = nullptr);

// The encoder of a model folder (see above); errors name the folder and,
// for tokenizer_config.json / config.json, the key.
absl::StatusOr<std::unique_ptr<TextEncoder>> LoadModelEncoder(const std::string& model_dir);

// Whether this build reads tokenizer.json (the qatk_tokenizer library).
bool HaveHfTokenizer();

}  // namespace qatk::data

#endif  // QATK_QAT_DATA_TEXT_ENCODER_H_
