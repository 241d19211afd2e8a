// Includes sentencepiece and no Abseil header.
#include "tests/export/spm_train_util.h"

#include <sentencepiece_trainer.h>


namespace qatk::testing {

std::string TrainSpmBpe(const std::string& text_path, const std::string& model_prefix,
                        int vocab_size) {
  const std::string args =
      "--input=" + text_path + " --model_prefix=" + model_prefix +
      " --vocab_size=" + std::to_string(vocab_size) +
      " --model_type=bpe --byte_fallback=true --character_coverage=1.0"
      " --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1"
      " --normalization_rule_name=identity --remove_extra_whitespaces=false"
      " --allow_whitespace_only_pieces=true --split_digits=true"
      " --num_threads=1 --minloglevel=2";
  const auto status = sentencepiece::SentencePieceTrainer::Train(args);
  return status.ok() ? "" : status.ToString();
}

}  // namespace qatk::testing
