// The log-prob file of `qat-run perplexity --save-logits`: a base model's
// next-token log-probabilities at every scored position of a perplexity
// plan (formats/perplexity_plan.h), read back by `--kl-base FILE` so that
// the base model need not run again. Little-endian, no padding:
//
//   offset  size          field
//   0       8             magic "QATKLP1\0"
//   8       4  uint32     n_vocab
//   12      4  int32      bos
//   16      4  uint32     flags: bit 0 = BOS replaces each chunk's first token
//   20      4  uint32     reserved, 0
//   24      8  int64      ctx (chunk size)
//   32      8  int64      chunks
//   40      8  int64      n_tokens
//   48      4*n_tokens    int32 token ids of the whole text (BOS first)
//   then, for chunk k = 0..chunks-1 and position j = ctx/2..ctx-2, a record:
//           8  float64    NLL of the target token (TokenNll of the logits)
//           4*n_vocab     float32 log softmax of the logits (LogSoftmaxRow)
//
// Size: 48 + 4*n_tokens + chunks*(ctx-1-ctx/2)*(8 + 4*n_vocab) bytes (the
// Brown test split at ctx 512 and a 4096 vocabulary: ~600 MB).
#ifndef QATK_INFERENCE_LOGPROB_FILE_H_
#define QATK_INFERENCE_LOGPROB_FILE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "formats/util/file_io.h"
#include "inference/perplexity.h"

namespace qatk::inference {

// What a log-prob file must match: the plan and the text's tokens.
struct LogProbFileHeader {
  int n_vocab = 0;
  int32_t bos = 0;
  bool replace_bos = true;
  int64_t ctx = 0;
  int64_t chunks = 0;
};

// Streams records to "<path>.tmp.<pid>"; Commit renames it over `path`
// once every record of the plan was written.
class LogProbFileWriter {
 public:
  static absl::StatusOr<LogProbFileWriter> Create(const std::string& path, const LogProbFileHeader& h,
                                                  const std::vector<int32_t>& tokens);
  // Usable as the ScoredChunkFn of the model's run.
  absl::Status Add(const ScoredChunk& c);
  absl::Status Commit();

 private:
  AtomicFileWriter out_;
  LogProbFileHeader h_;
  int64_t records_ = 0;
  std::vector<float> row_;
};

class LogProbFileReader {
 public:
  // kInvalidArgument naming the file and the field when it is not a
  // log-prob file of this plan (vocabulary size, BOS, ctx, chunk count,
  // tokens of the text) or its size is not the layout's.
  static absl::StatusOr<LogProbFileReader> Open(const std::string& path, const LogProbFileHeader& expect,
                                                const std::vector<int32_t>& tokens);
  // The base rows of the chunk the model just ran (a BaseLogProbsFn).
  absl::Status Chunk(const ScoredChunk& c, std::vector<float>& logp, std::vector<double>& nll) const;

 private:
  MappedFile file_;
  LogProbFileHeader h_;
  uint64_t records_offset_ = 0;
};

}  // namespace qatk::inference

#endif  // QATK_INFERENCE_LOGPROB_FILE_H_
