// Reads a SentencePiece .model without libsentencepiece (whose embedded
// protobuf clashes with LibTorch's in one process): a minimal wire-format walker.
#include "export/spm_vocab.h"


#include <cstddef>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string_view>

namespace qatk::spm {
namespace {

// Minimal protobuf wire-format walker (Debian ships no generated
// sentencepiece_model.pb.h).
struct Wire {
  std::string_view s;
  size_t pos = 0;
  bool Varint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64 && pos < s.size(); shift += 7) {
      const uint8_t b = static_cast<uint8_t>(s[pos++]);
      *v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  }
  // Reads one field; for length-delimited ones `bytes` views the payload.
  bool Next(uint32_t* field, uint32_t* wire_type, uint64_t* value, std::string_view* bytes) {
    uint64_t key;
    if (!Varint(&key)) return false;
    *field = static_cast<uint32_t>(key >> 3);
    *wire_type = static_cast<uint32_t>(key & 7);
    switch (*wire_type) {
      case 0: return Varint(value);
      case 1: if (s.size() - pos < 8) return false; pos += 8; return true;
      case 5: if (s.size() - pos < 4) return false; pos += 4; return true;
      case 2: {
        uint64_t n;
        if (!Varint(&n) || n > s.size() - pos) return false;
        *bytes = s.substr(pos, n);
        pos += n;
        return true;
      }
      default: return false;
    }
  }
};

// ModelProto (sentencepiece_model.proto): 1 = repeated SentencePiece
// {1 piece, 2 score (float), 3 type}, 2 = TrainerSpec {40 unk_id, 41 bos_id,
// 42 eos_id, 43 pad_id}, 3 = NormalizerSpec {1 name, 3 add_dummy_prefix,
// 4 remove_extra_whitespaces}. Absent fields take the proto2 defaults.
std::string ReadPiece(std::string_view bytes, SpmVocab* out) {
  Wire w{bytes};
  uint32_t field, wt;
  uint64_t value = 0;
  std::string_view b;
  std::string piece;
  float score = 0.0f;
  int32_t type = kNormal;
  while (w.pos < w.s.size()) {
    if (!w.Next(&field, &wt, &value, &b)) return "malformed SentencePiece entry";
    if (field == 1 && wt == 2) piece = std::string(b);
    if (field == 2 && wt == 5) std::memcpy(&score, w.s.data() + w.pos - 4, 4);
    if (field == 3 && wt == 0) type = static_cast<int32_t>(value);
  }
  if (type < kNormal || type > kByte) return "piece '" + piece + "' has unknown type " + std::to_string(type);
  out->pieces.push_back(std::move(piece));
  out->scores.push_back(score);
  out->types.push_back(type);
  return "";
}

std::string ReadTrainerSpec(std::string_view bytes, SpmVocab* out) {
  Wire w{bytes};
  uint32_t field, wt;
  uint64_t value = 0;
  std::string_view b;
  while (w.pos < w.s.size()) {
    if (!w.Next(&field, &wt, &value, &b)) return "malformed TrainerSpec";
    if (wt != 0) continue;
    const int32_t v = static_cast<int32_t>(value);  // int32 varints: negatives are 10-byte two's complement
    if (field == 40) out->unk_id = v;
    if (field == 41) out->bos_id = v;
    if (field == 42) out->eos_id = v;
    if (field == 43) out->pad_id = v;
  }
  return "";
}

std::string ReadNormalizerSpec(std::string_view bytes, SpmVocab* out) {
  Wire w{bytes};
  uint32_t field, wt;
  uint64_t value = 0;
  std::string_view b;
  while (w.pos < w.s.size()) {
    if (!w.Next(&field, &wt, &value, &b)) return "malformed NormalizerSpec";
    if (field == 1 && wt == 2) out->normalizer_name = std::string(b);
    if (field == 3 && wt == 0) out->add_dummy_prefix = value != 0;
    if (field == 4 && wt == 0) out->remove_extra_whitespaces = value != 0;
  }
  return "";
}

}  // namespace

std::string LoadSpmVocab(const std::string& path, SpmVocab* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return path + ": cannot open SentencePiece model";
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string proto = ss.str();
  *out = SpmVocab();
  out->unk_id = 0;  // TrainerSpec defaults
  out->bos_id = 1;
  out->eos_id = 2;
  out->pad_id = -1;
  Wire top{proto};
  uint32_t field, wt;
  uint64_t value = 0;
  std::string_view bytes;
  while (top.pos < top.s.size()) {
    const size_t at = top.pos;
    if (!top.Next(&field, &wt, &value, &bytes)) {
      return path + ": not a SentencePiece model (malformed protobuf at byte " + std::to_string(at) + ")";
    }
    if (wt != 2) continue;
    std::string err;
    if (field == 1) err = ReadPiece(bytes, out);
    if (field == 2) err = ReadTrainerSpec(bytes, out);
    if (field == 3) err = ReadNormalizerSpec(bytes, out);
    if (!err.empty()) return path + ": " + err + " (at byte " + std::to_string(at) + ")";
  }
  if (out->pieces.empty()) return path + ": SentencePiece model has no pieces";
  const int32_t n = static_cast<int32_t>(out->pieces.size());
  for (int32_t* id : {&out->unk_id, &out->bos_id, &out->eos_id, &out->pad_id}) {
    if (*id >= n) return path + ": special token id " + std::to_string(*id) + " >= vocabulary size";
  }
  return "";
}

}  // namespace qatk::spm
