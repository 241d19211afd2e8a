#include "spm_oracle.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

namespace qatk::testing {

std::string TrainSpmBpe(const std::string& corpus, const std::string& prefix, int vocab) {
  const auto st = sentencepiece::SentencePieceTrainer::Train(
      "--input=" + corpus + " --model_prefix=" + prefix + " --model_type=bpe --vocab_size=" +
      std::to_string(vocab) +
      " --byte_fallback=true --character_coverage=1.0 --unk_id=0 --bos_id=1 --eos_id=2"
      " --pad_id=-1 --normalization_rule_name=identity --remove_extra_whitespaces=false"
      " --allow_whitespace_only_pieces=true --minloglevel=2");
  return st.ok() ? "" : st.ToString();
}

std::vector<SpmPiece> SpmPieces(const std::string& model_file) {
  sentencepiece::SentencePieceProcessor sp;
  std::vector<SpmPiece> out;
  if (!sp.Load(model_file).ok()) return out;
  for (int i = 0; i < sp.GetPieceSize(); ++i) {
    const int type = sp.IsUnknown(i) ? 2 : sp.IsControl(i) ? 3 : sp.IsByte(i) ? 6
                     : sp.IsUnused(i) ? 5 : 1;
    out.push_back({sp.IdToPiece(i), sp.GetScore(i), type});
  }
  return out;
}

std::vector<int> SpmEncode(const std::string& model_file, const std::string& text) {
  sentencepiece::SentencePieceProcessor sp;
  std::vector<int> ids;
  if (!sp.Load(model_file).ok() || !sp.Encode(text, &ids).ok()) ids.clear();
  return ids;
}

}  // namespace qatk::testing
