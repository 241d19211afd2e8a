#include "qat/data/token_stream.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "formats/util/file_io.h"
#include "formats/util/status_macros.h"

namespace qatk::data {
namespace {

constexpr char kMagic[4] = {'Q', 'T', 'K', 'N'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderBytes = 40;

struct Header {
  uint64_t text_hash, text_size, tok_hash, n;
};

template <typename T>
T ReadLe(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));  // hosts are little-endian (x86-64, aarch64)
  return v;
}

// Returns the cached ids when the header matches, else an empty optional.
bool ReadCache(const std::string& path, const Header& want, std::vector<int32_t>* ids) {
  auto file = MappedFile::Open(path);
  if (!file.ok() || file->size() < kHeaderBytes) return false;
  const uint8_t* p = file->data();
  if (std::memcmp(p, kMagic, 4) != 0 || ReadLe<uint32_t>(p + 4) != kVersion) return false;
  if (ReadLe<uint64_t>(p + 8) != want.text_hash || ReadLe<uint64_t>(p + 16) != want.text_size ||
      ReadLe<uint64_t>(p + 24) != want.tok_hash) {
    return false;
  }
  const uint64_t n = ReadLe<uint64_t>(p + 32);
  if (n > (file->size() - kHeaderBytes) / 4 || kHeaderBytes + 4 * n != file->size()) return false;
  ids->resize(n);
  std::memcpy(ids->data(), p + kHeaderBytes, 4 * n);
  return true;
}

absl::Status WriteCache(const std::string& path, const Header& h, const std::vector<int32_t>& ids) {
  ASSIGN_OR_RETURN(AtomicFileWriter w, AtomicFileWriter::Create(path));
  uint8_t header[kHeaderBytes];
  std::memcpy(header, kMagic, 4);
  std::memcpy(header + 4, &kVersion, 4);
  const uint64_t fields[4] = {h.text_hash, h.text_size, h.tok_hash, ids.size()};
  std::memcpy(header + 8, fields, sizeof(fields));
  RETURN_IF_ERROR(w.Write(header, kHeaderBytes));
  RETURN_IF_ERROR(w.Write(ids.data(), ids.size() * 4));
  return w.Commit();
}

// The documents of `text` (blocks between "\n\n"; blank-only blocks
// skipped) encoded one by one, EOS between them.
std::vector<int32_t> EncodeDocuments(const std::string& text, const Tokenizer& tokenizer) {
  std::vector<int32_t> ids;
  for (absl::string_view doc : absl::StrSplit(text, "\n\n", absl::SkipWhitespace())) {
    std::vector<int32_t> d = tokenizer.Encode(std::string(doc));
    if (d.empty()) return {};
    if (!ids.empty()) ids.push_back(tokenizer.eos_id());
    ids.insert(ids.end(), d.begin(), d.end());
  }
  return ids;
}

// The window order of an epoch: Fisher-Yates with our own index draw
// (std::shuffle's algorithm is implementation-defined, this one is the same
// everywhere).
void Permutation(int64_t n, uint64_t seed, uint64_t epoch, std::vector<int64_t>* perm) {
  perm->resize(n);
  std::iota(perm->begin(), perm->end(), int64_t{0});
  std::mt19937_64 rng(seed * 0x9e3779b97f4a7c15ull + epoch + 1);
  for (int64_t i = n - 1; i > 0; --i) {
    const int64_t j = static_cast<int64_t>(rng() % static_cast<uint64_t>(i + 1));
    std::swap((*perm)[i], (*perm)[j]);
  }
}

}  // namespace

absl::StatusOr<std::vector<int32_t>> LoadTokenStream(const std::string& text_path,
                                                     const Tokenizer& tokenizer, bool* cache_hit,
                                                     bool documents) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(text_path));
  const Header want{Fnv1a64(text.data(), text.size()), text.size(), tokenizer.fingerprint(), 0};
  const std::string cache = text_path + (documents ? ".doc-tokens" : ".tokens");
  std::vector<int32_t> ids;
  if (ReadCache(cache, want, &ids)) {
    if (cache_hit) *cache_hit = true;
    return ids;
  }
  if (cache_hit) *cache_hit = false;
  ids = documents ? EncodeDocuments(text, tokenizer) : tokenizer.Encode(text);
  if (ids.empty() && !text.empty()) {
    return absl::InternalError(absl::StrCat("tokenizing '", text_path, "' failed"));
  }
  // A read-only data folder still works, just without the cache.
  (void)WriteCache(cache, want, ids);
  return ids;
}

BatchSampler::BatchSampler(const std::vector<int32_t>* stream, int64_t seq, uint64_t seed,
                           int32_t bos_id)
    : stream_(stream), seq_(seq), seed_(seed), bos_(bos_id) {
  num_windows_ = stream->size() > 1 ? static_cast<int64_t>(stream->size() - 1) / seq : 0;
}

void BatchSampler::EnsureEpoch(uint64_t epoch) {
  if (epoch == perm_epoch_) return;
  Permutation(num_windows_, seed_, epoch, &perm_);
  perm_epoch_ = epoch;
}

void BatchSampler::Next(int64_t batch, std::vector<int64_t>* inputs, std::vector<int64_t>* targets) {
  inputs->resize(batch * seq_);
  targets->resize(batch * seq_);
  for (int64_t b = 0; b < batch; ++b, ++position_) {
    EnsureEpoch(position_ / num_windows_);
    const int64_t start = perm_[position_ % num_windows_] * seq_;
    const int32_t* w = stream_->data() + start;  // seq+1 tokens
    for (int64_t t = 0; t < seq_; ++t) {
      (*inputs)[b * seq_ + t] = t == 0 ? bos_ : w[t];
      (*targets)[b * seq_ + t] = w[t + 1];
    }
  }
}

WindowSampler::WindowSampler(const PreparedSplit* split, std::vector<Window> windows, int64_t seq,
                             uint64_t seed, std::optional<int32_t> bos_first)
    : split_(split), windows_(std::move(windows)), seq_(seq), seed_(seed), bos_first_(bos_first) {}

void WindowSampler::Fill(const PreparedSplit& split, const Window& w, int64_t seq,
                         std::optional<int32_t> bos_first, int64_t* inputs, int64_t* targets) {
  std::fill(inputs, inputs + seq, split.eos_id);
  std::fill(targets, targets + seq, kIgnoreTarget);
  const int32_t* ids = split.ids.data() + w.start;
  const uint8_t* mask = split.mask.data() + w.start;
  for (int64_t t = 0; t + 1 < static_cast<int64_t>(w.len); ++t) {
    inputs[t] = t == 0 && bos_first ? *bos_first : ids[t];
    if (mask[t + 1]) targets[t] = ids[t + 1];
  }
}

void WindowSampler::Next(int64_t batch, std::vector<int64_t>* inputs, std::vector<int64_t>* targets) {
  inputs->resize(batch * seq_);
  targets->resize(batch * seq_);
  const int64_t n = num_windows();
  for (int64_t b = 0; b < batch; ++b, ++position_) {
    const uint64_t epoch = position_ / n;
    if (epoch != perm_epoch_) {
      Permutation(n, seed_, epoch, &perm_);
      perm_epoch_ = epoch;
    }
    Fill(*split_, windows_[perm_[position_ % n]], seq_, bos_first_, inputs->data() + b * seq_,
         targets->data() + b * seq_);
  }
}

}  // namespace qatk::data
