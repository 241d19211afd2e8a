#include "inference/tokenizer.h"

#include <cstdio>
#include <queue>
#include <utility>

namespace qatk::inference {
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

}  // namespace

Tokenizer::Tokenizer(const Vocab& vocab) : vocab_(vocab) {
  index_.reserve(vocab_.tokens.size());
  for (size_t i = 0; i < vocab_.tokens.size(); ++i) {
    index_.emplace(vocab_.tokens[i], static_cast<int32_t>(i));  // first id wins
  }
  for (int b = 0; b < 256; ++b) {
    char hex[8];
    std::snprintf(hex, sizeof(hex), "<0x%02X>", b);
    auto it = index_.find(hex);
    if (it == index_.end()) it = index_.find(std::string(1, static_cast<char>(b)));
    byte_tokens_[b] = it != index_.end() ? it->second : vocab_.unk;
  }
}

int32_t Tokenizer::ByteToken(uint8_t b) const { return byte_tokens_[b]; }

std::vector<int32_t> Tokenizer::Encode(absl::string_view raw, bool add_bos) const {
  std::vector<int32_t> out;
  if (add_bos && vocab_.add_bos) out.push_back(vocab_.bos);
  if (raw.empty()) return out;
  std::string text;
  text.reserve(raw.size() * 2 + 3);
  if (vocab_.add_space_prefix) text += kSpaceMarker;
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
  return out;
}

std::string Tokenizer::Piece(int32_t id) const {
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

std::string Tokenizer::Decode(const std::vector<int32_t>& ids) const {
  std::string s;
  for (int32_t id : ids) s += Piece(id);
  return s;
}

}  // namespace qatk::inference
