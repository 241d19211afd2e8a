// TrainSpmBpe (tests/export/spm_train_util.h) for tests that link LibTorch:
// trains through data::Tokenizer, whose sentencepiece lives in the
// dlopened qatk_spm module (linking libsentencepiece next to LibTorch crashes
// at load: both carry protobuf). Same settings (docs/formats/gguf.md, "Tokenizer metadata").
#include "qat/data/tokenizer.h"
#include "formats/util/file_io.h"
#include "tests/export/spm_train_util.h"

namespace qatk::testing {

std::string TrainSpmBpe(const std::string& text_path, const std::string& model_prefix,
                        int vocab_size) {
  absl::StatusOr<data::Tokenizer> t = data::Tokenizer::Train(text_path, vocab_size, 1);
  if (!t.ok()) return std::string(t.status().message());
  const absl::Status s = WriteFileAtomic(model_prefix + ".model", t->serialized());
  return s.ok() ? "" : std::string(s.message());
}

}  // namespace qatk::testing
