// qat-run generate --chat: the prompt a GGUF's chat template
// (tokenizer.chat_template) makes of a user message, and its token ids with
// the vocabulary's special tokens recognised in the text.
#ifndef QATK_INFERENCE_CLI_CHAT_PROMPT_H_
#define QATK_INFERENCE_CLI_CHAT_PROMPT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "inference/tokenizer.h"

namespace qatk::cli {

// Renders the template of the GGUF at `path` on [system (when not empty),
// user] with add_generation_prompt = true; bos_token and eos_token are the
// vocabulary's BOS and EOS pieces. kInvalidArgument naming the file when it
// has no tokenizer.chat_template (or is not a GGUF).
absl::StatusOr<std::string> RenderChatPrompt(const std::string& path, const inference::Vocab& vocab,
                                             const std::string& system, const std::string& user);

// Ids of `text` with special tokens parsed, as llama.cpp tokenizes with
// parse_special: the texts of control, user-defined and unknown tokens
// become their ids (longest match first), the text between them is encoded
// as plain text, each piece with the vocabulary's space prefix. BOS is put
// first when the vocabulary adds one and the text does not start with it.
std::vector<int32_t> EncodeWithSpecialTokens(const inference::Tokenizer& tok, const inference::Vocab& vocab,
                                             const std::string& text);

}  // namespace qatk::cli

#endif  // QATK_INFERENCE_CLI_CHAT_PROMPT_H_
