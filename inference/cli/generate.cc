// qat-run generate: streams sampled tokens to stdout, tok/s on stderr.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "formats/util/status_macros.h"
#include "inference/cli/chat_prompt.h"
#include "inference/cli/commands.h"
#include "inference/cli/run_common.h"
#include "inference/sampling.h"
#include "inference/tokenizer.h"

namespace qatk::cli {

absl::Status GenerateCommand(int argc, char** argv) {
  cxxopts::Options opts("generate", "generate text from a prompt");
  AddModelFlags(opts, 2048);
  opts.add_options()("prompt", "prompt text", cxxopts::value<std::string>())(
      "n", "tokens to generate", cxxopts::value<int>()->default_value("128"))(
      "temp", "temperature (<= 0: greedy)", cxxopts::value<float>()->default_value("0.8"))(
      "top-k", "top-k (<= 0: off)", cxxopts::value<int>()->default_value("40"))(
      "top-p", "top-p (>= 1: off)", cxxopts::value<float>()->default_value("0.95"))(
      "seed", "sampling seed", cxxopts::value<uint64_t>()->default_value("0"))(
      "json", "one JSON object on stdout: prompt and generated token ids, text, speeds")(
      "chat", "wrap --prompt as a user message in the GGUF's chat template (tokenizer.chat_template)")(
      "system", "with --chat: a system message before the user's", cxxopts::value<std::string>())(
      "print-prompt", "with --chat: print the rendered prompt before the reply");
  ASSIGN_OR_RETURN(cxxopts::ParseResult r, ParseRunFlags(opts, argc, argv));
  RETURN_IF_ERROR(RequireFlag(r, "model", "generate"));
  RETURN_IF_ERROR(RequireFlag(r, "prompt", "generate"));
  ASSIGN_OR_RETURN(Loaded l, LoadFromFlags(r));
  const inference::Tokenizer tok(l.model->vocab);
  const bool chat = r.count("chat") > 0;
  if (!chat && (r.count("system") || r.count("print-prompt"))) {
    return absl::InvalidArgumentError("--system and --print-prompt need --chat");
  }
  // The text the model continues: the prompt, or its chat rendering, whose
  // special tokens (<|im_start|>, <start_of_turn>, ...) become their ids.
  std::string prompt = r["prompt"].as<std::string>();
  std::vector<int32_t> ids;
  if (chat) {
    const std::string system = r.count("system") ? r["system"].as<std::string>() : "";
    ASSIGN_OR_RETURN(prompt, RenderChatPrompt(r["model"].as<std::string>(), l.model->vocab, system, prompt));
    ids = EncodeWithSpecialTokens(tok, l.model->vocab, prompt);
  } else {
    ids = tok.Encode(prompt, /*add_bos=*/true);
  }
  if (ids.empty()) return absl::InvalidArgumentError("empty prompt");
  const int n_gen = r["n"].as<int>();
  ASSIGN_OR_RETURN(auto session, inference::Session::Create(*l.model, l.n_ctx, l.kv_type, *l.pool,
                                                            512, l.backend));
  inference::SamplingParams sp{r["temp"].as<float>(), r["top-k"].as<int>(),
                               r["top-p"].as<float>(), r["seed"].as<uint64_t>()};
  inference::Sampler sampler(sp, l.model->config.n_vocab);
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  RETURN_IF_ERROR(session->Eval(ids.data(), static_cast<int>(ids.size()), false));
  const auto t1 = Clock::now();
  const bool json = r.count("json") > 0;
  if (!json && (!chat || r.count("print-prompt"))) std::fputs(prompt.c_str(), stdout);
  std::vector<int32_t> out_ids;
  std::string text;
  for (; static_cast<int>(out_ids.size()) < n_gen && session->n_past() < session->n_ctx();) {
    int32_t next = sampler.Sample(session->logits());
    if (next == l.model->vocab.eos) break;
    // A reply ends at the template's end-of-turn token (<|eot_id|>,
    // <|im_end|>, <end_of_turn>): a control token other than EOS.
    if (chat && next < static_cast<int32_t>(l.model->vocab.types.size()) &&
        l.model->vocab.types[next] == inference::kTokControl) {
      break;
    }
    out_ids.push_back(next);
    const std::string piece = tok.Piece(next);
    text += piece;
    if (!json) {
      std::fputs(piece.c_str(), stdout);
      std::fflush(stdout);
    }
    RETURN_IF_ERROR(session->Eval(&next, 1, false));
  }
  const int produced = static_cast<int>(out_ids.size());
  const auto t2 = Clock::now();
  const double pre = std::chrono::duration<double>(t1 - t0).count();
  const double gen = std::chrono::duration<double>(t2 - t1).count();
  if (json) {
    // Text as bytes may be invalid UTF-8 (byte-fallback pieces): dump with
    // replacement characters; the ids are exact.
    nlohmann::json j = {{"prompt_ids", ids}, {"ids", out_ids}, {"text", text},
                        {"prompt_tok_s", ids.size() / pre},
                        {"gen_tok_s", produced > 0 ? produced / gen : 0.0}};
    if (chat) j["prompt_text"] = prompt;  // the rendered chat prompt
    std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
  } else {
    std::fputs("\n", stdout);
  }
  std::cerr << absl::StrFormat("prompt: %d tokens, %.2f tok/s; generated: %d tokens, %.2f tok/s\n",
                               ids.size(), ids.size() / pre, produced,
                               produced > 0 ? produced / gen : 0.0);
  return absl::OkStatus();
}

}  // namespace qatk::cli
