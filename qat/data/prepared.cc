#include "qat/data/prepared.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "formats/util/file_io.h"
#include "formats/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace qatk::data {
namespace {

constexpr char kMagic[4] = {'Q', 'T', 'D', 'S'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderBytes = 40;

size_t Pad8(size_t n) { return (8 - n % 8) % 8; }

template <typename T>
T ReadLe(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));  // hosts are little-endian (x86-64, aarch64)
  return v;
}

std::string Hex(uint64_t v) { return absl::StrFormat("%016x", v); }

nlohmann::ordered_json SplitSummary(const PreparedSplit& s) {
  return {{"documents", s.num_docs()}, {"tokens", s.ids.size()}, {"trained_tokens", s.trained_tokens()}};
}

}  // namespace

void PreparedSplit::Append(const TokenizedDoc& d) {
  doc_starts.push_back(ids.size());
  ids.insert(ids.end(), d.ids.begin(), d.ids.end());
  mask.insert(mask.end(), d.mask.begin(), d.mask.end());
}

uint64_t PreparedSplit::trained_tokens() const {
  uint64_t n = 0;
  for (uint8_t m : mask) n += m;
  return n;
}

absl::Status WritePreparedSplit(const std::string& path, const PreparedSplit& s) {
  if (s.mask.size() != s.ids.size()) return absl::InternalError("mask and ids differ in length");
  ASSIGN_OR_RETURN(AtomicFileWriter w, AtomicFileWriter::Create(path));
  uint8_t header[kHeaderBytes] = {};
  std::memcpy(header, kMagic, 4);
  std::memcpy(header + 4, &kVersion, 4);
  const uint64_t fields[3] = {s.tokenizer_fingerprint, s.ids.size(), s.doc_starts.size()};
  std::memcpy(header + 8, fields, sizeof(fields));
  std::memcpy(header + 32, &s.eos_id, 4);
  RETURN_IF_ERROR(w.Write(header, kHeaderBytes));
  RETURN_IF_ERROR(w.Write(s.ids.data(), s.ids.size() * 4));
  RETURN_IF_ERROR(w.Write(s.mask.data(), s.mask.size()));
  RETURN_IF_ERROR(w.WriteZeros(Pad8(s.mask.size())));
  RETURN_IF_ERROR(w.Write(s.doc_starts.data(), s.doc_starts.size() * 8));
  return w.Commit();
}

absl::StatusOr<PreparedSplit> ReadPreparedSplit(const std::string& path) {
  ASSIGN_OR_RETURN(MappedFile f, MappedFile::Open(path));
  const uint8_t* p = f.data();
  auto bad = [&](uint64_t offset, const std::string& what) {
    return absl::DataLossError(absl::StrCat(path, ": offset ", offset, ": ", what));
  };
  if (f.size() < kHeaderBytes || std::memcmp(p, kMagic, 4) != 0) return bad(0, "not a prepared dataset (magic QTDS)");
  if (ReadLe<uint32_t>(p + 4) != kVersion) return bad(4, absl::StrCat("version ", ReadLe<uint32_t>(p + 4), ", expected 1"));
  PreparedSplit s;
  s.tokenizer_fingerprint = ReadLe<uint64_t>(p + 8);
  const uint64_t n = ReadLe<uint64_t>(p + 16), d = ReadLe<uint64_t>(p + 24);
  s.eos_id = ReadLe<int32_t>(p + 32);
  const uint64_t avail = f.size() - kHeaderBytes;
  if (n > avail / 5 || d > avail / 8) return bad(16, "token or document count larger than the file");
  const uint64_t mask_at = kHeaderBytes + 4 * n, docs_at = mask_at + n + Pad8(n);
  if (docs_at + 8 * d != f.size()) {
    return bad(16, absl::StrCat("file size ", f.size(), " does not match ", n, " tokens and ", d, " documents"));
  }
  s.ids.resize(n);
  std::memcpy(s.ids.data(), p + kHeaderBytes, 4 * n);
  s.mask.assign(p + mask_at, p + mask_at + n);
  s.doc_starts.resize(d);
  std::memcpy(s.doc_starts.data(), p + docs_at, 8 * d);
  for (uint64_t i = 0; i < n; ++i) {
    if (s.ids[i] < 0) return bad(kHeaderBytes + 4 * i, absl::StrCat("negative token id ", s.ids[i]));
    if (s.mask[i] > 1) return bad(mask_at + i, "mask byte is not 0 or 1");
  }
  for (uint64_t i = 0; i < d; ++i) {
    const bool ok = i == 0 ? s.doc_starts[0] == 0 : s.doc_starts[i] > s.doc_starts[i - 1] && s.doc_starts[i] < n;
    if (!ok) return bad(docs_at + 8 * i, "document starts must be ascending from 0 and inside the tokens");
  }
  if (n > 0 && d == 0) return bad(24, "tokens without documents");
  return s;
}

bool IsPreparedDataset(const std::string& dir) { return PathExists(dir + "/dataset.json"); }

// The *.txt files under `dir`, recursively, sorted by path.
absl::Status ListTextFiles(const std::string& dir, std::vector<std::string>* out) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return absl::NotFoundError(absl::StrCat("cannot open folder '", dir, "'"));
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  for (const std::string& n : names) {
    const std::string path = dir + "/" + n;
    if (IsDirectory(path)) {
      RETURN_IF_ERROR(ListTextFiles(path, out));
    } else if (n.size() > 4 && n.compare(n.size() - 4, 4, ".txt") == 0) {
      out->push_back(path);
    }
  }
  return absl::OkStatus();
}

absl::Status PrepareJsonl(const PrepareJsonlOptions& o, const TextEncoder& enc) {
  if (o.files.empty() && o.text_files.empty()) return absl::InvalidArgumentError("give --jsonl or --text inputs");
  if (!(o.valid_fraction >= 0 && o.valid_fraction <= 0.5)) {
    return absl::InvalidArgumentError("--valid-fraction must be in [0, 0.5]");
  }
  if (PathExists(o.out) && !IsPreparedDataset(o.out)) {
    if (!IsDirectory(o.out)) return absl::InvalidArgumentError(absl::StrCat("--out '", o.out, "' is not a folder"));
    if (PathExists(o.out + "/train.txt") || PathExists(o.out + "/train.qtd") || PathExists(o.out + "/config.json")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--out '", o.out, "' holds something else (no dataset.json); give a new or empty folder"));
    }
  }
  std::vector<TokenizedDoc> docs;
  std::vector<int64_t> lines_per_file;
  for (const std::string& file : o.files) {
    ASSIGN_OR_RETURN(std::string raw, ReadFileToString(file));
    int64_t line_no = 0, count = 0;
    for (absl::string_view line : absl::StrSplit(raw, '\n')) {
      ++line_no;
      if (absl::StripAsciiWhitespace(line).empty()) continue;
      absl::StatusOr<TokenizedDoc> d = TokenizeJsonlLine(line, enc, o.line);
      if (!d.ok()) {
        return absl::Status(d.status().code(), absl::StrCat(file, ":", line_no, ": ", d.status().message()));
      }
      docs.push_back(*std::move(d));
      ++count;
    }
    if (count == 0) return absl::InvalidArgumentError(absl::StrCat(file, ": no JSON lines"));
    lines_per_file.push_back(count);
  }
  std::vector<std::string> inputs = o.files;
  for (const std::string& path : o.text_files) {
    std::vector<std::string> texts;
    if (IsDirectory(path)) {
      RETURN_IF_ERROR(ListTextFiles(path, &texts));
      if (texts.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": no *.txt files in the folder"));
    } else {
      texts.push_back(path);
    }
    int64_t count = 0;
    for (const std::string& file : texts) {
      ASSIGN_OR_RETURN(std::string text, ReadFileToString(file));
      if (absl::StripAsciiWhitespace(text).empty()) continue;
      TokenizedDoc d;
      absl::StatusOr<std::vector<int32_t>> ids = enc.Encode(text, true);
      if (!ids.ok()) return absl::Status(ids.status().code(), absl::StrCat(file, ": ", ids.status().message()));
      d.ids = *std::move(ids);
      d.ids.push_back(enc.eos_id());
      d.mask.assign(d.ids.size(), 1);
      docs.push_back(std::move(d));
      ++count;
    }
    if (count == 0) return absl::InvalidArgumentError(absl::StrCat(path, ": no text"));
    inputs.push_back(path);
    lines_per_file.push_back(count);
  }
  PreparedSplit train, valid;
  train.tokenizer_fingerprint = valid.tokenizer_fingerprint = enc.fingerprint();
  train.eos_id = valid.eos_id = enc.eos_id();
  const double f = o.valid_fraction;
  std::vector<bool> to_valid(docs.size(), false);
  size_t n_valid = 0;
  for (size_t i = 0; i < docs.size(); ++i) {
    to_valid[i] = std::floor((i + 1) * f) > std::floor(i * f);
    n_valid += to_valid[i];
  }
  if (f > 0 && n_valid == 0 && docs.size() >= 2) to_valid.back() = true;  // small inputs: the last one
  for (size_t i = 0; i < docs.size(); ++i) (to_valid[i] ? valid : train).Append(docs[i]);
  if (train.num_docs() == 0) return absl::InvalidArgumentError("no documents left for the train split");
  if (train.trained_tokens() == 0) return absl::InvalidArgumentError("no token of the train split has loss");

  nlohmann::ordered_json meta = {{"format", "qatk-dataset"},
                                 {"version", kVersion},
                                 {"tokenizer", enc.source()},
                                 {"tokenizer_fingerprint", Hex(enc.fingerprint())},
                                 {"eos_id", enc.eos_id()},
                                 {"model", o.model},
                                 {"loss_on", o.line.loss_on == LossOn::kAll ? "all" : "auto"},
                                 {"max_tokens", o.line.max_tokens},
                                 {"valid_fraction", f},
                                 {"inputs", nlohmann::ordered_json::array()},
                                 {"train", SplitSummary(train)}};
  for (size_t i = 0; i < inputs.size(); ++i) meta["inputs"].push_back({{"file", inputs[i]}, {"documents", lines_per_file[i]}});
  if (valid.num_docs() > 0) meta["valid"] = SplitSummary(valid);

  const std::string pid = std::to_string(::getpid());
  const std::string tmp = o.out + ".tmp-" + pid, old = o.out + ".old-" + pid;
  RETURN_IF_ERROR(RemoveAll(tmp));
  RETURN_IF_ERROR(MakeDirs(tmp));
  absl::Status st = WritePreparedSplit(tmp + "/train.qtd", train);
  if (st.ok() && valid.num_docs() > 0) st = WritePreparedSplit(tmp + "/valid.qtd", valid);
  if (st.ok()) st = WriteFileAtomic(tmp + "/dataset.json", meta.dump(2) + "\n");
  if (!st.ok()) {
    (void)RemoveAll(tmp);
    return st;
  }
  const bool had_old = PathExists(o.out);
  if (had_old && std::rename(o.out.c_str(), old.c_str()) != 0) {
    (void)RemoveAll(tmp);
    return absl::UnavailableError(absl::StrCat("cannot move the old '", o.out, "' aside"));
  }
  if (std::rename(tmp.c_str(), o.out.c_str()) != 0) {
    if (had_old) std::rename(old.c_str(), o.out.c_str());
    (void)RemoveAll(tmp);
    return absl::UnavailableError(absl::StrCat("cannot rename '", tmp, "' to '", o.out, "'"));
  }
  if (had_old) (void)RemoveAll(old);
  return absl::OkStatus();
}

absl::StatusOr<Packing> ParsePacking(const std::string& name) {
  if (name == "stream") return Packing::kStream;
  if (name == "doc") return Packing::kDocument;
  return absl::InvalidArgumentError(absl::StrCat("--pack '", name, "': use stream or doc"));
}

std::vector<Window> BuildWindows(const PreparedSplit& s, int64_t seq, Packing packing, int64_t* dropped) {
  std::vector<Window> out;
  int64_t n_dropped = 0;
  auto add = [&](uint64_t start, uint64_t len) {
    bool trained = false;
    for (uint64_t t = 1; t < len && !trained; ++t) trained = s.mask[start + t] != 0;
    if (trained) out.push_back({start, static_cast<uint32_t>(len)});
    else ++n_dropped;
  };
  const uint64_t n = s.ids.size(), step = static_cast<uint64_t>(seq);
  if (packing == Packing::kStream) {
    const uint64_t windows = n > 1 ? (n - 1) / step : 0;
    for (uint64_t k = 0; k < windows; ++k) add(k * step, step + 1);
  } else {
    for (size_t d = 0; d < s.doc_starts.size(); ++d) {
      const uint64_t end = d + 1 < s.doc_starts.size() ? s.doc_starts[d + 1] : n;
      for (uint64_t start = s.doc_starts[d]; start + 1 < end; start += step) add(start, std::min(step + 1, end - start));
    }
  }
  if (dropped) *dropped = n_dropped;
  return out;
}

PreparedSplit SplitFromStream(std::vector<int32_t> ids, int32_t eos) {
  PreparedSplit s;
  s.eos_id = eos;
  s.mask.assign(ids.size(), 1);
  if (!ids.empty()) s.doc_starts.push_back(0);
  for (size_t i = 0; i + 1 < ids.size(); ++i) {
    if (ids[i] == eos) s.doc_starts.push_back(i + 1);
  }
  s.ids = std::move(ids);
  return s;
}

}  // namespace qatk::data
