// One line of a JSONL training file to tokens and a per-token loss mask
// (docs/TRAINING.md, "Your own data"). A line is one JSON object with
//   {"text": S}                        loss on every token;
//   {"prompt": S, "completion": S}     loss on the completion tokens;
//   {"messages": [{"role", "content"}, ...]}
//                                      rendered with the model's chat
//                                      template, loss on the assistant turns.
// Other keys are ignored. Every document ends with the EOS id; the EOS is
// trained when the token before it is.
//
// Tokens: text is encoded with the tokenizer's specials (BOS where it adds
// one); a prompt likewise and its completion without, each on its own, as a
// model sees them at inference (the prompt tokenized alone, then the
// answer). A conversation is rendered once and encoded without specials (the
// templates write bos_token themselves).
//
// Chat masks come from rendering prefixes: for the assistant message i,
// P = render(messages[:i], add_generation_prompt=true) and
// F = render(messages[:i+1]); the tokens of F after those of P are the
// assistant's turn (its text, its end-of-turn marker). A template that
// writes the generation prompt even without add_generation_prompt (the
// original Llama 3 Instruct one) has it cut off the end of F and of the whole
// rendering: what the template renders for no messages, when a rendering
// ends with it. This assumes a
// prefix-stable template: P and F are prefixes of the whole rendering, as
// text and as tokens. A conversation for which that fails (Qwen3 renders a
// <think> block only in the last assistant turn, so its multi-turn
// conversations fail) is an error; give such turns one line each.
//
// LibTorch-free (the fuzz harness links it alone).
#ifndef QATK_QAT_DATA_JSONL_H_
#define QATK_QAT_DATA_JSONL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "formats/chat/chat_template.h"
#include "qat/data/text_encoder.h"

namespace qatk::data {

enum class LossOn { kAuto, kAll };

struct JsonlOptions {
  LossOn loss_on = LossOn::kAuto;
  // prompt/completion and messages documents longer than this many tokens
  // (EOS included) are an error; 0: no limit. Text documents are never
  // limited (packing spreads them over windows).
  int64_t max_tokens = 0;
  // Needed by messages lines; null: such a line is an error.
  const chat::ChatTemplate* chat_template = nullptr;
  std::string no_template_reason;  // said when a messages line finds none
};

struct TokenizedDoc {
  std::vector<int32_t> ids;
  std::vector<uint8_t> mask;  // 1: trained on when it is a target
};

// Errors say what is wrong with the line; the caller adds file and line.
absl::StatusOr<TokenizedDoc> TokenizeJsonlLine(absl::string_view line, const TextEncoder& encoder,
                                               const JsonlOptions& options);

}  // namespace qatk::data

#endif  // QATK_QAT_DATA_JSONL_H_
