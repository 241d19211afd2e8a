// qat-run generate --chat: the prompt a GGUF's chat template
// (tokenizer.chat_template) makes of a user message.
#ifndef QATK_INFERENCE_CLI_CHAT_PROMPT_H_
#define QATK_INFERENCE_CLI_CHAT_PROMPT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "inference/model.h"

namespace qatk::cli {

// Renders the template of the GGUF at `path` on [system (when not empty),
// user] with add_generation_prompt = true; bos_token and eos_token are the
// vocabulary's BOS and EOS pieces. kInvalidArgument naming the file when it
// has no tokenizer.chat_template (or is not a GGUF).
absl::StatusOr<std::string> RenderChatPrompt(const std::string& path, const inference::Vocab& vocab,
                                             const std::string& system, const std::string& user);

}  // namespace qatk::cli

#endif  // QATK_INFERENCE_CLI_CHAT_PROMPT_H_
