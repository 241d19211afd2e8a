#include "qat/data/text_encoder.h"

#include "absl/strings/str_cat.h"
#include "formats/util/file_io.h"
#include "formats/util/status_macros.h"
#include "nlohmann/json.hpp"
#include "qat/data/tokenizer.h"

#ifdef QATK_HAVE_HF_TOKENIZER
#include "formats/tokenizer/hf_tokenizer.h"
#endif

namespace qatk::data {
namespace {

using json = nlohmann::json;

class SpmEncoder : public TextEncoder {
 public:
  SpmEncoder(Tokenizer t, std::string source) : t_(std::move(t)), source_(std::move(source)) {}
  absl::StatusOr<std::vector<int32_t>> Encode(absl::string_view text, bool add_special) const override {
    std::vector<int32_t> ids;
    if (add_special) ids.push_back(t_.bos_id());
    std::vector<int32_t> body = t_.Encode(std::string(text));
    if (body.empty() && !text.empty()) return absl::InternalError(absl::StrCat(source_, ": encoding failed"));
    ids.insert(ids.end(), body.begin(), body.end());
    return ids;
  }
  int32_t eos_id() const override { return t_.eos_id(); }
  uint64_t fingerprint() const override { return t_.fingerprint(); }
  const std::string& source() const override { return source_; }

 private:
  Tokenizer t_;
  std::string source_;
};

#ifdef QATK_HAVE_HF_TOKENIZER
class HfEncoder : public TextEncoder {
 public:
  HfEncoder(tokenizer::HfTokenizer t, int32_t eos, uint64_t fp, std::string source)
      : t_(std::move(t)), eos_(eos), fp_(fp), source_(std::move(source)) {}
  absl::StatusOr<std::vector<int32_t>> Encode(absl::string_view text, bool add_special) const override {
    return t_.Encode(text, add_special);
  }
  int32_t eos_id() const override { return eos_; }
  uint64_t fingerprint() const override { return fp_; }
  const std::string& source() const override { return source_; }

 private:
  tokenizer::HfTokenizer t_;
  int32_t eos_;
  uint64_t fp_;
  std::string source_;
};

// The EOS of a tokenizer.json model: tokenizer_config.json's eos_token (a
// string or {"content": ...}), else config.json's eos_token_id (an id or a
// list, the first).
absl::StatusOr<int32_t> HfEosId(const std::string& dir, const tokenizer::HfTokenizer& t) {
  const std::string tc = dir + "/tokenizer_config.json";
  if (PathExists(tc)) {
    ASSIGN_OR_RETURN(std::string raw, ReadFileToString(tc));
    json j = json::parse(raw, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(tc, ": not valid JSON"));
    if (j.is_object() && j.contains("eos_token")) {
      const json& e = j["eos_token"];
      std::string s;
      if (e.is_string()) s = e.get<std::string>();
      else if (e.is_object() && e.contains("content") && e["content"].is_string()) s = e["content"].get<std::string>();
      if (!s.empty()) {
        std::optional<int32_t> id = t.TokenToId(s);
        if (!id) return absl::InvalidArgumentError(absl::StrCat(tc, ": eos_token '", s, "' is not in tokenizer.json"));
        return *id;
      }
    }
  }
  const std::string cc = dir + "/config.json";
  if (PathExists(cc)) {
    ASSIGN_OR_RETURN(std::string raw, ReadFileToString(cc));
    json j = json::parse(raw, nullptr, false);
    if (!j.is_discarded() && j.is_object() && j.contains("eos_token_id")) {
      const json& e = j["eos_token_id"];
      if (e.is_number_integer()) return e.get<int32_t>();
      if (e.is_array() && !e.empty() && e[0].is_number_integer()) return e[0].get<int32_t>();
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(
      dir, ": no EOS token (tokenizer_config.json eos_token or config.json eos_token_id)"));
}
#endif

}  // namespace

bool HaveHfTokenizer() {
#ifdef QATK_HAVE_HF_TOKENIZER
  return true;
#else
  return false;
#endif
}

absl::StatusOr<uint64_t> TokenizerFingerprint(const std::string& model_dir, std::string* file) {
  for (const char* name : {"/tokenizer.json", "/tokenizer.model"}) {
    const std::string path = model_dir + name;
    if (!PathExists(path)) continue;
    ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path));
    if (file) *file = path;
    return Fnv1a64(bytes.data(), bytes.size());
  }
  return absl::NotFoundError(absl::StrCat(model_dir, ": no tokenizer.json or tokenizer.model"));
}

absl::StatusOr<std::unique_ptr<TextEncoder>> LoadModelEncoder(const std::string& dir) {
  const std::string hf = dir + "/tokenizer.json";
  if (PathExists(hf)) {
#ifdef QATK_HAVE_HF_TOKENIZER
    ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(hf));
    ASSIGN_OR_RETURN(tokenizer::HfTokenizer t, tokenizer::HfTokenizer::FromJson(bytes, hf));
    ASSIGN_OR_RETURN(int32_t eos, HfEosId(dir, t));
    if (eos < 0 || eos >= t.vocab_size()) {
      return absl::InvalidArgumentError(absl::StrCat(dir, ": EOS id ", eos, " is outside the vocabulary"));
    }
    return std::unique_ptr<TextEncoder>(
        new HfEncoder(std::move(t), eos, Fnv1a64(bytes.data(), bytes.size()), hf));
#else
    return absl::UnimplementedError(absl::StrCat(
        hf, ": this build cannot read tokenizer.json (qatk_tokenizer needs libpcre2-8 and icu-uc)"));
#endif
  }
  const std::string spm = dir + "/tokenizer.model";
  if (PathExists(spm)) {
    ASSIGN_OR_RETURN(Tokenizer t, Tokenizer::Load(spm));
    return std::unique_ptr<TextEncoder>(new SpmEncoder(std::move(t), spm));
  }
  return absl::NotFoundError(absl::StrCat(dir, ": no tokenizer.json or tokenizer.model"));
}

}  // namespace qatk::data
