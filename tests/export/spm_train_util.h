// Test helper: trains a SentencePiece BPE model the way docs/formats/gguf.md ("Tokenizer metadata") says
// llama.cpp tokenizes identically. Std-only interface (sentencepiece's headers
// clash with Abseil's; see export/spm_vocab.h).
#ifndef QATK_TESTS_EXPORT_SPM_TRAIN_UTIL_H_
#define QATK_TESTS_EXPORT_SPM_TRAIN_UTIL_H_

#include <string>

namespace qatk::testing {

// Deterministic English-like text (sentences from a fixed word list).
std::string SyntheticText(int n_sentences, unsigned seed);

// Trains on `text_path` and writes `<model_prefix>.model`. Returns "" on success.
std::string TrainSpmBpe(const std::string& text_path, const std::string& model_prefix,
                        int vocab_size);

}  // namespace qatk::testing

#endif  // QATK_TESTS_EXPORT_SPM_TRAIN_UTIL_H_
