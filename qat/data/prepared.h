// Prepared datasets (`qat data --jsonl`): token ids, a per-token loss mask
// and document boundaries, per split, with the fingerprint of the tokenizer
// that made them. Format: docs/formats/dataset.md. Also the windows the
// trainer draws from a split (stream or document packing).
//
// LibTorch-free.
#ifndef QATK_QAT_DATA_PREPARED_H_
#define QATK_QAT_DATA_PREPARED_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "qat/data/jsonl.h"
#include "qat/data/text_encoder.h"

namespace qatk::data {

struct PreparedSplit {
  uint64_t tokenizer_fingerprint = 0;
  int32_t eos_id = 0;
  std::vector<int32_t> ids;
  std::vector<uint8_t> mask;         // one per id: 1 = trained on as a target
  std::vector<uint64_t> doc_starts;  // first token of each document, ascending, [0] = 0

  void Append(const TokenizedDoc& d);
  uint64_t num_docs() const { return doc_starts.size(); }
  uint64_t trained_tokens() const;
};

// One split file (written to a temporary name and renamed).
absl::Status WritePreparedSplit(const std::string& path, const PreparedSplit& split);
// Errors name the file and the offset (kDataLoss) of what is wrong.
absl::StatusOr<PreparedSplit> ReadPreparedSplit(const std::string& path);

// Whether `dir` holds a prepared dataset (dataset.json).
bool IsPreparedDataset(const std::string& dir);

struct PrepareJsonlOptions {
  std::vector<std::string> files;       // JSONL
  // Plain text: files, or folders whose *.txt files (recursively, sorted by
  // path) are taken; each file is one document, trained on every token.
  std::vector<std::string> text_files;
  std::string out;
  double valid_fraction = 0.05;
  JsonlOptions line;
  std::string model;  // recorded in dataset.json
};

// Reads every line of every JSONL file (blank lines skipped), then every text
// file, into documents, sends
// a `valid_fraction` of them (spread evenly, in order) to the valid split and
// writes OUT/train.qtd, OUT/valid.qtd (when it has documents) and
// OUT/dataset.json. The folder is staged under OUT.tmp-<pid> and renamed into
// place, so a failure leaves OUT as it was. Errors name the file and line.
absl::Status PrepareJsonl(const PrepareJsonlOptions& options, const TextEncoder& encoder);

// How the trainer cuts a split into windows of up to seq+1 tokens.
enum class Packing {
  kStream,    // the split as one stream: windows at 0, seq, 2*seq, ... (documents
              // are separated by their EOS, a window may hold several)
  kDocument,  // windows inside one document: at its start, start+seq, ...; the
              // last one of a document is shorter (padded and masked when drawn)
};
absl::StatusOr<Packing> ParsePacking(const std::string& name);  // "stream" | "doc"

struct Window {
  uint64_t start;
  uint32_t len;  // tokens taken from the split (2 .. seq+1)
};
// Windows with at least one trained target (mask 1 among tokens 1..len-1);
// `dropped` (optional) counts those left out for having none.
std::vector<Window> BuildWindows(const PreparedSplit& split, int64_t seq, Packing packing,
                                 int64_t* dropped = nullptr);

// A token stream as a split with every mask 1; a document ends after each
// `eos` (the streams of LoadTokenStream with documents = true).
PreparedSplit SplitFromStream(std::vector<int32_t> ids, int32_t eos);

}  // namespace qatk::data

#endif  // QATK_QAT_DATA_PREPARED_H_
