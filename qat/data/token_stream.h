// Token streams of a text file, cached next to it, and the deterministic batch
// sampler the trainer draws from.
//
// Cache file "<text>.tokens" (little-endian):
//   0  char[4] magic "QTKN"
//   4  u32     version (1)
//   8  u64     FNV-1a of the text bytes
//   16 u64     text size in bytes
//   24 u64     tokenizer fingerprint (FNV-1a of tokenizer.model)
//   32 u64     n, the number of tokens
//   40 u32[n]  token ids
// A cache whose header does not match the text or the tokenizer is rebuilt.
// Training streams (documents = true) are cached in "<text>.doc-tokens", the
// same layout.
#ifndef QATK_QAT_DATA_TOKEN_STREAM_H_
#define QATK_QAT_DATA_TOKEN_STREAM_H_

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "qat/data/prepared.h"
#include "qat/data/tokenizer.h"

namespace qatk::data {

// The whole text encoded in one call (no BOS), as llama.cpp tokenizes it:
// what evaluation reads. With `documents` (training streams), the text's
// documents (the blocks between blank lines, "\n\n") are encoded one by one
// with the EOS id between them; a text without blank lines gives the same
// ids either way. `cache_hit` (optional) reports whether the cache was used.
absl::StatusOr<std::vector<int32_t>> LoadTokenStream(const std::string& text_path,
                                                     const Tokenizer& tokenizer,
                                                     bool* cache_hit = nullptr,
                                                     bool documents = false);

// Draws windows of seq+1 tokens from a stream: the stream is cut into
// W = (n-1)/seq non-overlapping windows, each epoch visits them in a
// permutation seeded by (seed, epoch). The state is one counter, so resuming
// at `position` reproduces the same batches. The first input token of every
// window is replaced by BOS, as in llama.cpp's perplexity chunks.
class BatchSampler {
 public:
  BatchSampler(const std::vector<int32_t>* stream, int64_t seq, uint64_t seed, int32_t bos_id);

  // inputs/targets: [B*T] row-major (B = batch, T = seq).
  void Next(int64_t batch, std::vector<int64_t>* inputs, std::vector<int64_t>* targets);

  int64_t num_windows() const { return num_windows_; }
  uint64_t position() const { return position_; }  // windows drawn so far
  void set_position(uint64_t p) { position_ = p; }

 private:
  void EnsureEpoch(uint64_t epoch);

  const std::vector<int32_t>* stream_;
  int64_t seq_;
  uint64_t seed_;
  int32_t bos_;
  int64_t num_windows_;
  uint64_t position_ = 0;
  uint64_t perm_epoch_ = UINT64_MAX;
  std::vector<int64_t> perm_;
};

// Targets that are not trained on (masked or padding), as LibTorch's
// cross_entropy ignore_index.
inline constexpr int64_t kIgnoreTarget = -100;

// Draws batches from the windows of a split (BuildWindows) in the same
// seeded per-epoch permutation as BatchSampler: over a text stream with
// Packing::kStream and `bos_first` it gives BatchSampler's batches. Targets
// whose mask is 0 are kIgnoreTarget; a window shorter than seq+1 (the end of
// a document with Packing::kDocument) is padded with EOS inputs and
// kIgnoreTarget targets. `bos_first` replaces the first input with BOS (text
// streams, as llama.cpp's chunks); prepared documents carry their own BOS.
class WindowSampler {
 public:
  WindowSampler(const PreparedSplit* split, std::vector<Window> windows, int64_t seq, uint64_t seed,
                std::optional<int32_t> bos_first);

  void Next(int64_t batch, std::vector<int64_t>* inputs, std::vector<int64_t>* targets);
  // One window into inputs[0..seq) and targets[0..seq), as Next does.
  static void Fill(const PreparedSplit& split, const Window& w, int64_t seq, std::optional<int32_t> bos_first,
                   int64_t* inputs, int64_t* targets);

  int64_t num_windows() const { return static_cast<int64_t>(windows_.size()); }
  uint64_t position() const { return position_; }
  void set_position(uint64_t p) { position_ = p; }

 private:
  const PreparedSplit* split_;
  std::vector<Window> windows_;
  int64_t seq_;
  uint64_t seed_;
  std::optional<int32_t> bos_first_;
  uint64_t position_ = 0;
  uint64_t perm_epoch_ = UINT64_MAX;
  std::vector<int64_t> perm_;
};

}  // namespace qatk::data

#endif  // QATK_QAT_DATA_TOKEN_STREAM_H_
