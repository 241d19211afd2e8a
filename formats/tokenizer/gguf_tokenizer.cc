#include "formats/tokenizer/gguf_tokenizer.h"

#include <algorithm>
#include <cstdio>
#include <queue>
#include <utility>

#include "absl/strings/str_cat.h"
#include "formats/util/status_macros.h"
#ifdef QATK_HAVE_HF_TOKENIZER
#include "formats/tokenizer/hf_tokenizer.h"
#include "nlohmann/json.hpp"
#endif

namespace qatk::tokenizer {

#ifndef QATK_HAVE_HF_TOKENIZER
class HfTokenizer {};  // never created: "gpt2" vocabularies fail in Create
#endif
namespace {

constexpr char kSpaceMarker[] = "\xE2\x96\x81";  // U+2581

size_t Utf8Len(uint8_t c) {
  static const size_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[c >> 4];
}

struct Symbol {
  int prev, next;
  size_t offset, n;  // bytes of the escaped text
};

struct Bigram {
  int left, right;
  float score;
  size_t size;
};
struct BigramOrder {  // top = highest score, then leftmost
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

// llama.cpp's pre-tokenizer regexes (llama-vocab.cpp, llm_tokenizer_bpe),
// by tokenizer.ggml.pre.
constexpr char kLlama3Regex[] =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr char kQwen2Regex[] =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr char kQwen35Regex[] =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|"
    "\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr char kGpt2Regex[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";

// GPT-2's byte-level alphabet: code point -> byte, -1 outside it.
int ByteOfCodePoint(uint32_t cp) {
  static const std::vector<int>* table = [] {
    auto* t = new std::vector<int>(324, -1);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool direct = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      (*t)[direct ? b : 256 + n++] = b;
    }
    return t;
  }();
  return cp < table->size() ? (*table)[cp] : -1;
}

// The bytes of a byte-level token ("Ġthe" -> " the"); the text itself if a
// character is outside the alphabet.
std::string UnmapByteLevel(const std::string& t) {
  std::string out;
  for (size_t i = 0; i < t.size();) {
    const uint8_t c = static_cast<uint8_t>(t[i]);
    const size_t n = std::min(Utf8Len(c), t.size() - i);
    uint32_t cp = n == 1 ? c : c & (0xFF >> (n + 1));
    for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<uint8_t>(t[i + k]) & 0x3F);
    const int b = ByteOfCodePoint(cp);
    if (b < 0) return t;
    out.push_back(static_cast<char>(b));
    i += n;
  }
  return out;
}

}  // namespace

bool DefaultAddBos(const std::string& model, const std::string& pre) {
  if (model != "gpt2") return true;
  return pre == "llama3" || pre == "llama-v3" || pre == "llama-bpe" || pre == "falcon3" ||
         pre == "pixtral" || pre == "tekken" || pre == "chameleon";
}

bool PreTokenizerFor(const std::string& pre, std::vector<std::string>* regexes,
                     bool* ignore_merges) {
  *ignore_merges = false;
  if (pre == "llama3" || pre == "llama-v3" || pre == "llama-bpe" || pre == "falcon3" ||
      pre == "pixtral") {
    *regexes = {kLlama3Regex};
    *ignore_merges = true;
  } else if (pre == "dbrx" || pre == "smaug-bpe") {
    *regexes = {kLlama3Regex};
  } else if (pre == "qwen2" || pre == "deepseek-r1-qwen" || pre == "stablelm2") {
    *regexes = {kQwen2Regex};
  } else if (pre == "qwen35") {
    *regexes = {kQwen35Regex};
  } else if (pre == "smollm" || pre == "starcoder" || pre == "refact" || pre == "command-r") {
    *regexes = {"\\p{N}", kGpt2Regex};
  } else if (pre == "default" || pre == "gpt-2" || pre == "mpt" || pre == "olmo" || pre == "phi-2") {
    *regexes = {kGpt2Regex};
  } else {
    return false;
  }
  return true;
}

GgufTokenizer::GgufTokenizer(GgufTokenizer&&) noexcept = default;
GgufTokenizer& GgufTokenizer::operator=(GgufTokenizer&&) noexcept = default;
GgufTokenizer::~GgufTokenizer() = default;

absl::StatusOr<GgufTokenizer> GgufTokenizer::Create(Vocab vocab, const std::string& name) {
  GgufTokenizer t;
  t.vocab_ = std::move(vocab);
  const Vocab& v = t.vocab_;
  const int32_t n = static_cast<int32_t>(v.tokens.size());
  if (v.model != "llama" && v.model != "gpt2") {
    return absl::UnimplementedError(absl::StrCat(name, ": tokenizer.ggml.model '", v.model,
                                                 "' (supported: llama, gpt2)"));
  }
  if (!v.types.empty() && static_cast<int32_t>(v.types.size()) != n) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": tokenizer.ggml.token_type has ",
                                                   v.types.size(), " entries for ", n, " tokens"));
  }
  if (v.model == "llama" && static_cast<int32_t>(v.scores.size()) != n) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": tokenizer.ggml.scores has ",
                                                   v.scores.size(), " entries for ", n, " tokens"));
  }
  t.index_.reserve(v.tokens.size());
  for (int32_t i = 0; i < n; ++i) t.index_.emplace(v.tokens[i], i);  // first id wins
  for (int b = 0; b < 256; ++b) {
    char hex[8];
    std::snprintf(hex, sizeof(hex), "<0x%02X>", b);
    auto it = t.index_.find(hex);
    if (it == t.index_.end()) it = t.index_.find(std::string(1, static_cast<char>(b)));
    t.byte_tokens_[b] = it != t.index_.end() ? it->second : v.unk;
  }
  for (int32_t i = 0; i < n && !v.types.empty(); ++i) {
    const int32_t type = v.types[i];
    if ((type == kTokControl || type == kTokUserDefined || type == kTokUnknown) && !v.tokens[i].empty()) {
      t.special_.push_back(i);
    }
  }
  std::stable_sort(t.special_.begin(), t.special_.end(), [&](int32_t a, int32_t b) {
    return v.tokens[a].size() > v.tokens[b].size();
  });
  if (v.model == "llama") return t;
#ifdef QATK_HAVE_HF_TOKENIZER
  std::vector<std::string> regexes;
  bool ignore_merges = false;
  if (!PreTokenizerFor(v.pre, &regexes, &ignore_merges)) {
    return absl::UnimplementedError(absl::StrCat(
        name, ": tokenizer.ggml.pre '", v.pre,
        "' (supported: llama-bpe, llama3, smaug-bpe, dbrx, qwen2, qwen35, smollm, starcoder, "
        "gpt-2, default and their aliases)"));
  }
  // The file's BPE as a tokenizer.json without added tokens (those are cut
  // out before): the regexes as isolated splits, then the byte-level mapping.
  using json = nlohmann::json;
  json pre_tokenizers = json::array();
  for (const std::string& r : regexes) {
    pre_tokenizers.push_back({{"type", "Split"}, {"pattern", {{"Regex", r}}},
                              {"behavior", "Isolated"}, {"invert", false}});
  }
  pre_tokenizers.push_back({{"type", "ByteLevel"}, {"add_prefix_space", false},
                            {"trim_offsets", false}, {"use_regex", false}});
  json vocab_json = json::object();
  for (int32_t i = 0; i < n; ++i) {
    const int32_t type = v.types.empty() ? kTokNormal : v.types[i];
    if (type != kTokNormal && type != kTokByte) continue;
    vocab_json.emplace(v.tokens[i], i);
  }
  json merges = json::array();
  for (size_t r = 0; r < v.merges.size(); ++r) {
    const std::string& m = v.merges[r];
    const size_t sp = m.find(' ', 1);  // llama.cpp: the first space after the first character
    if (sp == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": tokenizer.ggml.merges[", r, "] '", m,
                                                     "' is not \"a b\""));
    }
    merges.push_back(json::array({m.substr(0, sp), m.substr(sp + 1)}));
  }
  const json root = {
      {"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr},
      {"added_tokens", json::array()}, {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "Sequence"}, {"pretokenizers", pre_tokenizers}}},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false},
                   {"use_regex", false}}},
      {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr},
                 {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr},
                 {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", ignore_merges},
                 {"vocab", std::move(vocab_json)}, {"merges", std::move(merges)}}}};
  ASSIGN_OR_RETURN(HfTokenizer bpe, HfTokenizer::FromJson(root.dump(), name));
  t.bpe_ = std::make_unique<HfTokenizer>(std::move(bpe));
  return t;
#else
  return absl::UnimplementedError(absl::StrCat(
      name, ": tokenizer.ggml.model 'gpt2' needs the tokenizer.json library (PCRE2 + ICU), "
      "which this build of the runtime does not have"));
#endif
}

absl::StatusOr<std::vector<int32_t>> GgufTokenizer::Encode(absl::string_view text,
                                                           bool add_special,
                                                           bool parse_special) const {
  // Fragments: raw text [begin, end) or a special token id (begin = -1).
  struct Fragment {
    size_t begin, end;
    int32_t id;
  };
  std::vector<Fragment> frags;
  if (!text.empty()) frags.push_back({0, text.size(), -1});
  for (int32_t id : special_) {
    const int32_t type = vocab_.types[id];
    if (!parse_special && (type == kTokControl || type == kTokUnknown)) continue;
    const std::string& tok = vocab_.tokens[id];
    std::vector<Fragment> next;
    for (const Fragment& f : frags) {
      if (f.id >= 0) {
        next.push_back(f);
        continue;
      }
      size_t pos = f.begin;
      while (pos < f.end) {
        const size_t m = text.substr(0, f.end).find(tok, pos);
        if (m == absl::string_view::npos) break;
        if (m > pos) next.push_back({pos, m, -1});
        next.push_back({0, 0, id});
        pos = m + tok.size();
      }
      if (pos < f.end) next.push_back({pos, f.end, -1});
    }
    frags.swap(next);
  }
  std::vector<int32_t> out;
  if (add_special && vocab_.add_bos && vocab_.bos >= 0) out.push_back(vocab_.bos);
  bool prev_special = true;  // SPM: a space before the first fragment and after a special token
  for (const Fragment& f : frags) {
    if (f.id >= 0) {
      out.push_back(f.id);
      prev_special = true;
      continue;
    }
    const absl::string_view raw = text.substr(f.begin, f.end - f.begin);
    if (!bpe_) {
      EncodeSpm(raw, vocab_.add_space_prefix && prev_special, &out);
    } else {
#ifdef QATK_HAVE_HF_TOKENIZER
      ASSIGN_OR_RETURN(std::vector<int32_t> ids, bpe_->Encode(raw, false));
      out.insert(out.end(), ids.begin(), ids.end());
#endif
    }
    prev_special = false;
  }
  if (add_special && vocab_.add_eos && vocab_.eos >= 0) out.push_back(vocab_.eos);
  return out;
}

int32_t GgufTokenizer::ByteToken(uint8_t b) const { return byte_tokens_[b]; }

void GgufTokenizer::EncodeSpm(absl::string_view raw, bool space_prefix,
                              std::vector<int32_t>* out_ids) const {
  std::vector<int32_t>& out = *out_ids;
  if (raw.empty()) return;
  std::string text;
  text.reserve(raw.size() * 2 + 3);
  if (space_prefix) text += kSpaceMarker;
  for (char c : raw) {
    if (c == ' ') text += kSpaceMarker; else text += c;
  }
  std::vector<Symbol> sym;
  for (size_t off = 0; off < text.size();) {
    const size_t n = std::min(Utf8Len(static_cast<uint8_t>(text[off])), text.size() - off);
    const int i = static_cast<int>(sym.size());
    sym.push_back({i - 1, off + n == text.size() ? -1 : i + 1, off, n});
    off += n;
  }
  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
  std::unordered_map<std::string, std::pair<int, int>> rev_merge;
  auto try_add = [&](int l, int r) {
    if (l < 0 || r < 0) return;
    std::string piece = text.substr(sym[l].offset, sym[l].n + sym[r].n);
    auto it = index_.find(piece);
    if (it == index_.end()) return;
    queue.push({l, r, vocab_.scores[it->second], piece.size()});
    rev_merge[std::move(piece)] = {l, r};
  };
  for (int i = 1; i < static_cast<int>(sym.size()); ++i) try_add(i - 1, i);
  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& l = sym[b.left];
    Symbol& r = sym[b.right];
    if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }
  // Resegment: a symbol that is no token splits back along its merge, or
  // falls back to byte tokens.
  std::vector<std::pair<int, int>> stack;
  for (int i = 0; i != -1; i = sym[i].next) {
    stack.assign(1, {static_cast<int>(sym[i].offset), static_cast<int>(sym[i].n)});
    while (!stack.empty()) {
      const auto [off, n] = stack.back();
      stack.pop_back();
      const std::string piece = text.substr(off, n);
      auto it = index_.find(piece);
      if (it != index_.end()) {
        out.push_back(it->second);
        continue;
      }
      auto m = rev_merge.find(piece);
      if (m == rev_merge.end()) {
        for (char c : piece) out.push_back(ByteToken(static_cast<uint8_t>(c)));
        continue;
      }
      const Symbol& a = sym[m->second.first];
      const Symbol& b = sym[m->second.second];
      stack.push_back({static_cast<int>(b.offset), static_cast<int>(b.n)});  // right after left
      stack.push_back({static_cast<int>(a.offset), static_cast<int>(a.n)});
    }
  }
}

std::string GgufTokenizer::Piece(int32_t id) const {
  if (id < 0 || id >= static_cast<int32_t>(vocab_.tokens.size())) return "";
  const std::string& t = vocab_.tokens[id];
  switch (vocab_.types.empty() ? kTokNormal : vocab_.types[id]) {
    case kTokControl:
    case kTokUnused:
      return "";
    case kTokUnknown:
      return "\xE2\x96\x85";
    case kTokByte:
      if (t.size() == 6 && t.compare(0, 3, "<0x") == 0) {
        return std::string(1, static_cast<char>(std::stoi(t.substr(3, 2), nullptr, 16)));
      }
      return t;
    case kTokUserDefined:
      return t;
    default: {
      if (vocab_.model == "gpt2") return UnmapByteLevel(t);
      std::string s;
      for (size_t i = 0; i < t.size();) {
        if (t.compare(i, 3, kSpaceMarker) == 0) {
          s += ' ';
          i += 3;
        } else {
          s += t[i++];
        }
      }
      return s;
    }
  }
}

std::string GgufTokenizer::Decode(const std::vector<int32_t>& ids) const {
  std::string s;
  for (int32_t id : ids) s += Piece(id);
  return s;
}

}  // namespace qatk::tokenizer
