#include "inference/logprob_file.h"

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "formats/util/status_macros.h"

namespace qatk::inference {
namespace {

constexpr char kMagic[8] = {'Q', 'A', 'T', 'K', 'L', 'P', '1', '\0'};
constexpr uint64_t kHeaderBytes = 48;

int64_t ScoredPerChunk(int64_t ctx) { return ctx - 1 - ctx / 2; }

template <typename T>
void Put(std::string& s, T v) {
  s.append(reinterpret_cast<const char*>(&v), sizeof(T));
}

template <typename T>
T Get(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

}  // namespace

absl::StatusOr<LogProbFileWriter> LogProbFileWriter::Create(const std::string& path, const LogProbFileHeader& h,
                                                            const std::vector<int32_t>& tokens) {
  LogProbFileWriter w;
  ASSIGN_OR_RETURN(w.out_, AtomicFileWriter::Create(path));
  w.h_ = h;
  std::string head(kMagic, sizeof(kMagic));
  Put<uint32_t>(head, static_cast<uint32_t>(h.n_vocab));
  Put<int32_t>(head, h.bos);
  Put<uint32_t>(head, h.replace_bos ? 1u : 0u);
  Put<uint32_t>(head, 0);
  Put<int64_t>(head, h.ctx);
  Put<int64_t>(head, h.chunks);
  Put<int64_t>(head, static_cast<int64_t>(tokens.size()));
  RETURN_IF_ERROR(w.out_.Write(head.data(), head.size()));
  RETURN_IF_ERROR(w.out_.Write(tokens.data(), tokens.size() * sizeof(int32_t)));
  return w;
}

absl::Status LogProbFileWriter::Add(const ScoredChunk& c) {
  if (c.n_vocab != h_.n_vocab) {
    return absl::InternalError(absl::StrCat("log-prob rows of ", c.n_vocab, " entries, header ", h_.n_vocab));
  }
  row_.resize(c.n_vocab);
  for (int64_t j = 0; j < c.scored; ++j) {
    LogSoftmaxRow(c.logits + j * c.n_vocab, c.n_vocab, row_.data());
    RETURN_IF_ERROR(out_.Write(&c.nll[j], sizeof(double)));
    RETURN_IF_ERROR(out_.Write(row_.data(), row_.size() * sizeof(float)));
  }
  records_ += c.scored;
  return absl::OkStatus();
}

absl::Status LogProbFileWriter::Commit() {
  if (records_ != h_.chunks * ScoredPerChunk(h_.ctx)) {
    return absl::InternalError(absl::StrCat(out_.path(), ": ", records_, " log-prob records written, the plan has ",
                                            h_.chunks * ScoredPerChunk(h_.ctx)));
  }
  return out_.Commit();
}

absl::StatusOr<LogProbFileReader> LogProbFileReader::Open(const std::string& path, const LogProbFileHeader& expect,
                                                          const std::vector<int32_t>& tokens) {
  LogProbFileReader r;
  ASSIGN_OR_RETURN(r.file_, MappedFile::Open(path));
  const uint8_t* p = r.file_.data();
  const uint64_t size = r.file_.size();
  auto bad = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
  };
  if (size < kHeaderBytes || std::memcmp(p, kMagic, sizeof(kMagic)) != 0) {
    return bad("not a log-prob file (qat-run perplexity --save-logits): bad magic at offset 0");
  }
  LogProbFileHeader& h = r.h_;
  h.n_vocab = static_cast<int>(Get<uint32_t>(p + 8));
  h.bos = Get<int32_t>(p + 12);
  h.replace_bos = (Get<uint32_t>(p + 16) & 1u) != 0;
  h.ctx = Get<int64_t>(p + 24);
  h.chunks = Get<int64_t>(p + 32);
  const int64_t n_tokens = Get<int64_t>(p + 40);
  if (h.n_vocab != expect.n_vocab) {
    return bad(absl::StrCat("n_vocab (offset 8) is ", h.n_vocab, ", the model's is ", expect.n_vocab));
  }
  if (h.ctx != expect.ctx) {
    return bad(absl::StrCat("ctx (offset 24) is ", h.ctx, ", this run's is ", expect.ctx, " (--ctx)"));
  }
  if (h.bos != expect.bos || h.replace_bos != expect.replace_bos) {
    return bad(absl::StrCat("bos / flags (offset 12) are ", h.bos, " / ", h.replace_bos ? 1 : 0,
                            ", the model's ", expect.bos, " / ", expect.replace_bos ? 1 : 0));
  }
  if (n_tokens != static_cast<int64_t>(tokens.size())) {
    return bad(absl::StrCat("n_tokens (offset 40) is ", n_tokens, ", the text has ", tokens.size(),
                            " tokens: another text or tokenizer"));
  }
  if (h.chunks != expect.chunks) {
    return bad(absl::StrCat("chunks (offset 32) is ", h.chunks, ", this run's plan has ", expect.chunks));
  }
  const uint64_t tokens_end = kHeaderBytes + 4 * static_cast<uint64_t>(n_tokens);
  const uint64_t want = tokens_end + static_cast<uint64_t>(h.chunks * ScoredPerChunk(h.ctx)) *
                                         (8 + 4 * static_cast<uint64_t>(h.n_vocab));
  if (size != want) return bad(absl::StrCat("size is ", size, " bytes, its header implies ", want));
  for (int64_t i = 0; i < n_tokens; ++i) {
    const int32_t t = Get<int32_t>(p + kHeaderBytes + 4 * i);
    if (t != tokens[i]) {
      return bad(absl::StrCat("token ", i, " (offset ", kHeaderBytes + 4 * i, ") is ", t, ", the text's is ",
                              tokens[i], ": another text or tokenizer"));
    }
  }
  r.records_offset_ = tokens_end;
  return r;
}

absl::Status LogProbFileReader::Chunk(const ScoredChunk& c, std::vector<float>& logp,
                                      std::vector<double>& nll) const {
  const int64_t per = ScoredPerChunk(h_.ctx);
  if (c.scored != per || c.index >= h_.chunks || c.n_vocab != h_.n_vocab) {
    return absl::InternalError(absl::StrCat(file_.path(), ": chunk ", c.index, " does not fit the file's plan"));
  }
  const uint64_t record = 8 + 4 * static_cast<uint64_t>(h_.n_vocab);
  const uint8_t* p = file_.data() + records_offset_ + static_cast<uint64_t>(c.index * per) * record;
  logp.resize(per * h_.n_vocab);
  nll.resize(per);
  for (int64_t j = 0; j < per; ++j, p += record) {
    nll[j] = Get<double>(p);
    std::memcpy(logp.data() + j * h_.n_vocab, p + 8, 4 * static_cast<size_t>(h_.n_vocab));
  }
  return absl::OkStatus();
}

}  // namespace qatk::inference
