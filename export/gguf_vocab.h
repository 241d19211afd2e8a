// Tokenizer -> GGUF vocabulary (tokenizer.ggml.* and tokenizer.chat_template),
// the one place the exporters turn a checkpoint's tokenizer into llama.cpp
// metadata (docs/formats/gguf.md, "Tokenizer metadata").
//
// A checkpoint folder holding tokenizer.json is written the way llama.cpp's
// convert_hf_to_gguf.py writes it:
//   byte-level BPE (Llama 3, Qwen2/3, SmolLM2): model "gpt2", pre named by the
//     hash of the token ids of the converter's check text, tokens, token
//     types, merges;
//   SentencePiece-style BPE (Gemma 3): model "llama" with pieces, scores and
//     types derived from tokenizer.json (the converter reads tokenizer.model;
//     see the doc for the difference);
// plus the special ids and add_*_token flags from tokenizer.json,
// tokenizer_config.json and config.json, and the chat template of
// tokenizer_config.json or chat_template.jinja, copied verbatim. Otherwise
// the folder's tokenizer.model is written as before (model "llama").
#ifndef QATK_EXPORT_GGUF_VOCAB_H_
#define QATK_EXPORT_GGUF_VOCAB_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "formats/gguf/gguf.h"

namespace qatk::exporter {

struct GgufVocab {
  std::string source;               // the tokenizer file it was read from
  std::string model;                // tokenizer.ggml.model: "llama" | "gpt2"
  std::string pre;                  // tokenizer.ggml.pre ("" = not written)
  std::vector<std::string> tokens;  // [n_vocab]
  std::vector<float> scores;        // [n_vocab] or empty (not written)
  std::vector<int32_t> types;       // [n_vocab] GGUF token types
  std::vector<std::string> merges;  // "a b", rank order; empty = not written
  // Special ids and add_*_token flags in the order they are written; keys
  // are the GGUF key stems ("bos" -> tokenizer.ggml.bos_token_id).
  std::vector<std::pair<std::string, uint32_t>> special_ids;
  std::vector<std::pair<std::string, bool>> add_special;
  std::optional<bool> add_space_prefix;
  std::optional<bool> remove_extra_whitespaces;
  std::optional<std::string> chat_template;  // tokenizer.chat_template
  // Named templates (tokenizer.chat_template.NAME, listed in tokenizer.chat_templates).
  std::vector<std::pair<std::string, std::string>> named_chat_templates;

  // The id written under `key` ("bos", "eos", ...), if any.
  std::optional<uint32_t> SpecialId(const std::string& key) const;
  std::optional<bool> AddSpecial(const std::string& key) const;
};

// The vocabulary of checkpoint folder `dir` for a model of `vocab_size`
// embedding rows: from tokenizer.json when present, else tokenizer.model
// (checked against config.json's vocab_size, bos_token_id, eos_token_id).
// Errors name the file and the key: a tokenizer.json that does not parse, a
// byte-level pre-tokenizer llama.cpp does not know, token ids past
// vocab_size.
absl::StatusOr<GgufVocab> LoadCheckpointVocab(const std::string& dir, int64_t vocab_size,
                                              int64_t config_bos, int64_t config_eos);

// Writes the tokenizer.* keys of `v`.
absl::Status AddVocabKv(const GgufVocab& v, gguf::GgufWriter* w);

// The tokenizer.ggml.pre name llama.cpp's converter gives a byte-level BPE
// tokenizer whose encoding (special tokens added) of the converter's check
// text has SHA-256 `chkhsh` of its Python list form ("[1, 2]"); nullopt if
// unknown. Exposed for tests.
std::optional<std::string> PreNameForHash(const std::string& chkhsh);
// The converter's check text (get_vocab_base_pre's chktxt).
const std::string& PreCheckText();
// Lower-case hex SHA-256 of `data`.
std::string Sha256Hex(const std::string& data);

}  // namespace qatk::exporter

#endif  // QATK_EXPORT_GGUF_VOCAB_H_
