#include "formats/tokenizer/hf_tokenizer.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/str_join.h"
#include "formats/tokenizer/regex.h"
#include "formats/tokenizer/unicode.h"
#include "formats/util/file_io.h"
#include "formats/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace qatk::tokenizer {
namespace {

using json = nlohmann::json;

// GPT-2's ByteLevel split pattern (tokenizers' pre_tokenizers/byte_level.rs).
constexpr absl::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// Words this long or longer are not cached (as tokenizers' MAX_LENGTH).
constexpr size_t kMaxCachedWordBytes = 256;
constexpr size_t kMaxCacheEntries = 1 << 18;

// ---------------------------------------------------------------------------
// GPT-2 byte <-> unicode mapping.
struct ByteMap {
  uint32_t byte_to_cp[256];
  std::string byte_to_utf8[256];
  absl::flat_hash_map<uint32_t, uint8_t> cp_to_byte;
  ByteMap() {
    bool direct[256] = {};
    for (int b = '!'; b <= '~'; ++b) direct[b] = true;
    for (int b = 0xA1; b <= 0xAC; ++b) direct[b] = true;
    for (int b = 0xAE; b <= 0xFF; ++b) direct[b] = true;
    uint32_t n = 0;
    for (int b = 0; b < 256; ++b) {
      byte_to_cp[b] = direct[b] ? static_cast<uint32_t>(b) : 256 + n++;
      AppendUtf8(byte_to_cp[b], &byte_to_utf8[b]);
      cp_to_byte[byte_to_cp[b]] = static_cast<uint8_t>(b);
    }
  }
};

const ByteMap& Bytes() {
  static const ByteMap* m = new ByteMap();
  return *m;
}

void AppendByteLevel(absl::string_view raw, std::string* out) {
  const ByteMap& bm = Bytes();
  for (unsigned char b : raw) out->append(bm.byte_to_utf8[b]);
}

// Undoes the byte-level mapping; false if a char is outside the alphabet.
bool UnmapByteLevel(absl::string_view mapped, std::string* out) {
  const ByteMap& bm = Bytes();
  out->clear();
  size_t i = 0;
  while (i < mapped.size()) {
    const uint32_t cp = DecodeUtf8(mapped, &i);
    auto it = bm.cp_to_byte.find(cp);
    if (it == bm.cp_to_byte.end()) return false;
    out->push_back(static_cast<char>(it->second));
  }
  return true;
}

// ---------------------------------------------------------------------------
// Error helpers: every message names the file and the field.
class Ctx {
 public:
  explicit Ctx(std::string name) : name_(std::move(name)) {}
  absl::Status Error(absl::string_view field, absl::string_view msg) const {
    return absl::InvalidArgumentError(absl::StrCat(name_, ": ", field, ": ", msg));
  }
  absl::Status Unsupported(absl::string_view what, absl::string_view type, absl::string_view field) const {
    return absl::InvalidArgumentError(
        absl::StrCat(name_, ": ", what, " type '", type, "' is not supported (at ", field, ")"));
  }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
};

// `path` names `obj` ("" for the root).
absl::StatusOr<const json*> Field(const Ctx& c, const json& obj, absl::string_view key, absl::string_view path) {
  auto it = obj.find(std::string(key));
  if (it == obj.end()) return c.Error(path.empty() ? std::string(key) : absl::StrCat(path, ".", key), "missing");
  return &*it;
}

absl::StatusOr<std::string> GetString(const Ctx& c, const json& obj, absl::string_view key, absl::string_view path) {
  ASSIGN_OR_RETURN(const json* v, Field(c, obj, key, path));
  if (!v->is_string()) return c.Error(absl::StrCat(path, ".", key), "expected a string");
  return v->get<std::string>();
}

absl::StatusOr<bool> GetBool(const Ctx& c, const json& obj, absl::string_view key, absl::string_view path,
                             std::optional<bool> def) {
  auto it = obj.find(std::string(key));
  if (it == obj.end() || (it->is_null() && def.has_value())) {
    if (def.has_value()) return *def;
    return c.Error(absl::StrCat(path, ".", key), "missing");
  }
  if (!it->is_boolean()) return c.Error(absl::StrCat(path, ".", key), "expected true or false");
  return it->get<bool>();
}

absl::StatusOr<std::string> GetType(const Ctx& c, const json& obj, absl::string_view path) {
  if (!obj.is_object()) return c.Error(path, "expected an object");
  return GetString(c, obj, "type", path);
}

// {"String": s} or {"Regex": r}: a literal or a compiled pattern.
struct Pattern {
  std::string literal;
  std::unique_ptr<Regex> regex;
};

absl::StatusOr<Pattern> GetPattern(const Ctx& c, const json& obj, absl::string_view path, uint32_t limit) {
  ASSIGN_OR_RETURN(const json* p, Field(c, obj, "pattern", path));
  const std::string field = absl::StrCat(path, ".pattern");
  if (!p->is_object() || p->size() != 1) return c.Error(field, "expected {\"String\": ...} or {\"Regex\": ...}");
  Pattern out;
  if (auto it = p->find("String"); it != p->end()) {
    if (!it->is_string()) return c.Error(field + ".String", "expected a string");
    out.literal = it->get<std::string>();
    if (out.literal.empty()) return c.Error(field + ".String", "an empty pattern is not supported");
    return out;
  }
  if (auto it = p->find("Regex"); it != p->end()) {
    if (!it->is_string()) return c.Error(field + ".Regex", "expected a string");
    auto re = Regex::Compile(it->get<std::string>(), limit);
    if (!re.ok()) return c.Error(field + ".Regex", re.status().message());
    out.regex = *std::move(re);
    return out;
  }
  return c.Error(field, "expected {\"String\": ...} or {\"Regex\": ...}");
}

// Non-overlapping leftmost matches of a pattern, as [start, end) pairs.
absl::Status FindPattern(const Pattern& p, absl::string_view text, std::vector<std::pair<size_t, size_t>>* out) {
  out->clear();
  if (p.regex) return p.regex->FindAll(text, out);
  size_t pos = 0;
  while ((pos = text.find(p.literal, pos)) != absl::string_view::npos) {
    out->emplace_back(pos, pos + p.literal.size());
    pos += p.literal.size();
  }
  return absl::OkStatus();
}

absl::Status ReplaceAll(const Pattern& p, absl::string_view content, absl::string_view in, std::string* out,
                        std::vector<std::pair<size_t, size_t>>* scratch) {
  RETURN_IF_ERROR(FindPattern(p, in, scratch));
  out->clear();
  size_t prev = 0;
  for (auto [s, e] : *scratch) {
    absl::StrAppend(out, in.substr(prev, s - prev));
    absl::StrAppend(out, content);
    prev = e;
  }
  absl::StrAppend(out, in.substr(prev));
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Pipeline pieces.

struct NormStep {
  enum Kind { kNormalForm, kLowercase, kStrip, kReplace, kPrepend } kind;
  NormalForm form = NormalForm::kNFC;
  bool left = false, right = false;
  Pattern pattern;
  std::string content;  // Replace content / Prepend text
};

enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct PreStep {
  enum Kind { kSplit, kByteLevel, kMetaspace, kDigits } kind;
  Pattern pattern;
  Behavior behavior = Behavior::kIsolated;
  bool invert = false;
  bool add_prefix_space = false;
  bool use_regex = false;
  std::string replacement;  // Metaspace
  enum Prepend { kAlways, kFirst, kNever } prepend = kAlways;
  bool split = true;
  bool individual_digits = false;  // Digits
};

struct DecStep {
  enum Kind { kByteLevel, kByteFallback, kFuse, kStrip, kReplace, kMetaspace } kind;
  Pattern pattern;
  std::string content;
  uint32_t strip_char = 0;
  size_t strip_start = 0, strip_stop = 0;
  uint32_t replacement = 0;
  bool metaspace_prepend = true;
};

// One TemplateProcessing "single" template: special ids or the sequence.
struct TemplateItem {
  bool is_sequence = false;
  std::vector<int32_t> ids;
};

struct AddedToken {
  int32_t id;
  std::string content;
  bool special, normalized, lstrip, rstrip, single_word;
};

// Byte trie for leftmost-longest matching of added tokens.
class Trie {
 public:
  void Add(absl::string_view s, int32_t value) {
    uint32_t node = 0;
    if (nodes_.empty()) nodes_.emplace_back();
    for (unsigned char b : s) {
      auto it = nodes_[node].next.find(b);
      if (it == nodes_[node].next.end()) {
        nodes_.emplace_back();
        const uint32_t child = static_cast<uint32_t>(nodes_.size() - 1);
        nodes_[node].next[b] = child;
        node = child;
      } else {
        node = it->second;
      }
    }
    nodes_[node].value = value;
    first_[static_cast<unsigned char>(s[0])] = true;
  }
  bool empty() const { return nodes_.empty(); }
  bool MayStart(unsigned char b) const { return first_[b]; }
  // Longest key starting at text[pos]: its value and length, or value -1.
  std::pair<int32_t, size_t> Longest(absl::string_view text, size_t pos) const {
    int32_t best = -1;
    size_t best_len = 0;
    uint32_t node = 0;
    for (size_t i = pos; i < text.size(); ++i) {
      auto it = nodes_[node].next.find(static_cast<unsigned char>(text[i]));
      if (it == nodes_[node].next.end()) break;
      node = it->second;
      if (nodes_[node].value >= 0) best = nodes_[node].value, best_len = i + 1 - pos;
    }
    return {best, best_len};
  }

 private:
  struct Node {
    absl::flat_hash_map<unsigned char, uint32_t> next;
    int32_t value = -1;
  };
  std::vector<Node> nodes_;
  bool first_[256] = {};
};

struct Segment {
  size_t start, end;
  int32_t id;  // added token id, or -1 for text
};

struct Symbol {
  int32_t id;
  int32_t prev, next;
  int32_t len;
};

struct MergeItem {
  uint32_t rank;
  uint32_t pos;
  int32_t new_id;
  // Min-heap on (rank, pos), as tokenizers' Word::merge_all.
  bool operator<(const MergeItem& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
};

struct WordCache {
  absl::flat_hash_map<std::string, std::pair<uint32_t, uint32_t>> map[2];  // [byte-level raw?]
  std::vector<int32_t> arena;
};

struct EncodeState {
  WordCache* cache = nullptr;
  std::vector<Segment> segs1, segs2;
  std::string norm_a, norm_b;
  std::vector<std::pair<size_t, size_t>> norm_scratch;
  std::vector<std::vector<std::pair<size_t, size_t>>> level_matches, level_pieces;
  std::vector<std::string> level_buf, level_mapped;
  std::vector<Symbol> syms;
  std::vector<MergeItem> heap;
  std::string word_buf, char_buf;
};

inline uint64_t PairKey(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

}  // namespace

// ---------------------------------------------------------------------------
struct HfTokenizer::Impl {
  std::string name;
  HfTokenizerOptions options;

  // Model.
  absl::flat_hash_map<std::string, int32_t> vocab;
  std::vector<std::string> id_to_token;  // model vocab + added, "[PAD<id>]" holes
  std::vector<uint8_t> in_model;         // id has a model vocab entry
  std::vector<std::pair<std::string, std::string>> merges;
  absl::flat_hash_map<uint64_t, std::pair<uint32_t, int32_t>> merge_map;  // (a,b) -> (rank, new id)
  std::optional<int32_t> unk;
  std::string unk_token;
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;
  std::string prefix, suffix;
  int32_t byte_fallback_ids[256];
  // Byte-level fast path: raw bytes -> ids without building mapped strings.
  bool raw_bytes_ok = false;
  int32_t byte_char_ids[256];
  absl::flat_hash_map<std::string, int32_t> raw_vocab;  // for ignore_merges
  int32_t ascii_ids[128];  // single-char tokens of ASCII chars, or -1
  // SentencePiece-style words (a whole line when spaces became "▁") are cut
  // before each "▁" that follows another char: no merge can join across such
  // a cut unless its result holds "<c>▁", so BPE on the pieces is exactly BPE
  // on the word, and the pieces hit the word cache. Cuts inside an occurrence
  // of one of those few results are skipped.
  bool cut_at_metaspace = false;
  std::vector<std::string> metaspace_crossers;

  // Added vocabulary.
  std::vector<AddedToken> added;                        // file order
  absl::flat_hash_map<int32_t, size_t> added_by_id;     // id -> index in `added`
  absl::flat_hash_map<std::string, int32_t> added_ids;  // content -> id
  absl::flat_hash_map<int32_t, std::string> added_normalized;  // normalized content if it differs
  absl::flat_hash_set<std::string> special_contents;
  std::vector<int32_t> special_ids;
  Trie raw_trie, norm_trie;

  std::vector<NormStep> normalizers;
  std::vector<PreStep> pre_steps;
  std::unique_ptr<Regex> gpt2;
  std::vector<std::vector<TemplateItem>> templates;
  std::vector<DecStep> decoders;
  bool has_decoder = false;
  bool byte_level = false;
  bool metaspace_or_replace_spaces = false;

  mutable std::mutex cache_mu;
  mutable WordCache cache;

  absl::Status Load(const json& root);
  absl::Status LoadModel(const Ctx& c, const json& m);
  absl::Status LoadNormalizer(const Ctx& c, const json& n, const std::string& path);
  absl::Status LoadPreTokenizer(const Ctx& c, const json& p, const std::string& path);
  absl::Status LoadPostProcessor(const Ctx& c, const json& p, const std::string& path);
  absl::Status LoadDecoder(const Ctx& c, const json& d, const std::string& path);
  absl::Status LoadAdded(const Ctx& c, const json& a);

  // *front_kept: whether the output still starts at the input's first char
  // (Strip or an empty Replace can drop it), which Metaspace "first" needs.
  absl::Status RunNormalizers(absl::string_view in, EncodeState& st, absl::string_view* out,
                              bool* front_kept) const;
  void FindAdded(absl::string_view text, const Trie& trie, std::vector<Segment>* segs) const;
  absl::Status EncodeText(absl::string_view text, EncodeState& st, std::vector<int32_t>* ids) const;
  absl::Status PreTokenize(size_t step, absl::string_view text, bool at_start, bool raw_bytes, EncodeState& st,
                           std::vector<int32_t>* ids) const;
  void Model(absl::string_view word, bool raw_bytes, EncodeState& st, std::vector<int32_t>* ids) const;
  void MergeWord(absl::string_view word, bool raw_bytes, EncodeState& st, std::vector<int32_t>* ids) const;
  void CachedMergeWord(absl::string_view word, bool raw_bytes, EncodeState& st, std::vector<int32_t>* ids) const;
};

// ---------------------------------------------------------------------------
// Loading.

absl::Status HfTokenizer::Impl::Load(const json& root) {
  const Ctx c(name);
  if (!root.is_object()) return c.Error("(root)", "expected a JSON object");
  if (auto it = root.find("version"); it != root.end() && !(it->is_string() && *it == "1.0")) {
    return c.Error("version", "only \"1.0\" is supported");
  }
  for (const char* k : {"truncation", "padding"}) {
    if (auto it = root.find(k); it != root.end() && !it->is_null()) {
      return c.Error(k, "must be null (truncation and padding change encodings and are not supported)");
    }
  }
  ASSIGN_OR_RETURN(const json* model, Field(c, root, "model", ""));
  RETURN_IF_ERROR(LoadModel(c, *model));
  if (auto it = root.find("normalizer"); it != root.end() && !it->is_null()) {
    RETURN_IF_ERROR(LoadNormalizer(c, *it, "normalizer"));
  }
  if (auto it = root.find("pre_tokenizer"); it != root.end() && !it->is_null()) {
    RETURN_IF_ERROR(LoadPreTokenizer(c, *it, "pre_tokenizer"));
  }
  if (auto it = root.find("post_processor"); it != root.end() && !it->is_null()) {
    RETURN_IF_ERROR(LoadPostProcessor(c, *it, "post_processor"));
  }
  if (auto it = root.find("decoder"); it != root.end() && !it->is_null()) {
    has_decoder = true;
    RETURN_IF_ERROR(LoadDecoder(c, *it, "decoder"));
  }
  // Added tokens come last: their ids and normalized forms depend on the
  // model and the normalizer (tokenizers' serialization.rs does the same).
  if (auto it = root.find("added_tokens"); it != root.end() && !it->is_null()) {
    RETURN_IF_ERROR(LoadAdded(c, *it));
  }
  // Ids nothing maps to get llama.cpp's placeholder names.
  for (size_t id = 0; id < id_to_token.size(); ++id) {
    if (!in_model[id] && !added_by_id.contains(static_cast<int32_t>(id))) {
      id_to_token[id] = absl::StrCat("[PAD", id, "]");
    }
  }
  for (const PreStep& s : pre_steps) {
    if (s.kind == PreStep::kByteLevel) byte_level = true;
  }
  for (const DecStep& d : decoders) {
    if (d.kind == DecStep::kByteLevel) byte_level = true;
  }
  return absl::OkStatus();
}

absl::Status HfTokenizer::Impl::LoadModel(const Ctx& c, const json& m) {
  ASSIGN_OR_RETURN(std::string type, GetType(c, m, "model"));
  if (type != "BPE") return c.Unsupported("model", type, "model.type");
  if (auto it = m.find("dropout"); it != m.end() && !it->is_null()) {
    return c.Error("model.dropout", "must be null (BPE dropout is random and not supported)");
  }
  for (const char* k : {"unk_token", "continuing_subword_prefix", "end_of_word_suffix"}) {
    auto it = m.find(k);
    if (it == m.end() || it->is_null()) continue;
    if (!it->is_string()) return c.Error(absl::StrCat("model.", k), "expected a string or null");
    std::string v = it->get<std::string>();
    if (absl::string_view(k) == "unk_token") unk_token = v;
    if (absl::string_view(k) == "continuing_subword_prefix") prefix = v;
    if (absl::string_view(k) == "end_of_word_suffix") suffix = v;
  }
  ASSIGN_OR_RETURN(fuse_unk, GetBool(c, m, "fuse_unk", "model", false));
  ASSIGN_OR_RETURN(byte_fallback, GetBool(c, m, "byte_fallback", "model", false));
  ASSIGN_OR_RETURN(ignore_merges, GetBool(c, m, "ignore_merges", "model", false));

  ASSIGN_OR_RETURN(const json* v, Field(c, m, "vocab", "model"));
  if (!v->is_object()) return c.Error("model.vocab", "expected an object of token -> id");
  vocab.reserve(v->size());
  int64_t max_id = -1;
  for (auto it = v->begin(); it != v->end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 ||
        it.value().get<int64_t>() >= (int64_t{1} << 30)) {
      return c.Error(absl::StrCat("model.vocab[\"", it.key(), "\"]"), "expected a non-negative integer id");
    }
    const int64_t id = it.value().get<int64_t>();
    vocab[it.key()] = static_cast<int32_t>(id);
    max_id = std::max(max_id, id);
  }
  id_to_token.assign(static_cast<size_t>(max_id + 1), std::string());
  in_model.assign(static_cast<size_t>(max_id + 1), 0);
  for (const auto& [tok, id] : vocab) {
    if (in_model[id]) {
      return c.Error("model.vocab",
                     absl::StrCat("id ", id, " is used by both '", id_to_token[id], "' and '", tok, "'"));
    }
    in_model[id] = 1;
    id_to_token[id] = tok;
  }
  if (!unk_token.empty()) {
    auto it = vocab.find(unk_token);
    if (it == vocab.end()) return c.Error("model.unk_token", absl::StrCat("'", unk_token, "' is not in model.vocab"));
    unk = it->second;
  }

  ASSIGN_OR_RETURN(const json* mj, Field(c, m, "merges", "model"));
  if (!mj->is_array()) return c.Error("model.merges", "expected an array");
  merges.reserve(mj->size());
  merge_map.reserve(mj->size());
  std::string merged;
  static constexpr absl::string_view kMeta = "\xE2\x96\x81";
  std::vector<std::string> crossers;  // merge results holding "<c>▁", c not "▁"

  for (size_t i = 0; i < mj->size(); ++i) {
    const json& e = (*mj)[i];
    auto field = [i] { return absl::StrCat("model.merges[", i, "]"); };
    std::string a, b;
    if (e.is_string()) {
      const std::string& s = e.get_ref<const std::string&>();
      if (i == 0 && s.rfind("#version", 0) == 0) continue;
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos) {
        return c.Error(field(), absl::StrCat("'", s, "' is not two tokens separated by one space"));
      }
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      a = e[0].get<std::string>();
      b = e[1].get<std::string>();
    } else {
      return c.Error(field(), "expected \"a b\" or [\"a\", \"b\"]");
    }
    auto ia = vocab.find(a), ib = vocab.find(b);
    if (ia == vocab.end()) return c.Error(field(), absl::StrCat("token '", a, "' is not in model.vocab"));
    if (ib == vocab.end()) return c.Error(field(), absl::StrCat("token '", b, "' is not in model.vocab"));
    if (b.size() < prefix.size() || b.compare(0, prefix.size(), prefix) != 0) {
      return c.Error(field(), absl::StrCat("token '", b, "' lacks the continuing_subword_prefix '", prefix, "'"));
    }
    merged = a;
    merged.append(b, prefix.size(), std::string::npos);
    auto im = vocab.find(merged);
    if (im == vocab.end()) return c.Error(field(), absl::StrCat("merged token '", merged, "' is not in model.vocab"));
    if (crossers.size() <= 16) {
      const absl::string_view t = merged;
      for (size_t p = t.find(kMeta, 1); p != absl::string_view::npos; p = t.find(kMeta, p + 1)) {
        if (p < kMeta.size() || t.substr(p - kMeta.size(), kMeta.size()) != kMeta) {
          crossers.push_back(merged);
          break;
        }
      }
    }
    // A repeated pair keeps its last rank, as tokenizers' map collection.
    merge_map[PairKey(ia->second, ib->second)] = {static_cast<uint32_t>(merges.size()), im->second};
    merges.emplace_back(std::move(a), std::move(b));
  }

  char code[8];
  for (int b = 0; b < 256; ++b) {
    std::snprintf(code, sizeof(code), "<0x%02X>", b);
    auto it = vocab.find(code);
    byte_fallback_ids[b] = it == vocab.end() ? -1 : it->second;
  }
  raw_bytes_ok = prefix.empty() && suffix.empty();
  for (int b = 0; b < 256; ++b) {
    auto it = vocab.find(Bytes().byte_to_utf8[b]);
    byte_char_ids[b] = it == vocab.end() ? -1 : it->second;
    if (it == vocab.end()) raw_bytes_ok = false;
  }
  for (int b = 0; b < 128; ++b) {
    auto it = vocab.find(std::string(1, static_cast<char>(b)));
    ascii_ids[b] = it == vocab.end() ? -1 : it->second;
  }
  if (prefix.empty() && suffix.empty() && vocab.contains(kMeta) && crossers.size() <= 16) {
    cut_at_metaspace = true;
    metaspace_crossers = std::move(crossers);
  }
  if (raw_bytes_ok && ignore_merges) {
    std::string raw;
    for (const auto& [tok, id] : vocab) {
      if (UnmapByteLevel(tok, &raw)) raw_vocab.emplace(raw, id);
    }
  }
  return absl::OkStatus();
}

absl::Status HfTokenizer::Impl::LoadNormalizer(const Ctx& c, const json& n, const std::string& path) {
  ASSIGN_OR_RETURN(std::string type, GetType(c, n, path));
  NormStep s;
  if (type == "Sequence") {
    ASSIGN_OR_RETURN(const json* list, Field(c, n, "normalizers", path));
    if (!list->is_array()) return c.Error(path + ".normalizers", "expected an array");
    for (size_t i = 0; i < list->size(); ++i) {
      RETURN_IF_ERROR(LoadNormalizer(c, (*list)[i], absl::StrCat(path, ".normalizers[", i, "]")));
    }
    return absl::OkStatus();
  } else if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    s.kind = NormStep::kNormalForm;
    s.form = type == "NFC" ? NormalForm::kNFC : type == "NFD" ? NormalForm::kNFD
           : type == "NFKC" ? NormalForm::kNFKC : NormalForm::kNFKD;
  } else if (type == "Lowercase") {
    s.kind = NormStep::kLowercase;
  } else if (type == "Strip") {
    s.kind = NormStep::kStrip;
    ASSIGN_OR_RETURN(s.left, GetBool(c, n, "strip_left", path, true));
    ASSIGN_OR_RETURN(s.right, GetBool(c, n, "strip_right", path, true));
  } else if (type == "Replace") {
    s.kind = NormStep::kReplace;
    ASSIGN_OR_RETURN(s.pattern, GetPattern(c, n, path, options.regex_match_limit));
    ASSIGN_OR_RETURN(s.content, GetString(c, n, "content", path));
    if (s.content == "\xE2\x96\x81") metaspace_or_replace_spaces = true;
  } else if (type == "Prepend") {
    s.kind = NormStep::kPrepend;
    ASSIGN_OR_RETURN(s.content, GetString(c, n, "prepend", path));
  } else {
    return c.Unsupported("normalizer", type, path);
  }
  normalizers.push_back(std::move(s));
  return absl::OkStatus();
}

absl::StatusOr<Behavior> ParseBehavior(const Ctx& c, const json& p, const std::string& path) {
  ASSIGN_OR_RETURN(std::string b, GetString(c, p, "behavior", path));
  if (b == "Removed") return Behavior::kRemoved;
  if (b == "Isolated") return Behavior::kIsolated;
  if (b == "MergedWithPrevious") return Behavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return Behavior::kMergedWithNext;
  if (b == "Contiguous") return Behavior::kContiguous;
  return c.Error(path + ".behavior", absl::StrCat("unknown behavior '", b, "'"));
}

absl::Status HfTokenizer::Impl::LoadPreTokenizer(const Ctx& c, const json& p, const std::string& path) {
  ASSIGN_OR_RETURN(std::string type, GetType(c, p, path));
  PreStep s;
  if (type == "Sequence") {
    ASSIGN_OR_RETURN(const json* list, Field(c, p, "pretokenizers", path));
    if (!list->is_array()) return c.Error(path + ".pretokenizers", "expected an array");
    for (size_t i = 0; i < list->size(); ++i) {
      RETURN_IF_ERROR(LoadPreTokenizer(c, (*list)[i], absl::StrCat(path, ".pretokenizers[", i, "]")));
    }
    return absl::OkStatus();
  } else if (type == "Split") {
    s.kind = PreStep::kSplit;
    ASSIGN_OR_RETURN(s.pattern, GetPattern(c, p, path, options.regex_match_limit));
    ASSIGN_OR_RETURN(s.behavior, ParseBehavior(c, p, path));
    ASSIGN_OR_RETURN(s.invert, GetBool(c, p, "invert", path, std::nullopt));
  } else if (type == "ByteLevel") {
    s.kind = PreStep::kByteLevel;
    ASSIGN_OR_RETURN(s.add_prefix_space, GetBool(c, p, "add_prefix_space", path, true));
    ASSIGN_OR_RETURN(s.use_regex, GetBool(c, p, "use_regex", path, true));
    if (s.use_regex && !gpt2) {
      auto re = Regex::Compile(kGpt2Pattern, options.regex_match_limit);
      if (!re.ok()) return re.status();
      gpt2 = *std::move(re);
    }
  } else if (type == "Digits") {
    s.kind = PreStep::kDigits;
    ASSIGN_OR_RETURN(s.individual_digits, GetBool(c, p, "individual_digits", path, false));
  } else if (type == "Metaspace") {
    s.kind = PreStep::kMetaspace;
    ASSIGN_OR_RETURN(s.replacement, GetString(c, p, "replacement", path));
    size_t i = 0;
    if (s.replacement.empty() || (DecodeUtf8(s.replacement, &i), i != s.replacement.size())) {
      return c.Error(path + ".replacement", "expected one character");
    }
    std::string scheme = "always";
    if (auto it = p.find("prepend_scheme"); it != p.end() && !it->is_null()) {
      if (!it->is_string()) return c.Error(path + ".prepend_scheme", "expected a string");
      scheme = it->get<std::string>();
    }
    if (scheme == "always") {
      s.prepend = PreStep::kAlways;
    } else if (scheme == "first") {
      s.prepend = PreStep::kFirst;
    } else if (scheme == "never") {
      s.prepend = PreStep::kNever;
    } else {
      return c.Error(path + ".prepend_scheme", absl::StrCat("unknown scheme '", scheme, "'"));
    }
    if (auto it = p.find("add_prefix_space"); it != p.end() && it->is_boolean() && !it->get<bool>()) {
      if (s.prepend != PreStep::kNever) {
        return c.Error(path + ".add_prefix_space", "false does not match the declared prepend_scheme");
      }
    }
    ASSIGN_OR_RETURN(s.split, GetBool(c, p, "split", path, true));
    metaspace_or_replace_spaces = true;
  } else {
    return c.Unsupported("pre_tokenizer", type, path);
  }
  pre_steps.push_back(std::move(s));
  return absl::OkStatus();
}

absl::Status HfTokenizer::Impl::LoadPostProcessor(const Ctx& c, const json& p, const std::string& path) {
  ASSIGN_OR_RETURN(std::string type, GetType(c, p, path));
  if (type == "Sequence") {
    ASSIGN_OR_RETURN(const json* list, Field(c, p, "processors", path));
    if (!list->is_array()) return c.Error(path + ".processors", "expected an array");
    for (size_t i = 0; i < list->size(); ++i) {
      RETURN_IF_ERROR(LoadPostProcessor(c, (*list)[i], absl::StrCat(path, ".processors[", i, "]")));
    }
    return absl::OkStatus();
  }
  if (type == "ByteLevel") return absl::OkStatus();  // only trims offsets
  if (type != "TemplateProcessing") return c.Unsupported("post_processor", type, path);
  ASSIGN_OR_RETURN(const json* single, Field(c, p, "single", path));
  ASSIGN_OR_RETURN(const json* specials, Field(c, p, "special_tokens", path));
  if (!single->is_array()) return c.Error(path + ".single", "expected an array");
  if (!specials->is_object()) return c.Error(path + ".special_tokens", "expected an object");
  std::vector<TemplateItem> items;
  int sequences = 0;
  for (size_t i = 0; i < single->size(); ++i) {
    const json& it = (*single)[i];
    const std::string field = absl::StrCat(path, ".single[", i, "]");
    if (it.is_object() && it.contains("Sequence")) {
      ASSIGN_OR_RETURN(std::string id, GetString(c, it["Sequence"], "id", field + ".Sequence"));
      if (id != "A") return c.Error(field + ".Sequence.id", "the single template can only hold sequence A");
      items.push_back({true, {}});
      ++sequences;
    } else if (it.is_object() && it.contains("SpecialToken")) {
      ASSIGN_OR_RETURN(std::string id, GetString(c, it["SpecialToken"], "id", field + ".SpecialToken"));
      auto sp = specials->find(id);
      if (sp == specials->end()) {
        return c.Error(field + ".SpecialToken.id", absl::StrCat("'", id, "' is not in ", path, ".special_tokens"));
      }
      const std::string sfield = absl::StrCat(path, ".special_tokens[\"", id, "\"].ids");
      auto ids = sp->find("ids");
      if (ids == sp->end() || !ids->is_array()) return c.Error(sfield, "expected an array of ids");
      TemplateItem t;
      for (const json& x : *ids) {
        if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() >= (int64_t{1} << 30)) {
          return c.Error(sfield, "expected non-negative integer ids");
        }
        t.ids.push_back(x.get<int32_t>());
      }
      items.push_back(std::move(t));
    } else {
      return c.Error(field, "expected {\"Sequence\": ...} or {\"SpecialToken\": ...}");
    }
  }
  if (sequences != 1) return c.Error(path + ".single", "must hold sequence A exactly once");
  templates.push_back(std::move(items));
  return absl::OkStatus();
}

absl::Status HfTokenizer::Impl::LoadDecoder(const Ctx& c, const json& d, const std::string& path) {
  ASSIGN_OR_RETURN(std::string type, GetType(c, d, path));
  DecStep s;
  if (type == "Sequence") {
    ASSIGN_OR_RETURN(const json* list, Field(c, d, "decoders", path));
    if (!list->is_array()) return c.Error(path + ".decoders", "expected an array");
    for (size_t i = 0; i < list->size(); ++i) {
      RETURN_IF_ERROR(LoadDecoder(c, (*list)[i], absl::StrCat(path, ".decoders[", i, "]")));
    }
    return absl::OkStatus();
  } else if (type == "ByteLevel") {
    s.kind = DecStep::kByteLevel;
  } else if (type == "ByteFallback") {
    s.kind = DecStep::kByteFallback;
  } else if (type == "Fuse") {
    s.kind = DecStep::kFuse;
  } else if (type == "Strip") {
    s.kind = DecStep::kStrip;
    ASSIGN_OR_RETURN(std::string content, GetString(c, d, "content", path));
    size_t i = 0;
    if (content.empty() || (s.strip_char = DecodeUtf8(content, &i), i != content.size())) {
      return c.Error(path + ".content", "expected one character");
    }
    for (const char* k : {"start", "stop"}) {
      ASSIGN_OR_RETURN(const json* v, Field(c, d, k, path));
      if (!v->is_number_unsigned() && !(v->is_number_integer() && v->get<int64_t>() >= 0)) {
        return c.Error(absl::StrCat(path, ".", k), "expected a non-negative integer");
      }
      (absl::string_view(k) == "start" ? s.strip_start : s.strip_stop) = v->get<size_t>();
    }
  } else if (type == "Replace") {
    s.kind = DecStep::kReplace;
    ASSIGN_OR_RETURN(s.pattern, GetPattern(c, d, path, options.regex_match_limit));
    ASSIGN_OR_RETURN(s.content, GetString(c, d, "content", path));
  } else if (type == "Metaspace") {
    s.kind = DecStep::kMetaspace;
    ASSIGN_OR_RETURN(std::string rep, GetString(c, d, "replacement", path));
    size_t i = 0;
    if (rep.empty() || (s.replacement = DecodeUtf8(rep, &i), i != rep.size())) {
      return c.Error(path + ".replacement", "expected one character");
    }
    std::string scheme = "always";
    if (auto it = d.find("prepend_scheme"); it != d.end() && it->is_string()) scheme = it->get<std::string>();
    if (auto it = d.find("add_prefix_space"); it != d.end() && it->is_boolean() && !it->get<bool>()) {
      scheme = "never";
    }
    s.metaspace_prepend = scheme != "never";
  } else {
    return c.Unsupported("decoder", type, path);
  }
  decoders.push_back(std::move(s));
  return absl::OkStatus();
}

absl::Status HfTokenizer::Impl::LoadAdded(const Ctx& c, const json& a) {
  if (!a.is_array()) return c.Error("added_tokens", "expected an array");
  // Ids as tokenizers assigns them (AddedVocabulary::add_tokens): the token's
  // existing id if the string is known, else the next free id.
  int64_t next_id = static_cast<int64_t>(vocab.size());
  for (size_t i = 0; i < a.size(); ++i) {
    const json& t = a[i];
    const std::string path = absl::StrCat("added_tokens[", i, "]");
    if (!t.is_object()) return c.Error(path, "expected an object");
    AddedToken tok;
    ASSIGN_OR_RETURN(tok.content, GetString(c, t, "content", path));
    ASSIGN_OR_RETURN(tok.special, GetBool(c, t, "special", path, false));
    ASSIGN_OR_RETURN(tok.normalized, GetBool(c, t, "normalized", path, !tok.special));
    ASSIGN_OR_RETURN(tok.lstrip, GetBool(c, t, "lstrip", path, false));
    ASSIGN_OR_RETURN(tok.rstrip, GetBool(c, t, "rstrip", path, false));
    ASSIGN_OR_RETURN(tok.single_word, GetBool(c, t, "single_word", path, false));
    if (tok.content.empty()) continue;
    if (!IsValidUtf8(tok.content)) return c.Error(path + ".content", "not valid UTF-8");
    if (auto it = added_ids.find(tok.content); it != added_ids.end()) {
      tok.id = it->second;
    } else if (auto it = vocab.find(tok.content); it != vocab.end()) {
      tok.id = it->second;
    } else {
      tok.id = static_cast<int32_t>(next_id++);
    }
    added_ids[tok.content] = tok.id;
    if (tok.normalized && !normalizers.empty()) {
      EncodeState st;
      absl::string_view normed;
      bool front_kept;
      RETURN_IF_ERROR(RunNormalizers(tok.content, st, &normed, &front_kept));
      if (normed != tok.content) added_normalized[tok.id] = std::string(normed);
    }
    // A token re-added under the same id replaces the earlier entry.
    if (auto it = added_by_id.find(tok.id); it != added_by_id.end()) {
      added[it->second] = tok;
    } else {
      added_by_id[tok.id] = added.size();
      added.push_back(tok);
    }
    if (tok.special) special_contents.insert(tok.content);
  }
  for (const AddedToken& tok : added) {
    if (tok.id >= static_cast<int32_t>(id_to_token.size())) {
      const size_t old = id_to_token.size();
      id_to_token.resize(tok.id + 1);
      in_model.resize(tok.id + 1, 0);
      for (size_t k = old; k < id_to_token.size(); ++k) id_to_token[k].clear();
    }
    id_to_token[tok.id] = tok.content;
    if (tok.special) special_ids.push_back(tok.id);
    if (tok.normalized) {
      auto it = added_normalized.find(tok.id);
      norm_trie.Add(it == added_normalized.end() ? tok.content : it->second, tok.id);
    } else {
      raw_trie.Add(tok.content, tok.id);
    }
  }
  std::sort(special_ids.begin(), special_ids.end());
  special_ids.erase(std::unique(special_ids.begin(), special_ids.end()), special_ids.end());
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Encoding.

absl::Status HfTokenizer::Impl::RunNormalizers(absl::string_view in, EncodeState& st, absl::string_view* out,
                                               bool* front_kept) const {
  *front_kept = true;
  absl::string_view cur = in;
  std::string* bufs[2] = {&st.norm_a, &st.norm_b};
  int which = 0;
  for (const NormStep& s : normalizers) {
    std::string* dst = bufs[which];
    switch (s.kind) {
      case NormStep::kNormalForm:
        RETURN_IF_ERROR(Normalize(s.form, cur, dst));
        break;
      case NormStep::kLowercase:
        RETURN_IF_ERROR(Lowercase(cur, dst));
        break;
      case NormStep::kStrip: {
        size_t b = 0, e = cur.size();
        if (s.left) {
          while (b < e) {
            size_t j = b;
            if (!IsWhiteSpace(DecodeUtf8(cur, &j))) break;
            b = j;
          }
        }
        if (s.right) {
          while (e > b) {
            size_t k = e - 1;
            while (k > b && (static_cast<unsigned char>(cur[k]) & 0xC0) == 0x80) --k;
            size_t j = k;
            if (!IsWhiteSpace(DecodeUtf8(cur, &j))) break;
            e = k;
          }
        }
        dst->assign(cur.data() + b, e - b);
        if (b > 0) *front_kept = false;
        break;
      }
      case NormStep::kReplace:
        RETURN_IF_ERROR(ReplaceAll(s.pattern, s.content, cur, dst, &st.norm_scratch));
        if (s.content.empty() && !st.norm_scratch.empty() && st.norm_scratch[0].first == 0 &&
            st.norm_scratch[0].second > 0) {
          *front_kept = false;
        }
        break;
      case NormStep::kPrepend:
        dst->clear();
        if (!cur.empty()) dst->append(s.content);
        absl::StrAppend(dst, cur);
        break;
    }
    cur = *dst;
    which ^= 1;
  }
  *out = cur;
  return absl::OkStatus();
}

// tokenizers' AddedVocabulary::find_matches: leftmost-longest, a match
// failing single_word still consumes its text, lstrip/rstrip widen it.
void HfTokenizer::Impl::FindAdded(absl::string_view text, const Trie& trie, std::vector<Segment>* segs) const {
  segs->clear();
  if (trie.empty()) {
    segs->push_back({0, text.size(), -1});
    return;
  }
  size_t start_offset = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    if (!trie.MayStart(static_cast<unsigned char>(text[pos]))) {
      ++pos;
      continue;
    }
    auto [id, len] = trie.Longest(text, pos);
    if (id < 0) {
      ++pos;
      continue;
    }
    size_t start = pos, stop = pos + len;
    pos = stop;
    const AddedToken& tok = added[added_by_id.at(id)];
    if (tok.single_word) {
      bool start_space = true, stop_space = true;
      if (start > 0) {
        size_t k = start - 1;
        while (k > 0 && (static_cast<unsigned char>(text[k]) & 0xC0) == 0x80) --k;
        size_t j = k;
        start_space = !IsWordChar(DecodeUtf8(text, &j));
      }
      if (stop < text.size()) {
        size_t j = stop;
        stop_space = !IsWordChar(DecodeUtf8(text, &j));
      }
      if (!start_space || !stop_space) continue;
    }
    if (tok.lstrip) {
      size_t b = start;
      while (b > 0) {
        size_t k = b - 1;
        while (k > 0 && (static_cast<unsigned char>(text[k]) & 0xC0) == 0x80) --k;
        size_t j = k;
        if (!IsWhiteSpace(DecodeUtf8(text, &j))) break;
        b = k;
      }
      start = std::max(b, start_offset);
    }
    if (tok.rstrip) {
      while (stop < text.size()) {
        size_t j = stop;
        if (!IsWhiteSpace(DecodeUtf8(text, &j))) break;
        stop = j;
      }
      // The search resumes at the match's own end, as tokenizers' does.
    }
    if (start_offset < start) segs->push_back({start_offset, start, -1});
    segs->push_back({start, stop, id});
    start_offset = stop;
  }
  if (start_offset < text.size()) segs->push_back({start_offset, text.size(), -1});
}

absl::Status HfTokenizer::Impl::EncodeText(absl::string_view text, EncodeState& st, std::vector<int32_t>* ids) const {
  // Per-level scratch, sized once: PreTokenize holds references into it.
  st.level_matches.resize(pre_steps.size());
  st.level_pieces.resize(pre_steps.size());
  st.level_buf.resize(pre_steps.size());
  st.level_mapped.resize(pre_steps.size());
  FindAdded(text, raw_trie, &st.segs1);
  // segs1 is not touched below this loop; segs2 and the normalizer buffers are
  // reused per outer segment.
  for (const Segment& s1 : st.segs1) {
    if (s1.id >= 0) {
      ids->push_back(s1.id);
      continue;
    }
    absl::string_view piece = text.substr(s1.start, s1.end - s1.start);
    if (piece.empty()) continue;
    absl::string_view normed = piece;
    bool front_kept = true;
    if (!normalizers.empty()) RETURN_IF_ERROR(RunNormalizers(piece, st, &normed, &front_kept));
    const bool at_start = s1.start == 0 && front_kept;
    if (norm_trie.empty()) {
      RETURN_IF_ERROR(PreTokenize(0, normed, at_start, false, st, ids));
      continue;
    }
    // Neither segs2 nor the normalizer buffers are used by the pre-tokenizer.
    FindAdded(normed, norm_trie, &st.segs2);
    for (const Segment& s2 : st.segs2) {
      if (s2.id >= 0) {
        ids->push_back(s2.id);
      } else if (s2.end > s2.start) {
        RETURN_IF_ERROR(PreTokenize(0, normed.substr(s2.start, s2.end - s2.start), at_start && s2.start == 0,
                                    false, st, ids));
      }
    }
  }
  return absl::OkStatus();
}

namespace {

// (offsets, is_match) list of tokenizers' Pattern::find_matches.
void MatchesToSplits(const std::vector<std::pair<size_t, size_t>>& matches, size_t len, bool invert,
                     Behavior behavior, std::vector<std::pair<size_t, size_t>>* out) {
  struct M {
    size_t s, e;
    bool m;
  };
  // Small inline buffer would be nicer; splits per piece are few.
  thread_local std::vector<M> all;
  all.clear();
  size_t prev = 0;
  for (auto [s, e] : matches) {
    if (prev != s) all.push_back({prev, s, invert});
    all.push_back({s, e, !invert});
    prev = e;
  }
  if (prev != len) all.push_back({prev, len, invert});
  out->clear();
  switch (behavior) {
    case Behavior::kIsolated:
      for (const M& m : all) out->emplace_back(m.s, m.e);
      break;
    case Behavior::kRemoved:
      for (const M& m : all) {
        if (!m.m) out->emplace_back(m.s, m.e);
      }
      break;
    case Behavior::kContiguous: {
      bool previous = false;
      for (const M& m : all) {
        if (m.m == previous && !out->empty()) {
          out->back().second = m.e;
        } else {
          out->emplace_back(m.s, m.e);
        }
        previous = m.m;
      }
      break;
    }
    case Behavior::kMergedWithPrevious: {
      bool previous = false;
      for (const M& m : all) {
        if (m.m && !previous && !out->empty()) {
          out->back().second = m.e;
        } else {
          out->emplace_back(m.s, m.e);
        }
        previous = m.m;
      }
      break;
    }
    case Behavior::kMergedWithNext: {
      bool previous = false;
      for (size_t k = all.size(); k-- > 0;) {
        const M& m = all[k];
        if (m.m && !previous && !out->empty()) {
          out->back().first = m.s;
        } else {
          out->emplace_back(m.s, m.e);
        }
        previous = m.m;
      }
      std::reverse(out->begin(), out->end());
      break;
    }
  }
}

}  // namespace

absl::Status HfTokenizer::Impl::PreTokenize(size_t step, absl::string_view text, bool at_start, bool raw_bytes,
                                            EncodeState& st, std::vector<int32_t>* ids) const {
  if (text.empty()) return absl::OkStatus();  // tokenizers drops empty splits
  if (step == pre_steps.size()) {
    Model(text, raw_bytes, st, ids);
    return absl::OkStatus();
  }
  const PreStep& s = pre_steps[step];
  auto& matches = st.level_matches[step];
  auto& pieces = st.level_pieces[step];
  std::string& buf = st.level_buf[step];
  const bool last = step + 1 == pre_steps.size();
  switch (s.kind) {
    case PreStep::kSplit: {
      RETURN_IF_ERROR(FindPattern(s.pattern, text, &matches));
      MatchesToSplits(matches, text.size(), s.invert, s.behavior, &pieces);
      for (size_t k = 0; k < pieces.size(); ++k) {
        auto [b, e] = st.level_pieces[step][k];
        RETURN_IF_ERROR(PreTokenize(step + 1, text.substr(b, e - b), at_start && b == 0, false, st, ids));
      }
      return absl::OkStatus();
    }
    case PreStep::kByteLevel: {
      absl::string_view t = text;
      if (s.add_prefix_space && t[0] != ' ') {
        buf.assign(" ");
        absl::StrAppend(&buf, t);
        t = buf;
      }
      if (s.use_regex) {
        matches.clear();
        RETURN_IF_ERROR(gpt2->FindAll(t, &matches));
        MatchesToSplits(matches, t.size(), false, Behavior::kIsolated, &pieces);
      } else {
        pieces.assign(1, {0, t.size()});
      }
      for (size_t k = 0; k < pieces.size(); ++k) {
        auto [b, e] = st.level_pieces[step][k];
        absl::string_view w = t.substr(b, e - b);
        if (last) {
          // The model reads raw bytes through the byte-level map directly.
          RETURN_IF_ERROR(PreTokenize(step + 1, w, at_start && b == 0, true, st, ids));
        } else {
          std::string& mapped = st.level_mapped[step];
          mapped.clear();
          AppendByteLevel(w, &mapped);
          RETURN_IF_ERROR(PreTokenize(step + 1, mapped, at_start && b == 0, false, st, ids));
        }
      }
      return absl::OkStatus();
    }
    case PreStep::kDigits: {
      // tokenizers splits on char::is_numeric: each numeric char is a match,
      // isolated one by one or grouped into runs.
      matches.clear();
      for (size_t i = 0; i < text.size();) {
        const size_t at = i;
        const uint32_t cp = DecodeUtf8(text, &i);
        if (cp < 0x80 ? (cp >= '0' && cp <= '9') : IsNumeric(cp)) matches.emplace_back(at, i);
      }
      MatchesToSplits(matches, text.size(), false, s.individual_digits ? Behavior::kIsolated : Behavior::kContiguous,
                      &pieces);
      for (size_t k = 0; k < pieces.size(); ++k) {
        auto [b, e] = st.level_pieces[step][k];
        RETURN_IF_ERROR(PreTokenize(step + 1, text.substr(b, e - b), at_start && b == 0, false, st, ids));
      }
      return absl::OkStatus();
    }
    case PreStep::kMetaspace: {
      buf.clear();
      const absl::string_view rep = s.replacement;
      const bool starts = text.size() >= 1 && (text[0] == ' ' || text.substr(0, rep.size()) == rep);
      if (!starts && (s.prepend == PreStep::kAlways || (s.prepend == PreStep::kFirst && at_start))) {
        absl::StrAppend(&buf, rep);
      }
      for (char ch : text) {
        if (ch == ' ') {
          absl::StrAppend(&buf, rep);
        } else {
          buf.push_back(ch);
        }
      }
      absl::string_view t = buf;
      if (!s.split) return PreTokenize(step + 1, t, at_start, false, st, ids);
      matches.clear();
      size_t pos = 0;
      while ((pos = t.find(rep, pos)) != absl::string_view::npos) {
        matches.emplace_back(pos, pos + rep.size());
        pos += rep.size();
      }
      MatchesToSplits(matches, t.size(), false, Behavior::kMergedWithNext, &pieces);
      for (size_t k = 0; k < pieces.size(); ++k) {
        auto [b, e] = st.level_pieces[step][k];
        RETURN_IF_ERROR(PreTokenize(step + 1, t.substr(b, e - b), at_start && b == 0, false, st, ids));
      }
      return absl::OkStatus();
    }
  }
  return absl::OkStatus();
}

void HfTokenizer::Impl::Model(absl::string_view word, bool raw_bytes, EncodeState& st,
                              std::vector<int32_t>* ids) const {
  if (raw_bytes && !raw_bytes_ok) {
    st.word_buf.clear();
    AppendByteLevel(word, &st.word_buf);
    // word_buf is reused by MergeWord; keep a private copy.
    const std::string mapped = st.word_buf;
    Model(mapped, false, st, ids);
    return;
  }
  if (ignore_merges) {
    const auto& map = raw_bytes ? raw_vocab : vocab;
    if (auto it = map.find(word); it != map.end()) {
      ids->push_back(it->second);
      return;
    }
  }
  if (cut_at_metaspace && !raw_bytes && word.size() > 3) {
    static constexpr absl::string_view kMeta = "\xE2\x96\x81";
    size_t begin = 0;
    for (size_t p = word.find(kMeta, 1); p != absl::string_view::npos; p = word.find(kMeta, p + kMeta.size())) {
      // A cut needs a char other than "▁" before it.
      if (p >= kMeta.size() && word.substr(p - kMeta.size(), kMeta.size()) == kMeta) continue;
      bool blocked = false;
      for (const std::string& c : metaspace_crossers) {
        // An occurrence of c covering both sides of p starts in [lo, p).
        const size_t lo = p + 1 > c.size() ? p + 1 - c.size() : 0;
        if (word.substr(lo, p - lo + c.size() - 1).find(c) != absl::string_view::npos) {
          blocked = true;
          break;
        }
      }
      if (blocked) continue;
      CachedMergeWord(word.substr(begin, p - begin), false, st, ids);
      begin = p;
    }
    CachedMergeWord(word.substr(begin), false, st, ids);
    return;
  }
  CachedMergeWord(word, raw_bytes, st, ids);
}

void HfTokenizer::Impl::CachedMergeWord(absl::string_view word, bool raw_bytes, EncodeState& st,
                                        std::vector<int32_t>* ids) const {
  WordCache& cache = *st.cache;
  auto& cmap = cache.map[raw_bytes ? 1 : 0];
  if (auto it = cmap.find(word); it != cmap.end()) {
    ids->insert(ids->end(), cache.arena.begin() + it->second.first,
                cache.arena.begin() + it->second.first + it->second.second);
    return;
  }
  const size_t before = ids->size();
  MergeWord(word, raw_bytes, st, ids);
  if (word.size() < kMaxCachedWordBytes && cmap.size() < kMaxCacheEntries) {
    const auto off = static_cast<uint32_t>(cache.arena.size());
    cache.arena.insert(cache.arena.end(), ids->begin() + before, ids->end());
    cmap.emplace(std::string(word), std::make_pair(off, static_cast<uint32_t>(ids->size() - before)));
  }
}

void HfTokenizer::Impl::MergeWord(absl::string_view word, bool raw_bytes, EncodeState& st,
                                  std::vector<int32_t>* ids) const {
  std::vector<Symbol>& syms = st.syms;
  syms.clear();
  auto add = [&](int32_t id, int32_t len) {
    const auto n = static_cast<int32_t>(syms.size());
    if (n > 0) syms.back().next = n;
    syms.push_back({id, n - 1, -1, len});
  };
  if (raw_bytes) {
    for (unsigned char b : word) add(byte_char_ids[b], 1);
  } else {
    // tokenizers' BPE::merge_word: one symbol per char (with the subword
    // prefix/suffix), else byte_fallback bytes, else unk (fused if asked).
    int32_t unk_pending = -1, unk_len = 0;
    size_t i = 0;
    while (i < word.size()) {
      const size_t len = Utf8SeqLen(static_cast<unsigned char>(word[i]));
      const bool first = i == 0, is_last = i + len >= word.size();
      absl::string_view ch = word.substr(i, len);
      if ((!first && !prefix.empty()) || (is_last && !suffix.empty())) {
        st.char_buf.clear();
        if (!first) st.char_buf.append(prefix);
        absl::StrAppend(&st.char_buf, ch);
        if (is_last) st.char_buf.append(suffix);
        ch = st.char_buf;
      }
      i += len;
      if (len == 1 && ch.size() == 1 && ascii_ids[static_cast<unsigned char>(ch[0])] >= 0) {
        if (unk_pending >= 0) {
          add(unk_pending, unk_len);
          unk_pending = -1;
        }
        add(ascii_ids[static_cast<unsigned char>(ch[0])], 1);
        continue;
      }
      if (auto it = vocab.find(ch); it != vocab.end()) {
        if (unk_pending >= 0) {
          add(unk_pending, unk_len);
          unk_pending = -1;
        }
        add(it->second, static_cast<int32_t>(len));
        continue;
      }
      if (byte_fallback) {
        bool all = true;
        for (unsigned char b : ch) all = all && byte_fallback_ids[b] >= 0;
        if (all) {
          for (unsigned char b : ch) add(byte_fallback_ids[b], 1);
          continue;
        }
      }
      if (unk.has_value()) {
        if (unk_pending >= 0 && fuse_unk) {
          unk_len += static_cast<int32_t>(len);
        } else {
          if (unk_pending >= 0) add(unk_pending, unk_len);
          unk_pending = *unk;
          unk_len = static_cast<int32_t>(len);
        }
      }
    }
    if (unk_pending >= 0) add(unk_pending, unk_len);
  }
  const auto n = static_cast<int32_t>(syms.size());
  if (n > 1) {
    std::vector<MergeItem>& heap = st.heap;
    heap.clear();
    for (int32_t k = 0; k + 1 < n; ++k) {
      auto it = merge_map.find(PairKey(syms[k].id, syms[k + 1].id));
      if (it != merge_map.end()) heap.push_back({it->second.first, static_cast<uint32_t>(k), it->second.second});
    }
    std::make_heap(heap.begin(), heap.end());
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end());
      const MergeItem top = heap.back();
      heap.pop_back();
      Symbol& cur = syms[top.pos];
      if (cur.len == 0 || cur.next == -1) continue;
      const int32_t next_pos = cur.next;
      const Symbol right = syms[next_pos];
      auto it = merge_map.find(PairKey(cur.id, right.id));
      if (it == merge_map.end() || it->second.second != top.new_id) continue;
      cur.id = top.new_id;
      cur.len += right.len;
      cur.next = right.next;
      syms[next_pos].len = 0;
      if (right.next >= 0 && right.next < n) syms[right.next].prev = static_cast<int32_t>(top.pos);
      if (cur.prev >= 0) {
        auto pit = merge_map.find(PairKey(syms[cur.prev].id, cur.id));
        if (pit != merge_map.end()) {
          heap.push_back({pit->second.first, static_cast<uint32_t>(cur.prev), pit->second.second});
          std::push_heap(heap.begin(), heap.end());
        }
      }
      if (cur.next >= 0 && cur.next < n) {
        auto nit = merge_map.find(PairKey(cur.id, syms[cur.next].id));
        if (nit != merge_map.end()) {
          heap.push_back({nit->second.first, top.pos, nit->second.second});
          std::push_heap(heap.begin(), heap.end());
        }
      }
    }
  }
  for (const Symbol& s : syms) {
    if (s.len != 0) ids->push_back(s.id);
  }
}

// ---------------------------------------------------------------------------

HfTokenizer::HfTokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HfTokenizer::HfTokenizer(HfTokenizer&&) noexcept = default;
HfTokenizer& HfTokenizer::operator=(HfTokenizer&&) noexcept = default;
HfTokenizer::~HfTokenizer() = default;

absl::StatusOr<HfTokenizer> HfTokenizer::FromFile(const std::string& path, const HfTokenizerOptions& options) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return FromJson(text, path, options);
}

absl::StatusOr<HfTokenizer> HfTokenizer::FromJson(absl::string_view text, const std::string& name,
                                                  const HfTokenizerOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->name = name;
  impl->options = options;
  json root;
  try {
    root = json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": not valid JSON: ", e.what()));
  }
  try {
    RETURN_IF_ERROR(impl->Load(root));
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": unexpected JSON content: ", e.what()));
  }
  return HfTokenizer(std::move(impl));
}

absl::StatusOr<std::vector<int32_t>> HfTokenizer::Encode(absl::string_view text, bool add_special_tokens) const {
  const Impl& m = *impl_;
  std::string lossy;
  if (!IsValidUtf8(text)) {
    lossy = Utf8Lossy(text);
    text = lossy;
  }
  EncodeState st;
  // One caller at a time fills the shared word cache; concurrent callers
  // use a private one (same results, only slower).
  std::unique_lock<std::mutex> lock(m.cache_mu, std::try_to_lock);
  WordCache local;
  st.cache = lock.owns_lock() ? &m.cache : &local;
  std::vector<int32_t> body;
  body.reserve(text.size() / 3 + 4);
  RETURN_IF_ERROR(m.EncodeText(text, st, &body));
  if (!add_special_tokens || m.templates.empty()) return body;
  std::vector<int32_t> out;
  for (const auto& items : m.templates) {
    out.clear();
    for (const TemplateItem& it : items) {
      if (it.is_sequence) {
        out.insert(out.end(), body.begin(), body.end());
      } else {
        out.insert(out.end(), it.ids.begin(), it.ids.end());
      }
    }
    body.swap(out);
  }
  return body;
}

std::string HfTokenizer::Decode(absl::Span<const int32_t> ids, bool skip_special_tokens) const {
  const Impl& m = *impl_;
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    const std::string* tok = nullptr;
    if (auto it = m.added_by_id.find(id); it != m.added_by_id.end()) {
      auto n = m.added_normalized.find(id);
      tok = n != m.added_normalized.end() ? &n->second : &m.added[it->second].content;
    } else if (id >= 0 && id < static_cast<int32_t>(m.in_model.size()) && m.in_model[id]) {
      tok = &m.id_to_token[id];
    }
    if (tok == nullptr) continue;
    if (skip_special_tokens && m.special_contents.contains(*tok)) continue;
    tokens.push_back(*tok);
  }
  if (!m.has_decoder) return absl::StrJoin(tokens, " ");
  std::vector<std::pair<size_t, size_t>> scratch;
  for (const DecStep& d : m.decoders) {
    switch (d.kind) {
      case DecStep::kByteLevel: {
        std::string bytes, raw;
        for (const std::string& t : tokens) {
          if (UnmapByteLevel(t, &raw)) {
            bytes += raw;
          } else {
            bytes += t;
          }
        }
        tokens.assign(1, Utf8Lossy(bytes));
        break;
      }
      case DecStep::kByteFallback: {
        std::vector<std::string> out;
        std::string pending;
        auto flush = [&] {
          if (pending.empty()) return;
          if (IsValidUtf8(pending)) {
            out.push_back(pending);
          } else {
            for (size_t k = 0; k < pending.size(); ++k) out.emplace_back("\xEF\xBF\xBD");
          }
          pending.clear();
        };
        for (std::string& t : tokens) {
          int byte = -1;
          if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>') {
            unsigned v = 0;
            bool ok = true;
            for (int k = 3; k < 5; ++k) {
              const char h = t[k];
              v <<= 4;
              if (h >= '0' && h <= '9') v |= h - '0';
              else if (h >= 'a' && h <= 'f') v |= h - 'a' + 10;
              else if (h >= 'A' && h <= 'F') v |= h - 'A' + 10;
              else ok = false;
            }
            if (ok) byte = static_cast<int>(v);
          }
          if (byte >= 0) {
            pending.push_back(static_cast<char>(byte));
          } else {
            flush();
            out.push_back(std::move(t));
          }
        }
        flush();
        tokens.swap(out);
        break;
      }
      case DecStep::kFuse:
        tokens.assign(1, absl::StrJoin(tokens, ""));
        break;
      case DecStep::kStrip:
        for (std::string& t : tokens) {
          std::vector<std::pair<size_t, uint32_t>> chars;  // (byte offset, cp)
          for (size_t i = 0; i < t.size();) {
            const size_t at = i;
            chars.emplace_back(at, DecodeUtf8(t, &i));
          }
          size_t start_cut = 0;
          for (size_t k = 0; k < d.strip_start && k < chars.size(); ++k) {
            if (chars[k].second != d.strip_char) break;
            start_cut = k + 1;
          }
          size_t stop_cut = chars.size();
          for (size_t k = 0; k < d.strip_stop && k < chars.size(); ++k) {
            const size_t idx = chars.size() - k - 1;
            if (chars[idx].second != d.strip_char) break;
            stop_cut = idx;
          }
          if (stop_cut <= start_cut) {
            t.clear();
          } else {
            const size_t b = chars[start_cut].first;
            const size_t e = stop_cut < chars.size() ? chars[stop_cut].first : t.size();
            t = t.substr(b, e - b);
          }
        }
        break;
      case DecStep::kReplace:
        for (std::string& t : tokens) {
          std::string out;
          // Decoder patterns are the file's own; a match-limit failure here
          // leaves the token as it is.
          if (ReplaceAll(d.pattern, d.content, t, &out, &scratch).ok()) t = std::move(out);
        }
        break;
      case DecStep::kMetaspace:
        for (size_t k = 0; k < tokens.size(); ++k) {
          std::string out;
          const std::string& t = tokens[k];
          for (size_t i = 0; i < t.size();) {
            const size_t at = i;
            const uint32_t cp = DecodeUtf8(t, &i);
            if (cp == d.replacement) {
              if (!(k == 0 && d.metaspace_prepend)) out.push_back(' ');
            } else {
              out.append(t, at, i - at);
            }
          }
          tokens[k] = std::move(out);
        }
        break;
    }
  }
  return absl::StrJoin(tokens, "");
}

int32_t HfTokenizer::vocab_size() const { return static_cast<int32_t>(impl_->id_to_token.size()); }

const std::string& HfTokenizer::token(int32_t id) const {
  static const std::string* empty = new std::string();
  if (id < 0 || id >= vocab_size()) return *empty;
  return impl_->id_to_token[id];
}

std::optional<int32_t> HfTokenizer::TokenToId(absl::string_view token) const {
  if (auto it = impl_->added_ids.find(token); it != impl_->added_ids.end()) return it->second;
  if (auto it = impl_->vocab.find(token); it != impl_->vocab.end()) return it->second;
  return std::nullopt;
}

TokenType HfTokenizer::token_type(int32_t id) const {
  const Impl& m = *impl_;
  if (id < 0 || id >= vocab_size()) return TokenType::kUnused;
  if (m.unk.has_value() && *m.unk == id) return TokenType::kUnknown;
  if (auto it = m.added_by_id.find(id); it != m.added_by_id.end()) {
    return m.added[it->second].special ? TokenType::kControl : TokenType::kUserDefined;
  }
  if (!m.in_model[id]) return TokenType::kUnused;
  if (m.byte_fallback) {
    const std::string& t = m.id_to_token[id];
    if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>') return TokenType::kByte;
  }
  return TokenType::kNormal;
}

bool HfTokenizer::is_special(int32_t id) const {
  auto it = impl_->added_by_id.find(id);
  return it != impl_->added_by_id.end() && impl_->added[it->second].special;
}

const std::vector<int32_t>& HfTokenizer::special_ids() const { return impl_->special_ids; }

std::optional<int32_t> HfTokenizer::bos_id() const {
  if (impl_->templates.empty()) return std::nullopt;
  const auto& items = impl_->templates.back();
  if (items.empty() || items[0].is_sequence || items[0].ids.empty()) return std::nullopt;
  return items[0].ids[0];
}

std::optional<int32_t> HfTokenizer::unk_id() const { return impl_->unk; }

const std::vector<std::pair<std::string, std::string>>& HfTokenizer::merges() const { return impl_->merges; }

bool HfTokenizer::is_byte_level() const { return impl_->byte_level; }

bool HfTokenizer::is_sentencepiece_style() const {
  return !impl_->byte_level && (impl_->byte_fallback || impl_->metaspace_or_replace_spaces);
}

}  // namespace qatk::tokenizer
