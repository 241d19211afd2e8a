// `inspect`: each format is summarised into one neutral table (metadata
// entries + tensor rows), which is then printed as text or JSON.
#include "formats/inspect.h"

#include <cstdio>
#include <cstring>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "formats/gguf/gguf.h"
#include "formats/mobile/mobile_format.h"
#include "formats/safetensors/safetensors.h"
#include "formats/util/cli_flags.h"
#include "formats/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace qatk {
namespace {

using Json = nlohmann::json;

struct MetaEntry {
  std::string key;
  std::string type;  // "UINT32", "ARRAY[STRING]", "str" ...
  Json value;        // full value (arrays in full)
};

struct TensorRow {
  std::string name;
  std::string type;
  std::vector<int64_t> shape;  // PyTorch order
  uint64_t bytes = 0;
  uint64_t offset = 0;  // relative to the data section
};

struct Summary {
  FileFormat format = FileFormat::kUnknown;
  Json header = Json::object();  // container facts that are not metadata keys
  std::vector<MetaEntry> metadata;
  std::vector<TensorRow> tensors;
};

Json GgufValueJson(const gguf::Value& v) {
  return std::visit([](const auto& x) { return Json(x); }, v.v);
}

absl::StatusOr<Summary> SummarizeGguf(const std::string& path) {
  ASSIGN_OR_RETURN(gguf::GgufFile f, gguf::GgufFile::Open(path));
  Summary s;
  s.format = FileFormat::kGguf;
  s.header = {{"version", f.version()}, {"alignment", f.alignment()}, {"data_offset", f.data_offset()}};
  for (const auto& [key, v] : f.metadata()) {
    std::string type = gguf::ValueTypeName(v.type);
    if (v.type == gguf::ValueType::kArray) type = absl::StrCat("ARRAY[", gguf::ValueTypeName(v.elem_type), "]");
    s.metadata.push_back({key, type, GgufValueJson(v)});
  }
  for (const gguf::TensorInfo& t : f.tensors()) {
    s.tensors.push_back({t.name, Traits(t.type).name, std::vector<int64_t>(t.ne.rbegin(), t.ne.rend()),
                         t.nbytes, t.offset});
  }
  return s;
}

absl::StatusOr<Summary> SummarizeSafetensors(const std::string& path) {
  ASSIGN_OR_RETURN(safetensors::SafetensorsFile f, safetensors::SafetensorsFile::Open(path));
  Summary s;
  s.format = FileFormat::kSafetensors;
  for (const auto& [key, value] : f.metadata()) s.metadata.push_back({key, "str", Json(value)});
  const uint8_t* data0 = nullptr;
  for (const safetensors::TensorView& t : f.tensors()) {
    if (data0 == nullptr || (t.data != nullptr && t.data < data0)) data0 = t.data;
  }
  for (const safetensors::TensorView& t : f.tensors()) {
    const uint64_t off = (t.data != nullptr && data0 != nullptr) ? static_cast<uint64_t>(t.data - data0) : 0;
    s.tensors.push_back({t.name, safetensors::DTypeName(t.dtype), t.shape, t.nbytes, off});
  }
  return s;
}

// ---- HOOK: mobile format (magic "QMOB", reader in formats/mobile/) ----------
// Metadata: version, the embedded config and recipe (as JSON), the tokenizer
// (GGUF-like keys); one row per tensor, type "DTYPE[/scale][ act=method:scale
// iBITS]", bytes = codes + scales, offset = codes offset in the data section.
absl::StatusOr<Summary> SummarizeMobile(const std::string& path) {
  ASSIGN_OR_RETURN(mobile::MobileFile f, mobile::MobileFile::Open(path));
  Summary s;
  s.format = FileFormat::kMobile;
  s.metadata.push_back({"QMOB.version", "UINT32", Json(f.version())});
  s.metadata.push_back({"config", "json", Json::parse(f.config_json(), nullptr, false)});
  if (!f.recipe_json().empty()) {
    s.metadata.push_back({"recipe", "json", Json::parse(f.recipe_json(), nullptr, false)});
  }
  const mobile::Tokenizer& t = f.tokenizer();
  s.metadata.push_back({"tokenizer.model", "str", Json(t.model)});
  s.metadata.push_back({"tokenizer.tokens", "ARRAY[STRING]", Json(t.tokens)});
  s.metadata.push_back({"tokenizer.scores", "ARRAY[FLOAT32]", Json(t.scores)});
  s.metadata.push_back({"tokenizer.token_type", "ARRAY[INT32]", Json(t.types)});
  s.metadata.push_back({"tokenizer.bos_token_id", "INT32", Json(t.bos_id)});
  s.metadata.push_back({"tokenizer.eos_token_id", "INT32", Json(t.eos_id)});
  s.metadata.push_back({"tokenizer.unknown_token_id", "INT32", Json(t.unk_id)});
  s.metadata.push_back({"tokenizer.padding_token_id", "INT32", Json(t.pad_id)});
  s.metadata.push_back({"tokenizer.add_bos_token", "BOOL", Json(t.add_bos)});
  s.metadata.push_back({"tokenizer.add_eos_token", "BOOL", Json(t.add_eos)});
  s.metadata.push_back({"tokenizer.add_space_prefix", "BOOL", Json(t.add_space_prefix)});
  for (const mobile::TensorInfo& ti : f.tensors()) {
    std::string type = mobile::DTypeName(ti.dtype);
    if (ti.scale_type != mobile::ScaleType::kNone) {
      absl::StrAppend(&type, "/", mobile::ScaleTypeName(ti.scale_type));
    }
    if (ti.act_method != mobile::ActMethod::kNone) {
      absl::StrAppend(&type, " act=", mobile::ActMethodName(ti.act_method), ":", ti.act_scale,
                      " i", ti.act_bits);
    }
    s.tensors.push_back({ti.name, type, std::vector<int64_t>(ti.dims.begin(), ti.dims.end()),
                         ti.codes_size + ti.scales_size, ti.codes_offset});
  }
  return s;
}
// ---- end of mobile hook ------------------------------------------------------

std::string ShortJson(const Json& v) {
  return v.dump(-1, ' ', false, Json::error_handler_t::replace);
}

// Arrays: "[N x TYPE] first, values, ..."; long strings are cut.
std::string AbbreviatedValue(const Json& v) {
  constexpr size_t kFirst = 8, kMaxChars = 120;
  std::string s;
  if (v.is_array()) {
    std::vector<std::string> first;
    for (size_t i = 0; i < v.size() && i < kFirst; ++i) first.push_back(ShortJson(v[i]));
    s = absl::StrCat("(", v.size(), ") [", absl::StrJoin(first, ", "), v.size() > kFirst ? ", ..." : "", "]");
  } else {
    s = ShortJson(v);
  }
  if (s.size() > kMaxChars) s = s.substr(0, kMaxChars) + "...";
  return s;
}

void PrintText(const std::string& path, const Summary& s, std::ostream& out) {
  out << path << ": " << FileFormatName(s.format);
  for (const auto& [k, v] : s.header.items()) out << ", " << k << " " << ShortJson(v);
  out << "\n\nmetadata (" << s.metadata.size() << "):\n";
  for (const MetaEntry& m : s.metadata) {
    out << "  " << m.key << " " << m.type << " = " << AbbreviatedValue(m.value) << "\n";
  }
  size_t w = 4;
  for (const TensorRow& t : s.tensors) w = std::max(w, t.name.size());
  uint64_t total = 0;
  out << "\ntensors (" << s.tensors.size() << "):\n  " << std::left << std::setw(w) << "name"
      << "  " << std::setw(6) << "type" << "  " << std::setw(22) << "shape" << "  bytes\n";
  for (const TensorRow& t : s.tensors) {
    out << "  " << std::left << std::setw(w) << t.name << "  " << std::setw(6) << t.type << "  "
        << std::setw(22) << absl::StrCat("[", absl::StrJoin(t.shape, ", "), "]") << "  " << t.bytes << "\n";
    total += t.bytes;
  }
  out << "  total tensor bytes: " << total << "\n";
}

void PrintJson(const std::string& path, const Summary& s, std::ostream& out) {
  Json j;
  j["format"] = FileFormatName(s.format);
  j["path"] = path;
  j["header"] = s.header;
  j["metadata"] = Json::object();
  for (const MetaEntry& m : s.metadata) j["metadata"][m.key] = m.value;
  j["tensors"] = Json::array();
  for (const TensorRow& t : s.tensors) {
    j["tensors"].push_back({{"name", t.name}, {"type", t.type}, {"shape", t.shape},
                            {"bytes", t.bytes}, {"offset", t.offset}});
  }
  out << j.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
}

}  // namespace

const char* FileFormatName(FileFormat f) {
  switch (f) {
    case FileFormat::kGguf: return "gguf";
    case FileFormat::kSafetensors: return "safetensors";
    case FileFormat::kMobile: return "mobile";
    case FileFormat::kUnknown: break;
  }
  return "unknown";
}

absl::StatusOr<FileFormat> DetectFileFormat(const std::string& path) {
  std::FILE* fp = std::fopen(path.c_str(), "rb");
  if (fp == nullptr) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  uint8_t head[9] = {};
  const size_t n = std::fread(head, 1, sizeof(head), fp);
  std::fclose(fp);
  if (n >= 4 && std::memcmp(head, "GGUF", 4) == 0) return FileFormat::kGguf;
  if (n >= 4 && std::memcmp(head, "QMOB", 4) == 0) return FileFormat::kMobile;
  if (n >= 9 && head[8] == '{') return FileFormat::kSafetensors;
  return FileFormat::kUnknown;
}

absl::Status InspectFile(const std::string& path, bool json, std::ostream& out) {
  ASSIGN_OR_RETURN(FileFormat format, DetectFileFormat(path));
  absl::StatusOr<Summary> s;
  switch (format) {
    case FileFormat::kGguf: s = SummarizeGguf(path); break;
    case FileFormat::kSafetensors: s = SummarizeSafetensors(path); break;
    case FileFormat::kMobile: s = SummarizeMobile(path); break;
    case FileFormat::kUnknown:
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": unknown file format (expected GGUF, safetensors or QMOB)"));
  }
  if (!s.ok()) return s.status();
  if (json) {
    PrintJson(path, *s, out);
  } else {
    PrintText(path, *s, out);
  }
  return absl::OkStatus();
}

namespace cli {

absl::Status InspectCommand(int argc, char** argv) {
  cxxopts::Options opts("inspect", "Print a GGUF / safetensors / mobile file's metadata and tensor table");
  opts.add_options()("json", "one JSON object on stdout")("file", "model file", cxxopts::value<std::string>());
  opts.parse_positional({"file"});
  opts.positional_help("FILE");
  ASSIGN_OR_RETURN(cxxopts::ParseResult r, ParseFlags(opts, argc, argv));
  if (!r.count("file")) return absl::InvalidArgumentError("missing FILE (see inspect --help)");
  return InspectFile(r["file"].as<std::string>(), r.count("json") > 0, std::cout);
}

}  // namespace cli
}  // namespace qatk
