#include "qat/data/jsonl.h"

#include <algorithm>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "formats/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace qatk::data {
namespace {

using ojson = nlohmann::ordered_json;

bool IsKnownRole(const std::string& r) {
  return r == "system" || r == "user" || r == "assistant" || r == "tool";
}

bool StartsWith(const std::vector<int32_t>& a, const std::vector<int32_t>& prefix) {
  return prefix.size() <= a.size() && std::equal(prefix.begin(), prefix.end(), a.begin());
}

absl::StatusOr<std::string> StringField(const ojson& j, const char* key) {
  const ojson& v = j[key];
  if (!v.is_string()) return absl::InvalidArgumentError(absl::StrCat("\"", key, "\" must be a string"));
  return v.get<std::string>();
}

absl::Status CheckLength(const TokenizedDoc& d, const JsonlOptions& o) {
  if (o.max_tokens > 0 && static_cast<int64_t>(d.ids.size()) > o.max_tokens) {
    return absl::OutOfRangeError(absl::StrCat(d.ids.size(), " tokens, more than the context of ", o.max_tokens,
                                              " (--seq); shorten it or split it"));
  }
  return absl::OkStatus();
}

void AppendEos(TokenizedDoc& d, int32_t eos) {
  if (!d.ids.empty() && d.ids.back() == eos) return;
  const uint8_t m = d.mask.empty() ? 1 : d.mask.back();
  d.ids.push_back(eos);
  d.mask.push_back(m);
}

absl::StatusOr<TokenizedDoc> Conversation(const ojson& messages, const TextEncoder& enc, const JsonlOptions& o) {
  if (!messages.is_array() || messages.empty()) {
    return absl::InvalidArgumentError("\"messages\" must be a non-empty array");
  }
  bool any_assistant = false;
  for (size_t i = 0; i < messages.size(); ++i) {
    const ojson& m = messages[i];
    if (!m.is_object()) return absl::InvalidArgumentError(absl::StrCat("messages[", i, "] is not an object"));
    if (!m.contains("role") || !m["role"].is_string()) {
      return absl::InvalidArgumentError(absl::StrCat("messages[", i, "] has no \"role\" string"));
    }
    const std::string role = m["role"].get<std::string>();
    if (!IsKnownRole(role)) {
      return absl::InvalidArgumentError(absl::StrCat("messages[", i, "]: unknown role '", role,
                                                     "' (system, user, assistant or tool)"));
    }
    if (!m.contains("content") || !m["content"].is_string()) {
      return absl::InvalidArgumentError(absl::StrCat("messages[", i, "] has no \"content\" string"));
    }
    any_assistant |= role == "assistant";
  }
  if (!any_assistant && o.loss_on == LossOn::kAuto) {
    return absl::InvalidArgumentError("the conversation has no assistant message (nothing to train on)");
  }
  if (o.chat_template == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat("a \"messages\" line needs the model's chat template: ",
                                                      o.no_template_reason));
  }
  auto render = [&](size_t n, bool gen) -> absl::StatusOr<std::string> {
    ojson part = ojson::array();
    for (size_t i = 0; i < n; ++i) part.push_back(messages[i]);
    absl::StatusOr<std::string> s = o.chat_template->RenderJson(part, gen);
    if (!s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("the chat template failed to render: ", s.status().message()));
    }
    return s;
  };
  // Some templates (the original Llama 3 Instruct one) write the generation
  // prompt whether add_generation_prompt is set or not; what they write for
  // no messages at all is that prompt, and it is cut off the end of a
  // rendering that ends with it: it belongs to no turn.
  std::string trailer;
  if (absl::StatusOr<std::string> empty = o.chat_template->RenderJson(ojson::array(), false); empty.ok()) {
    trailer = *std::move(empty);
  }
  auto cut_trailer = [&](std::string s) {
    if (!trailer.empty() && s.size() > trailer.size() && absl::EndsWith(s, trailer)) s.resize(s.size() - trailer.size());
    return s;
  };
  ASSIGN_OR_RETURN(std::string full, render(messages.size(), false));
  full = cut_trailer(std::move(full));
  TokenizedDoc d;
  ASSIGN_OR_RETURN(d.ids, enc.Encode(full, false));
  d.mask.assign(d.ids.size(), o.loss_on == LossOn::kAll ? 1 : 0);
  if (o.loss_on == LossOn::kAuto) {
    for (size_t i = 0; i < messages.size(); ++i) {
      if (messages[i]["role"] != "assistant") continue;
      ASSIGN_OR_RETURN(std::string p, render(i, true));
      ASSIGN_OR_RETURN(std::string f, render(i + 1, false));
      f = cut_trailer(std::move(f));
      if (!absl::StartsWith(full, p) || !absl::StartsWith(full, f) || !absl::StartsWith(f, p)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "the chat template is not prefix-stable at messages[", i,
            "]: rendering the conversation up to this assistant turn is not a prefix of rendering all of it "
            "(give each assistant turn its own line)"));
      }
      ASSIGN_OR_RETURN(std::vector<int32_t> tp, enc.Encode(p, false));
      ASSIGN_OR_RETURN(std::vector<int32_t> tf, enc.Encode(f, false));
      if (!StartsWith(d.ids, tp) || !StartsWith(d.ids, tf) || tf.size() < tp.size()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "messages[", i, "]: the tokens of the conversation up to this assistant turn are not a prefix of "
            "the tokens of all of it (a token spans the turn boundary)"));
      }
      std::fill(d.mask.begin() + tp.size(), d.mask.begin() + tf.size(), 1);
    }
  }
  AppendEos(d, enc.eos_id());
  RETURN_IF_ERROR(CheckLength(d, o));
  return d;
}

}  // namespace

absl::StatusOr<TokenizedDoc> TokenizeJsonlLine(absl::string_view line, const TextEncoder& enc,
                                               const JsonlOptions& o) {
  ojson j = ojson::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError("not valid JSON");
  if (!j.is_object()) return absl::InvalidArgumentError("not a JSON object");
  const int kinds = j.contains("text") + j.contains("messages") + (j.contains("prompt") || j.contains("completion"));
  if (kinds != 1) {
    return absl::InvalidArgumentError(
        kinds == 0 ? "needs \"text\", \"prompt\" and \"completion\", or \"messages\""
                   : "has more than one of \"text\", \"prompt\"/\"completion\" and \"messages\"");
  }
  TokenizedDoc d;
  if (j.contains("text")) {
    ASSIGN_OR_RETURN(std::string text, StringField(j, "text"));
    ASSIGN_OR_RETURN(d.ids, enc.Encode(text, true));
    d.mask.assign(d.ids.size(), 1);
    AppendEos(d, enc.eos_id());
    return d;
  }
  if (j.contains("messages")) return Conversation(j["messages"], enc, o);
  if (!j.contains("prompt")) return absl::InvalidArgumentError("has \"completion\" but no \"prompt\"");
  if (!j.contains("completion")) return absl::InvalidArgumentError("has \"prompt\" but no \"completion\"");
  ASSIGN_OR_RETURN(std::string prompt, StringField(j, "prompt"));
  ASSIGN_OR_RETURN(std::string completion, StringField(j, "completion"));
  if (completion.empty() && o.loss_on == LossOn::kAuto) {
    return absl::InvalidArgumentError("\"completion\" is empty (nothing to train on)");
  }
  ASSIGN_OR_RETURN(d.ids, enc.Encode(prompt, true));
  d.mask.assign(d.ids.size(), o.loss_on == LossOn::kAll ? 1 : 0);
  ASSIGN_OR_RETURN(std::vector<int32_t> c, enc.Encode(completion, false));
  d.ids.insert(d.ids.end(), c.begin(), c.end());
  d.mask.resize(d.ids.size(), 1);
  AppendEos(d, enc.eos_id());
  RETURN_IF_ERROR(CheckLength(d, o));
  return d;
}

}  // namespace qatk::data
