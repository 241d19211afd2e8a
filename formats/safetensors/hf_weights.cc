#include "formats/safetensors/hf_weights.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "formats/model_arch.h"
#include "formats/quant/fp16.h"
#include "formats/util/file_io.h"
#include "formats/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace qatk::safetensors {
namespace {

using Json = nlohmann::ordered_json;
constexpr int kMaxIndexDepth = 8;  // real indexes nest 2 deep

std::string ShapeStr(const std::vector<int64_t>& s) {
  return absl::StrCat("[", absl::StrJoin(s, ", "), "]");
}

bool IsFloat(DType d) { return d == DType::kF32 || d == DType::kF16 || d == DType::kBF16; }

}  // namespace

absl::StatusOr<HfIndex> ParseHfIndex(absl::string_view json, const std::string& path) {
  auto bad = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
  };
  if (JsonDepth(json) > kMaxIndexDepth) return bad(absl::StrCat("JSON nests deeper than ", kMaxIndexDepth));
  // nlohmann keeps one value per key: a tensor listed twice is caught here.
  std::set<std::string> seen;
  std::string dup, top_key;
  Json::parser_callback_t cb = [&](int depth, Json::parse_event_t ev, Json& parsed) {
    if (ev != Json::parse_event_t::key || !parsed.is_string()) return true;
    if (depth == 1) top_key = parsed.get<std::string>();
    if (depth == 2 && top_key == "weight_map" && !seen.insert(parsed.get<std::string>()).second &&
        dup.empty()) {
      dup = parsed.get<std::string>();
    }
    return true;
  };
  const Json j = Json::parse(json.begin(), json.end(), cb, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return bad("not a JSON object");
  HfIndex index;
  if (auto m = j.find("metadata"); m != j.end() && !m->is_null()) {
    if (!m->is_object()) return bad("\"metadata\" is not an object");
    if (auto t = m->find("total_size"); t != m->end()) {
      if (!t->is_number_unsigned() && !(t->is_number_float() && t->get<double>() >= 0 &&
                                        t->get<double>() < 1.8e19 &&
                                        std::floor(t->get<double>()) == t->get<double>())) {
        return bad("metadata.total_size is not a non-negative integer");
      }
      index.total_size = t->is_number_unsigned() ? t->get<uint64_t>()
                                                 : static_cast<uint64_t>(t->get<double>());
    }
  }
  auto wm = j.find("weight_map");
  if (wm == j.end() || !wm->is_object()) return bad("\"weight_map\" is missing or not an object");
  if (!dup.empty()) return bad(absl::StrCat("weight_map lists tensor '", dup, "' twice"));
  if (wm->empty()) return bad("\"weight_map\" is empty");
  std::set<std::string> shards;
  for (const auto& [tensor, shard] : wm->items()) {
    if (!shard.is_string()) return bad(absl::StrCat("weight_map['", tensor, "'] is not a string"));
    const std::string s = shard.get<std::string>();
    if (s.empty() || s == "." || s == ".." || s.find('/') != std::string::npos ||
        s.find('\\') != std::string::npos || s.find('\0') != std::string::npos) {
      return bad(absl::StrCat("weight_map['", tensor, "'] = '", s,
                              "' is not a file name in the folder"));
    }
    if (tensor.empty() || tensor == "__metadata__") {
      return bad(absl::StrCat("weight_map has an invalid tensor name '", tensor, "'"));
    }
    index.weight_map.emplace_back(tensor, s);
    shards.insert(s);
  }
  index.shards.assign(shards.begin(), shards.end());
  return index;
}

std::string HfShardName(int k, int n) {
  return absl::StrFormat("model-%05d-of-%05d.safetensors", k, n);
}

absl::StatusOr<HfWeights> HfWeights::FromShards(const HfIndex& index, const std::string& index_path,
                                                const std::string& dir,
                                                std::vector<SafetensorsFile> shards) {
  if (shards.size() != index.shards.size()) {
    return absl::InternalError(absl::StrCat(index_path, ": ", shards.size(), " shards for ",
                                            index.shards.size(), " names"));
  }
  HfWeights w;
  w.path_ = index_path;
  w.sharded_ = true;
  std::map<std::string, int> shard_no;
  for (size_t i = 0; i < index.shards.size(); ++i) {
    shard_no[index.shards[i]] = static_cast<int>(i);
    w.shard_paths_.push_back(dir + "/" + index.shards[i]);
  }
  // Every tensor of every shard must be where the index says, once.
  std::map<std::string, int> mapped;
  for (const auto& [tensor, shard] : index.weight_map) mapped[tensor] = shard_no.at(shard);
  std::map<std::string, size_t> first_shard;
  for (size_t s = 0; s < shards.size(); ++s) {
    for (const TensorView& t : shards[s].tensors()) {
      auto [prev, fresh] = first_shard.emplace(t.name, s);
      if (!fresh) {
        return absl::InvalidArgumentError(absl::StrCat(
            "tensor '", t.name, "' is in two shards: ", w.shard_paths_[prev->second], " and ",
            w.shard_paths_[s], " (", index_path, " maps it to ",
            mapped.count(t.name) ? index.shards[mapped[t.name]] : std::string("no shard"), ")"));
      }
    }
  }
  for (size_t s = 0; s < shards.size(); ++s) {
    for (const TensorView& t : shards[s].tensors()) {
      auto m = mapped.find(t.name);
      if (m == mapped.end()) {
        return absl::InvalidArgumentError(absl::StrCat(w.shard_paths_[s], ": tensor '", t.name,
                                                       "' is not in ", index_path, "'s weight_map"));
      }
      if (m->second != static_cast<int>(s)) {
        return absl::InvalidArgumentError(absl::StrCat(
            w.shard_paths_[s], ": tensor '", t.name, "' is here but ", index_path, " maps it to ",
            index.shards[m->second]));
      }
      w.index_[t.name] = w.tensors_.size();
      w.tensors_.push_back(t);
      w.shard_of_.push_back(static_cast<int>(s));
    }
  }
  for (const auto& [tensor, shard] : index.weight_map) {
    if (!w.index_.count(tensor)) {
      return absl::DataLossError(absl::StrCat(dir, "/", shard, ": no tensor '", tensor, "', which ",
                                              index_path, " maps to this shard"));
    }
  }
  w.shards_ = std::move(shards);
  return w;
}

absl::StatusOr<HfWeights> HfWeights::OpenFile(const std::string& path) {
  ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::Open(path));
  HfWeights w;
  w.path_ = path;
  w.release_pages_ = true;
  w.shard_paths_.push_back(path);
  for (const TensorView& t : f.tensors()) {
    w.index_[t.name] = w.tensors_.size();
    w.tensors_.push_back(t);
    w.shard_of_.push_back(0);
  }
  w.shards_.push_back(std::move(f));
  return w;
}

absl::StatusOr<HfWeights> HfWeights::Open(const std::string& dir) {
  const std::string single = dir + "/" + kHfSingleFile;
  if (PathExists(single)) return OpenFile(single);
  const std::string index_path = dir + "/" + kHfIndexFile;
  if (!PathExists(index_path)) {
    return absl::NotFoundError(absl::StrCat(dir, ": no weights (neither ", kHfSingleFile, " nor ",
                                            kHfIndexFile, ")"));
  }
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(index_path));
  ASSIGN_OR_RETURN(HfIndex index, ParseHfIndex(text, index_path));
  std::vector<SafetensorsFile> shards;
  for (const std::string& s : index.shards) {
    const std::string p = dir + "/" + s;
    if (!PathExists(p)) {
      std::string example;
      for (const auto& [tensor, shard] : index.weight_map) {
        if (shard == s) {
          example = tensor;
          break;
        }
      }
      return absl::NotFoundError(absl::StrCat(p, ": shard is missing (", index_path,
                                              " maps tensor '", example, "' to it)"));
    }
    ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::Open(p));
    shards.push_back(std::move(f));
  }
  ASSIGN_OR_RETURN(HfWeights w, FromShards(index, index_path, dir, std::move(shards)));
  w.release_pages_ = true;
  return w;
}

const TensorView* HfWeights::Find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const std::string& HfWeights::PathOf(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? path_ : shard_paths_[shard_of_[it->second]];
}

void HfWeights::ReleasePages(const TensorView& t) const {
  if (!release_pages_ || t.nbytes == 0) return;
  static const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin = reinterpret_cast<uintptr_t>(t.data);
  // Whole pages inside the tensor only: the neighbours' bytes stay mapped.
  const uintptr_t first = (begin + page - 1) / page * page;
  const uintptr_t last = (begin + t.nbytes) / page * page;
  if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

absl::Status HfWeights::ReadInto(const std::string& name, absl::Span<float> out) const {
  const TensorView* t = Find(name);
  if (t == nullptr) return absl::NotFoundError(absl::StrCat(path_, ": no tensor '", name, "'"));
  if (!IsFloat(t->dtype)) {
    return absl::InvalidArgumentError(absl::StrCat(PathOf(name), ": tensor '", name, "' has dtype ",
                                                   DTypeName(t->dtype), ", not F32, F16 or BF16"));
  }
  const size_t n = t->nbytes / DTypeSize(t->dtype);
  if (out.size() != n) {
    return absl::InvalidArgumentError(absl::StrCat(PathOf(name), ": tensor '", name, "' has ", n,
                                                   " elements, the buffer ", out.size()));
  }
  if (t->dtype == DType::kF32) {
    if (n > 0) std::memcpy(out.data(), t->data, n * 4);
  } else {
    const bool f16 = t->dtype == DType::kF16;
    for (size_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, t->data + 2 * i, 2);
      out[i] = f16 ? Fp16ToFp32(h) : Bf16ToFp32(h);
    }
  }
  ReleasePages(*t);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<float>> HfWeights::ReadFloat(const std::string& name) const {
  const TensorView* t = Find(name);
  if (t == nullptr) return absl::NotFoundError(absl::StrCat(path_, ": no tensor '", name, "'"));
  std::vector<float> out(IsFloat(t->dtype) ? t->nbytes / DTypeSize(t->dtype) : 0);
  RETURN_IF_ERROR(ReadInto(name, absl::MakeSpan(out)));
  return out;
}

absl::Status HfWeights::CheckConfig(const ModelConfig& config) const {
  RETURN_IF_ERROR(ForEachTensor(config, [&](const ArchTensor& a) -> absl::Status {
    const TensorView* t = Find(a.hf_name);
    if (t == nullptr) {
      return absl::NotFoundError(absl::StrCat(path_, ": tensor '", a.hf_name,
                                              "' is missing (config.json: ", config.model_type,
                                              ", expected shape ", ShapeStr(a.shape), ")"));
    }
    if (t->shape != a.shape) {
      return absl::InvalidArgumentError(absl::StrCat(PathOf(a.hf_name), ": tensor '", a.hf_name,
                                                     "' has shape ", ShapeStr(t->shape),
                                                     ", config.json implies ", ShapeStr(a.shape)));
    }
    if (!IsFloat(t->dtype)) {
      return absl::InvalidArgumentError(absl::StrCat(PathOf(a.hf_name), ": tensor '", a.hf_name,
                                                     "' has dtype ", DTypeName(t->dtype),
                                                     ", not F32, F16 or BF16"));
    }
    return absl::OkStatus();
  }));
  if (!config.tie_word_embeddings) return absl::OkStatus();
  const TensorView* head = Find("lm_head.weight");
  if (head == nullptr) return absl::OkStatus();
  const TensorView* emb = Find("model.embed_tokens.weight");
  const bool same = emb != nullptr && head->dtype == emb->dtype && head->shape == emb->shape &&
                    head->nbytes == emb->nbytes &&
                    (head->nbytes == 0 || std::memcmp(head->data, emb->data, head->nbytes) == 0);
  if (!same) {
    return absl::InvalidArgumentError(absl::StrCat(
        PathOf("lm_head.weight"), ": tensor 'lm_head.weight' differs from "
        "'model.embed_tokens.weight' but config.json has tie_word_embeddings true"));
  }
  return absl::OkStatus();
}

void HfWeights::Drop(const std::string& name) {
  auto it = index_.find(name);
  if (it == index_.end()) return;
  const size_t at = it->second;
  tensors_.erase(tensors_.begin() + at);
  shard_of_.erase(shard_of_.begin() + at);
  index_.erase(it);
  for (auto& [n, i] : index_) {
    if (i > at) --i;
  }
}

uint64_t HfTensorSpec::nbytes() const {
  uint64_t n = DTypeSize(dtype);
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

absl::StatusOr<uint64_t> ParseShardSize(absl::string_view text, absl::string_view flag) {
  auto bad = [&]() {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, " ", text, ": expected a size such as 2GB, 500MB, 1.5GB, 3GiB or a byte count"));
  };
  std::string s(absl::StripAsciiWhitespace(text));
  size_t unit_at = s.size();
  while (unit_at > 0 && std::isalpha(static_cast<unsigned char>(s[unit_at - 1]))) --unit_at;
  const std::string unit = absl::AsciiStrToUpper(s.substr(unit_at));
  const std::string num = s.substr(0, unit_at);
  static const std::pair<const char*, double> kUnits[] = {
      {"", 1},           {"B", 1},           {"KB", 1e3},          {"MB", 1e6},
      {"GB", 1e9},       {"TB", 1e12},       {"KIB", 1024.0},      {"MIB", 1048576.0},
      {"GIB", 1073741824.0}, {"TIB", 1099511627776.0}};
  double mult = 0;
  for (const auto& [u, m] : kUnits) {
    if (unit == u) mult = m;
  }
  double v = 0;
  if (mult == 0 || num.empty() || !absl::SimpleAtod(num, &v) || !(v > 0)) return bad();
  const double bytes = v * mult;
  if (!(bytes >= 1) || bytes > 1.8e19) return bad();
  return static_cast<uint64_t>(bytes);
}

std::vector<int> PlanHfShards(absl::Span<const HfTensorSpec> tensors, uint64_t max_shard_bytes) {
  std::vector<int> out;
  int shard = 0;
  uint64_t used = 0;
  bool empty = true;
  for (const HfTensorSpec& t : tensors) {
    const uint64_t n = t.nbytes();
    if (!empty && used + n > max_shard_bytes) {
      ++shard;
      used = 0;
      empty = true;
    }
    out.push_back(shard);
    used += n;
    empty = false;
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> WriteHfShards(
    const std::string& dir, absl::Span<const HfTensorSpec> tensors, uint64_t max_shard_bytes,
    absl::FunctionRef<absl::Status(size_t i, ByteSink sink)> produce) {
  const std::vector<int> plan = PlanHfShards(tensors, max_shard_bytes);
  const int n_shards = plan.empty() ? 1 : plan.back() + 1;
  std::vector<std::string> names;
  for (int k = 0; k < n_shards; ++k) {
    names.push_back(n_shards == 1 ? std::string(kHfSingleFile) : HfShardName(k + 1, n_shards));
  }
  Json weight_map = Json::object();
  uint64_t total = 0;
  size_t next = 0;
  for (int k = 0; k < n_shards; ++k) {
    const std::string path = dir + "/" + names[k];
    Json header = Json::object();
    header["__metadata__"] = {{"format", "pt"}};
    uint64_t offset = 0;
    size_t end = next;
    for (; end < tensors.size() && plan[end] == k; ++end) {
      const HfTensorSpec& t = tensors[end];
      if (t.name.empty() || t.name == "__metadata__" || header.contains(t.name)) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": invalid or duplicate tensor name '",
                                                       t.name, "'"));
      }
      header[t.name] = {{"dtype", DTypeName(t.dtype)},
                        {"shape", t.shape},
                        {"data_offsets", {offset, offset + t.nbytes()}}};
      offset += t.nbytes();
      weight_map[t.name] = names[k];
    }
    std::string text;
    try {
      text = header.dump(-1, ' ', false, Json::error_handler_t::strict);
    } catch (const Json::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": cannot encode header: ", e.what()));
    }
    text.append((8 - text.size() % 8) % 8, ' ');  // data starts 8-byte aligned
    ASSIGN_OR_RETURN(AtomicFileWriter w, AtomicFileWriter::Create(path));
    const uint64_t hn = text.size();
    RETURN_IF_ERROR(w.Write(&hn, 8));
    RETURN_IF_ERROR(w.Write(text.data(), text.size()));
    for (size_t i = next; i < end; ++i) {
      const uint64_t before = w.bytes_written();
      RETURN_IF_ERROR(produce(i, [&w](const void* data, size_t n) { return w.Write(data, n); }));
      if (w.bytes_written() - before != tensors[i].nbytes()) {
        return absl::InternalError(absl::StrCat(path, ": tensor '", tensors[i].name, "' got ",
                                                w.bytes_written() - before, " bytes, expected ",
                                                tensors[i].nbytes()));
      }
    }
    RETURN_IF_ERROR(w.Commit());
    total += offset;
    next = end;
  }
  if (n_shards > 1) {
    // transformers: json.dumps(index, indent=2, sort_keys=True) + "\n".
    nlohmann::json index;  // std::map keys: sorted
    index["metadata"] = {{"total_size", total}};
    index["weight_map"] = nlohmann::json::object();
    for (const auto& [k, v] : weight_map.items()) index["weight_map"][k] = v;
    RETURN_IF_ERROR(WriteFileAtomic(dir + "/" + kHfIndexFile, index.dump(2) + "\n"));
    names.push_back(kHfIndexFile);
  }
  return names;
}

}  // namespace qatk::safetensors
