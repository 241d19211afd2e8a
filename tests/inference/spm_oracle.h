// libsentencepiece behind a std-only interface: its headers carry their own
// absl::string_view and cannot share a TU with Abseil's.
#ifndef QATK_TESTS_INFERENCE_SPM_ORACLE_H_
#define QATK_TESTS_INFERENCE_SPM_ORACLE_H_

#include <string>
#include <vector>

namespace qatk::testing {

struct SpmPiece {
  std::string text;
  float score;
  int type;  // GGUF token_type: 1 normal, 2 unknown, 3 control, 5 unused, 6 byte
};

// Trains a BPE model with docs/formats/gguf.md, "Tokenizer metadata" settings; "" on success, else the error.
std::string TrainSpmBpe(const std::string& corpus, const std::string& prefix, int vocab);
// Pieces of a trained model, and Encode() ids; empty on failure.
std::vector<SpmPiece> SpmPieces(const std::string& model_file);
std::vector<int> SpmEncode(const std::string& model_file, const std::string& text);

}  // namespace qatk::testing

#endif  // QATK_TESTS_INFERENCE_SPM_ORACLE_H_
