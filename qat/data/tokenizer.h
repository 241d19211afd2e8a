// SentencePiece BPE tokenizer (byte fallback; unk 0, bos 1, eos 2): trained by
// `qat tokenizer`, stored as tokenizer.model in every checkpoint.
// libsentencepiece lives in the module libqatk_spm.so (see
// sentencepiece_bridge.h), found via $QATK_SPM_MODULE, next to the running
// binary, or at its build-tree path.
#ifndef QATK_QAT_DATA_TOKENIZER_H_
#define QATK_QAT_DATA_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace qatk::data {

struct SpmApi;

class Tokenizer {
 public:
  // Loads a tokenizer.model file (kNotFound / kDataLoss naming the path).
  static absl::StatusOr<Tokenizer> Load(const std::string& path);
  static absl::StatusOr<Tokenizer> FromSerialized(std::string model_proto, const std::string& name);
  // Trains on the lines of `text_file` (docs/formats/gguf.md, "Tokenizer metadata" settings).
  static absl::StatusOr<Tokenizer> Train(const std::string& text_file, int vocab_size, int num_threads);

  absl::Status Save(const std::string& path) const;  // atomic

  std::vector<int32_t> Encode(const std::string& text) const;  // no BOS/EOS
  std::string Decode(const std::vector<int32_t>& ids) const;
  int vocab_size() const;
  int bos_id() const;
  int eos_id() const;
  int unk_id() const;
  std::string piece(int id) const;
  float score(int id) const;
  int token_type(int id) const;  // GGUF: 1 normal, 2 unknown, 3 control, 5 unused, 6 byte
  const std::string& serialized() const { return proto_; }
  // FNV-1a of the serialized model: identifies the tokenizer in token caches.
  uint64_t fingerprint() const;

 private:
  std::string proto_;
  const SpmApi* api_ = nullptr;
  std::shared_ptr<void> sp_;  // SentencePieceProcessor inside libqatk_spm.so
};

uint64_t Fnv1a64(const void* data, size_t n, uint64_t seed = 0xcbf29ce484222325ull);

}  // namespace qatk::data

#endif  // QATK_QAT_DATA_TOKENIZER_H_
