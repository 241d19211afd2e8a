// Includes sentencepiece and no Abseil header (see spm_vocab.h).
#include "export/spm_vocab.h"

#include <sentencepiece_processor.h>

#include <cstddef>
#include <string_view>

namespace qatk::spm {
namespace {

// Minimal protobuf wire-format walker: enough to read NormalizerSpec
// (ModelProto field 3) without the generated sentencepiece_model.pb.h,
// which Debian does not ship.
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

std::string ReadNormalizerSpec(std::string_view model_proto, SpmVocab* out) {
  Wire top{model_proto};
  uint32_t field, wt;
  uint64_t value;
  std::string_view bytes;
  while (top.pos < top.s.size()) {
    if (!top.Next(&field, &wt, &value, &bytes)) return "malformed ModelProto";
    if (field != 3 || wt != 2) continue;
    Wire spec{bytes};
    while (spec.pos < spec.s.size()) {
      if (!spec.Next(&field, &wt, &value, &bytes)) return "malformed NormalizerSpec";
      if (field == 1 && wt == 2) out->normalizer_name = std::string(bytes);
      if (field == 3 && wt == 0) out->add_dummy_prefix = value != 0;
      if (field == 4 && wt == 0) out->remove_extra_whitespaces = value != 0;
    }
  }
  return "";
}

int32_t TypeOf(const sentencepiece::SentencePieceProcessor& sp, int id) {
  if (sp.IsUnknown(id)) return kUnknown;
  if (sp.IsControl(id)) return kControl;
  if (sp.IsByte(id)) return kByte;
  if (sp.IsUnused(id)) return kUnused;
  return kNormal;
}

}  // namespace

std::string LoadSpmVocab(const std::string& path, SpmVocab* out) {
  sentencepiece::SentencePieceProcessor sp;
  const auto status = sp.Load(path);
  if (!status.ok()) return path + ": cannot load SentencePiece model: " + status.ToString();
  const int n = sp.GetPieceSize();
  *out = SpmVocab();
  out->pieces.reserve(n);
  for (int id = 0; id < n; ++id) {
    out->pieces.push_back(sp.IdToPiece(id));
    out->scores.push_back(sp.GetScore(id));
    out->types.push_back(TypeOf(sp, id));
  }
  out->unk_id = sp.unk_id();
  out->bos_id = sp.bos_id();
  out->eos_id = sp.eos_id();
  out->pad_id = sp.pad_id();
  const std::string proto = sp.serialized_model_proto();
  const std::string err = ReadNormalizerSpec(proto, out);
  return err.empty() ? "" : path + ": " + err;
}

std::string SpmEncode(const std::string& path, const std::string& text, std::vector<int>* ids) {
  sentencepiece::SentencePieceProcessor sp;
  auto status = sp.Load(path);
  if (!status.ok()) return path + ": cannot load SentencePiece model: " + status.ToString();
  ids->clear();
  status = sp.Encode(text, ids);
  return status.ok() ? "" : path + ": encode failed: " + status.ToString();
}

}  // namespace qatk::spm
