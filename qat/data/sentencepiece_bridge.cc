#include "qat/data/sentencepiece_bridge.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <unordered_map>

namespace qatk::data {
namespace {

using Processor = sentencepiece::SentencePieceProcessor;
const Processor& P(const void* h) { return *static_cast<const Processor*>(h); }

void* Load(const std::string& model_proto, std::string* error) {
  auto* p = new Processor();
  const auto status = p->LoadFromSerializedProto(model_proto);
  if (!status.ok()) {
    *error = status.ToString();
    delete p;
    return nullptr;
  }
  return p;
}

void Release(void* h) { delete static_cast<Processor*>(h); }

void Encode(const void* h, const std::string& text, std::vector<int32_t>* ids) {
  std::vector<int> out;
  if (!P(h).Encode(text, &out).ok()) out.clear();
  ids->assign(out.begin(), out.end());
}

std::string Decode(const void* h, const std::vector<int32_t>& ids) {
  std::string out;
  if (!P(h).Decode(std::vector<int>(ids.begin(), ids.end()), &out).ok()) out.clear();
  return out;
}

int VocabSize(const void* h) { return P(h).GetPieceSize(); }
int BosId(const void* h) { return P(h).bos_id(); }
int EosId(const void* h) { return P(h).eos_id(); }
int UnkId(const void* h) { return P(h).unk_id(); }
std::string IdToPiece(const void* h, int id) { return P(h).IdToPiece(id); }
float Score(const void* h, int id) { return P(h).GetScore(id); }
int TokenType(const void* h, int id) {
  const Processor& p = P(h);
  if (p.IsUnknown(id)) return 2;
  if (p.IsControl(id)) return 3;
  if (p.IsUnused(id)) return 5;
  if (p.IsByte(id)) return 6;
  return 1;
}

bool TrainBpe(const std::string& input_file, int vocab_size, int num_threads,
              std::string* model_proto, std::string* error) {
  const std::unordered_map<std::string, std::string> args = {
      {"input", input_file},
      {"model_type", "bpe"},
      {"vocab_size", std::to_string(vocab_size)},
      {"byte_fallback", "true"},
      {"character_coverage", "1.0"},
      {"unk_id", "0"},
      {"bos_id", "1"},
      {"eos_id", "2"},
      {"pad_id", "-1"},
      {"normalization_rule_name", "identity"},
      {"remove_extra_whitespaces", "false"},
      {"allow_whitespace_only_pieces", "true"},
      {"split_digits", "true"},
      {"max_sentence_length", "65536"},
      {"num_threads", std::to_string(num_threads)},
      {"minloglevel", "1"},
  };
  const auto status = sentencepiece::SentencePieceTrainer::Train(args, nullptr, model_proto);
  if (!status.ok()) {
    *error = status.ToString();
    return false;
  }
  return true;
}

constexpr SpmApi kApi = {kSpmApiVersion, Load,  Release, Encode,    Decode, VocabSize, BosId,
                         EosId,          UnkId, IdToPiece, Score, TokenType, TrainBpe};

}  // namespace
}  // namespace qatk::data

extern "C" __attribute__((visibility("default"))) const qatk::data::SpmApi* qatk_spm_api() {
  return &qatk::data::kApi;
}
