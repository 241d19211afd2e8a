#include "export/gguf_vocab.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <limits>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "export/spm_vocab.h"
#include "formats/util/file_io.h"
#include "formats/util/status_macros.h"
#include "nlohmann/json.hpp"
#ifdef QATK_HAVE_HF_TOKENIZER
#include "formats/tokenizer/hf_tokenizer.h"
#endif

namespace qatk::exporter {
namespace {

using gguf::Value;
using json = nlohmann::json;

// ---- SHA-256 (FIPS 180-4) ----------------------------------------------------

constexpr std::array<uint32_t, 64> kK = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

inline uint32_t Rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

// ---- the converter's pre-tokenizer table --------------------------------------

struct PreHash {
  const char* hash;
  const char* name;
};
constexpr PreHash kPreHashes[] = {
#include "export/bpe_pre_hashes.inc"
};

// GGUF key of a special token type, as gguf-py's GGUFWriter names them;
// nullptr for types it has no key for (cls), which the converter skips.
const char* SpecialIdKey(const std::string& typ) {
  if (typ == "bos") return "tokenizer.ggml.bos_token_id";
  if (typ == "eos") return "tokenizer.ggml.eos_token_id";
  if (typ == "unk") return "tokenizer.ggml.unknown_token_id";
  if (typ == "sep") return "tokenizer.ggml.seperator_token_id";  // sic, llama.cpp's key
  if (typ == "pad") return "tokenizer.ggml.padding_token_id";
  if (typ == "mask") return "tokenizer.ggml.mask_token_id";
  if (typ == "eot") return "tokenizer.ggml.eot_token_id";
  if (typ == "eom") return "tokenizer.ggml.eom_token_id";
  return nullptr;
}

const char* AddSpecialKey(const std::string& typ) {
  if (typ == "bos") return "tokenizer.ggml.add_bos_token";
  if (typ == "eos") return "tokenizer.ggml.add_eos_token";
  if (typ == "sep") return "tokenizer.ggml.add_sep_token";
  return nullptr;
}

template <typename T>
void SetOrdered(std::vector<std::pair<std::string, T>>* list, const std::string& key, T value,
                bool overwrite) {
  for (auto& [k, v] : *list) {
    if (k == key) {
      if (overwrite) v = value;
      return;
    }
  }
  list->emplace_back(key, value);
}

absl::StatusOr<spm::SpmVocab> LoadSpmChecked(const std::string& path, int64_t vocab_size,
                                             int64_t config_bos, int64_t config_eos) {
  spm::SpmVocab v;
  const std::string err = spm::LoadSpmVocab(path, &v);
  if (!err.empty()) return absl::NotFoundError(err);
  if (static_cast<int64_t>(v.pieces.size()) > vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat(path, " has ", v.pieces.size(),
                                                   " pieces, more than config.json vocab_size ",
                                                   vocab_size));
  }
  // Embedding rows past the tokenizer (Qwen pads its vocabulary to a
  // multiple of 128) get unused pieces, as llama.cpp's converter names them.
  for (int64_t id = static_cast<int64_t>(v.pieces.size()); id < vocab_size; ++id) {
    v.pieces.push_back(absl::StrCat("[PAD", id, "]"));
    v.scores.push_back(-10000.0f);
    v.types.push_back(spm::kUnused);
  }
  auto check = [&](const char* key, int64_t config_id, int32_t spm_id) -> absl::Status {
    if (spm_id < 0 || config_id != spm_id) {
      return absl::InvalidArgumentError(absl::StrCat("config.json: ", key, " ", config_id,
                                                     " differs from ", path, "'s id ", spm_id));
    }
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(check("bos_token_id", config_bos, v.bos_id));
  RETURN_IF_ERROR(check("eos_token_id", config_eos, v.eos_id));
  return v;
}

GgufVocab FromSpm(const spm::SpmVocab& s, const std::string& path) {
  GgufVocab v;
  v.source = path;
  v.model = "llama";
  v.tokens = s.pieces;
  v.scores = s.scores;
  v.types = s.types;
  v.special_ids = {{"bos", static_cast<uint32_t>(s.bos_id)}, {"eos", static_cast<uint32_t>(s.eos_id)}};
  if (s.unk_id >= 0) v.special_ids.emplace_back("unk", static_cast<uint32_t>(s.unk_id));
  if (s.pad_id >= 0) v.special_ids.emplace_back("pad", static_cast<uint32_t>(s.pad_id));
  v.add_special = {{"bos", true}, {"eos", false}};
  v.add_space_prefix = s.add_dummy_prefix;
  v.remove_extra_whitespaces = s.remove_extra_whitespaces;
  return v;
}

absl::StatusOr<json> ReadJsonFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(path, ": not valid JSON"));
  return j;
}

#ifdef QATK_HAVE_HF_TOKENIZER

using tokenizer::HfTokenizer;
using tokenizer::TokenType;

// A tokenizer_config.json *_token entry: a string, or {"content": string}.
std::optional<std::string> TokenContent(const json& entry) {
  if (entry.is_string()) return entry.get<std::string>();
  if (entry.is_object() && entry.contains("content") && entry["content"].is_string()) {
    return entry["content"].get<std::string>();
  }
  return std::nullopt;
}

std::string SpecialTokenOf(const json& item) {
  if (!item.is_object() || !item.contains("SpecialToken")) return "";
  const json& st = item["SpecialToken"];
  if (!st.is_object() || !st.contains("id") || !st["id"].is_string()) return "";
  return st["id"].get<std::string>();
}

std::string SequenceOf(const json& item) {
  if (!item.is_object() || !item.contains("Sequence")) return "";
  const json& s = item["Sequence"];
  if (!s.is_object() || !s.contains("id") || !s["id"].is_string()) return "";
  return s["id"].get<std::string>();
}

// gguf-py's SpecialVocab: special ids and add_*_token flags from tokenizer.json
// (added_tokens, post_processor), tokenizer_config.json and config.json, with
// its precedence (the first id found for a type wins; tokenizer_config's
// add_*_token overrides the post-processor's); and the chat template.
absl::Status ReadSpecialVocab(const std::string& dir, const json& tok_json,
                              std::optional<int64_t> n_vocab, GgufVocab* v) {
  std::vector<std::string> types = {"bos", "eos", "unk", "sep", "pad", "cls", "mask"};
  json tc;  // null when absent
  const std::string tc_path = dir + "/tokenizer_config.json";
  if (PathExists(tc_path)) {
    ASSIGN_OR_RETURN(tc, ReadJsonFile(tc_path));
    if (!tc.is_object()) return absl::InvalidArgumentError(tc_path + ": not a JSON object");
  }
  const bool have_tc = tc.is_object() && !tc.empty();
  auto tc_str = [&](const char* key) -> std::string {
    if (!have_tc || !tc.contains(key)) return "";
    return TokenContent(tc[key]).value_or("");
  };
  std::string sp_bos = tc_str("bos_token"), sp_cls = tc_str("cls_token");
  std::string sp_eos = tc_str("eos_token"), sp_sep = tc_str("sep_token");
  if (sp_bos.empty() && !sp_cls.empty() && have_tc) tc["bos_token"] = sp_bos = sp_cls;
  if (sp_eos.empty() && !sp_sep.empty() && have_tc) tc["eos_token"] = sp_eos = sp_sep;

  const json* post = tok_json.contains("post_processor") ? &tok_json["post_processor"] : nullptr;
  if (post != nullptr && post->is_object()) {
    std::vector<json> procs;
    if (post->contains("processors") && (*post)["processors"].is_array()) {
      for (const json& p : (*post)["processors"]) procs.push_back(p);
    } else {
      procs.push_back(*post);
    }
    for (const json& p : procs) {
      const std::string type = p.is_object() && p.contains("type") && p["type"].is_string()
                                   ? p["type"].get<std::string>() : "";
      if (type == "RobertaProcessing") {
        SetOrdered(&v->add_special, "bos", true, true);
        SetOrdered(&v->add_special, "eos", true, true);
        SetOrdered(&v->add_special, "sep", true, true);
        if (sp_cls.empty() && have_tc) {
          std::string cls = sp_bos;
          if (p.contains("cls") && p["cls"].is_array() && !p["cls"].empty() && p["cls"][0].is_string()) {
            cls = p["cls"][0].get<std::string>();
          }
          tc["cls_token"] = sp_cls = cls;
        }
        if (sp_sep.empty() && have_tc) {
          std::string sep = sp_eos;
          if (p.contains("sep") && p["sep"].is_array() && !p["sep"].empty() && p["sep"][0].is_string()) {
            sep = p["sep"][0].get<std::string>();
          }
          tc["sep_token"] = sp_sep = sep;
        }
        continue;
      }
      if (type != "TemplateProcessing") continue;
      // The converter's reading of simple templates: a leading special token
      // is BOS, a trailing one EOS, one between A and B of the pair a SEP.
      const json single = p.contains("single") && p["single"].is_array() ? p["single"] : json::array();
      json pair = p.contains("pair") && p["pair"].is_array() ? p["pair"] : json::array();
      std::string first, last;
      if (single.size() > 1) {
        first = SpecialTokenOf(single.front());
        if (!first.empty()) {
          if (!have_tc) {
            sp_bos = first;
          } else if (first != sp_bos && first != sp_cls) {
            if (sp_bos.empty()) tc["bos_token"] = sp_bos = first;
            if (sp_cls.empty()) tc["cls_token"] = sp_cls = first;
          }
          SetOrdered(&v->add_special, "bos", first == sp_bos || first == sp_cls, true);
        }
        last = SpecialTokenOf(single.back());
        if (!last.empty()) {
          if (!have_tc) {
            sp_eos = last;
          } else if (last != sp_eos) {
            if (std::find(types.begin(), types.end(), "eot") == types.end()) {
              types.push_back("eot");
              tc["eot_token"] = sp_eos;
            } else if (std::find(types.begin(), types.end(), "eom") == types.end()) {
              types.push_back("eom");
              tc["eom_token"] = sp_eos;
            }
            tc["eos_token"] = sp_eos = last;
          }
          SetOrdered(&v->add_special, "eos", last == sp_eos, true);
        }
      }
      if (!pair.empty()) {
        size_t start = (!first.empty() && SpecialTokenOf(pair.front()) == first) ? 1 : 0;
        size_t stop = (!last.empty() && SpecialTokenOf(pair.back()) == last) ? pair.size() - 1 : pair.size();
        std::vector<json> mid;
        for (size_t i = start; i < stop; ++i) mid.push_back(pair[i]);
        if (!mid.empty() && SequenceOf(mid.front()) == "A" && SequenceOf(mid.back()) == "B" &&
            mid.size() > 2) {
          std::vector<json> inner(mid.begin() + 1, mid.end() - 1);
          bool add_sep = false;
          const std::string e0 = SpecialTokenOf(inner[0]);
          if (!e0.empty() && (e0 == sp_sep || e0 == sp_eos) && last.empty()) add_sep = true;
          if (inner.size() == 2) {
            const std::string e1 = SpecialTokenOf(inner[1]);
            if (!e1.empty() && (e1 == sp_sep || e1 == sp_eos)) add_sep = true;
          }
          SetOrdered(&v->add_special, "sep", add_sep, true);
          if (add_sep && sp_sep.empty() && have_tc) tc["sep_token"] = sp_eos;
        }
      }
    }
  }

  auto set_id = [&](const std::string& typ, int64_t id) {
    if (id < 0) return;
    if (n_vocab && id >= *n_vocab) return;  // the converter skips it with a warning
    SetOrdered(&v->special_ids, typ, static_cast<uint32_t>(id), false);
  };
  if (have_tc) {
    // Chat template: tokenizer_config.json's, else chat_template.jinja.
    std::optional<std::string> alt;
    const std::string jinja = dir + "/chat_template.jinja";
    if (PathExists(jinja)) {
      ASSIGN_OR_RETURN(std::string t, ReadFileToString(jinja));
      alt = std::move(t);
    }
    if (tc.contains("chat_template")) {
      const json& ct = tc["chat_template"];
      if (ct.is_string()) {
        v->chat_template = ct.get<std::string>();
      } else if (ct.is_array()) {
        for (const json& c : ct) {
          if (!c.is_object() || !c.contains("name") || !c.contains("template") ||
              !c["name"].is_string() || !c["template"].is_string()) {
            continue;
          }
          std::string name = c["name"].get<std::string>();
          for (char& ch : name) {
            if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
          }
          if (name.empty()) continue;
          if (name == "default") {
            v->chat_template = c["template"].get<std::string>();
          } else {
            v->named_chat_templates.emplace_back(name, c["template"].get<std::string>());
          }
        }
      }
    } else {
      v->chat_template = alt;
    }
    const json added = tok_json.contains("added_tokens") && tok_json["added_tokens"].is_array()
                           ? tok_json["added_tokens"] : json::array();
    for (const std::string& typ : types) {
      const std::string add_key = absl::StrCat("add_", typ, "_token");
      if (tc.contains(add_key) && tc[add_key].is_boolean()) {
        SetOrdered(&v->add_special, typ, tc[add_key].get<bool>(), true);
      }
      const std::string key = typ + "_token";
      if (!tc.contains(key)) continue;
      const std::optional<std::string> content = TokenContent(tc[key]);
      if (!content) continue;
      for (const json& a : added) {
        if (a.is_object() && a.contains("content") && a["content"] == *content) {
          if (a.contains("id") && a["id"].is_number_integer()) set_id(typ, a["id"].get<int64_t>());
          break;
        }
      }
    }
  }
  const std::string config_path = dir + "/config.json";
  if (PathExists(config_path)) {
    ASSIGN_OR_RETURN(json config, ReadJsonFile(config_path));
    for (const std::string& typ : types) {
      const std::string key = typ + "_token_id";
      const json* id = nullptr;
      if (config.contains(key) && !config[key].is_null()) {
        id = &config[key];
      } else if (config.contains("text_config") && config["text_config"].is_object() &&
                 config["text_config"].contains(key)) {
        id = &config["text_config"][key];
      }
      if (id != nullptr && id->is_number_integer()) set_id(typ, id->get<int64_t>());
    }
  }
  return absl::OkStatus();
}

// convert_hf_to_gguf.py's does_token_look_special.
bool LooksSpecial(const std::string& t) {
  if (t == "<pad>" || t == "<mask>" || t == "<2mass>" || t == "[@BOS@]") return true;
  if (absl::StartsWith(t, "<|") && absl::EndsWith(t, "|>")) return true;
  if (absl::StartsWith(t, "<\xEF\xBD\x9C") && absl::EndsWith(t, "\xEF\xBD\x9C>")) return true;  // <｜ ｜>
  return absl::StartsWith(t, "<unused") && absl::EndsWith(t, ">");
}

struct AddedInfo {
  bool special = false;
  bool normalized = false;
};

absl::flat_hash_map<int32_t, AddedInfo> AddedTokens(const json& tok_json) {
  absl::flat_hash_map<int32_t, AddedInfo> out;
  if (!tok_json.contains("added_tokens") || !tok_json["added_tokens"].is_array()) return out;
  for (const json& a : tok_json["added_tokens"]) {
    if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer()) continue;
    AddedInfo info;
    info.special = a.value("special", false);
    info.normalized = a.value("normalized", !info.special);
    out[a["id"].get<int32_t>()] = info;
  }
  return out;
}

// convert_hf_to_gguf.py's get_vocab_base + _set_vocab_gpt2.
absl::StatusOr<GgufVocab> ByteLevelVocab(const std::string& dir, const std::string& path,
                                         const HfTokenizer& tok, const json& tok_json,
                                         int64_t vocab_size) {
  GgufVocab v;
  v.source = path;
  v.model = "gpt2";
  ASSIGN_OR_RETURN(std::vector<int32_t> chk, tok.Encode(PreCheckText(), /*add_special_tokens=*/true));
  std::string list = "[";
  for (size_t i = 0; i < chk.size(); ++i) absl::StrAppend(&list, i ? ", " : "", chk[i]);
  list += "]";
  const std::string chkhsh = Sha256Hex(list);
  std::optional<std::string> pre = PreNameForHash(chkhsh);
  if (!pre) {
    return absl::UnimplementedError(absl::StrCat(
        path, ": byte-level BPE pre-tokenizer not recognized (chkhsh ", chkhsh,
        "): llama.cpp's convert_hf_to_gguf.py lists no tokenizer.ggml.pre for it"));
  }
  v.pre = *pre;
  const absl::flat_hash_map<int32_t, AddedInfo> added = AddedTokens(tok_json);
  v.tokens.reserve(vocab_size);
  v.types.reserve(vocab_size);
  for (int64_t i = 0; i < vocab_size; ++i) {
    const int32_t id = static_cast<int32_t>(i);
    const TokenType type = id < tok.vocab_size() ? tok.token_type(id) : TokenType::kUnused;
    if (type == TokenType::kUnused) {
      v.tokens.push_back(absl::StrCat("[PAD", i, "]"));
      v.types.push_back(static_cast<int32_t>(TokenType::kUnused));
      continue;
    }
    std::string token = tok.token(id);
    auto it = added.find(id);
    if (it == added.end()) {
      v.tokens.push_back(std::move(token));
      v.types.push_back(static_cast<int32_t>(TokenType::kNormal));
      continue;
    }
    // llama.cpp matches control and user-defined tokens pre-normalized.
    if (!it->second.normalized) {
      ASSIGN_OR_RETURN(std::vector<int32_t> ids, tok.Encode(token, false));
      token = tok.Decode(ids, false);
    }
    if (it->second.special || LooksSpecial(token)) {
      v.types.push_back(static_cast<int32_t>(TokenType::kControl));
    } else {
      token = absl::StrReplaceAll(token, {{"\xE2\x96\x81", " "}});
      v.types.push_back(static_cast<int32_t>(TokenType::kUserDefined));
    }
    v.tokens.push_back(std::move(token));
  }
  // Merges as "a b"; a space inside a part is written as U+0120 (gguf-py).
  v.merges.reserve(tok.merges().size());
  for (const auto& [a, b] : tok.merges()) {
    auto enc = [](const std::string& s) { return absl::StrReplaceAll(s, {{" ", "\xC4\xA0"}}); };
    v.merges.push_back(absl::StrCat(enc(a), " ", enc(b)));
  }
  RETURN_IF_ERROR(ReadSpecialVocab(dir, tok_json, std::nullopt, &v));
  return v;
}

// SentencePiece-style BPE (Gemma 3) as the converter writes it from
// tokenizer.model (_create_vocab_sentencepiece): pieces, scores, types, then
// the added tokens as control / user-defined with score -1000, and
// "[PAD<id>]" (unused, score -10000) for ids without a token. tokenizer.json
// has merges instead of scores: a piece scores minus the rank of the first
// merge that makes it, so llama.cpp's highest-score-first merging follows the
// merge order; pieces no merge makes score below every merge.
absl::StatusOr<GgufVocab> SentencePieceVocab(const std::string& dir, const std::string& path,
                                             const HfTokenizer& tok, const json& tok_json,
                                             int64_t vocab_size) {
  GgufVocab v;
  v.source = path;
  v.model = "llama";
  v.pre = "default";
  absl::flat_hash_map<std::string, int64_t> first_rank;
  const auto& merges = tok.merges();
  for (size_t r = 0; r < merges.size(); ++r) {
    first_rank.emplace(merges[r].first + merges[r].second, static_cast<int64_t>(r));
  }
  const float floor = -static_cast<float>(merges.size()) - 1.0f;
  const absl::flat_hash_map<int32_t, AddedInfo> added = AddedTokens(tok_json);
  v.tokens.resize(vocab_size);
  v.scores.assign(vocab_size, -10000.0f);
  v.types.assign(vocab_size, static_cast<int32_t>(TokenType::kUnused));
  for (int64_t i = 0; i < vocab_size; ++i) {
    const int32_t id = static_cast<int32_t>(i);
    const TokenType type = id < tok.vocab_size() ? tok.token_type(id) : TokenType::kUnused;
    if (type == TokenType::kUnused) {
      v.tokens[i] = absl::StrCat("[PAD", i, "]");
      continue;
    }
    std::string token = tok.token(id);
    if (auto it = added.find(id); it != added.end()) {
      if (it->second.special || LooksSpecial(token)) {
        v.types[i] = static_cast<int32_t>(TokenType::kControl);
      } else {
        token = absl::StrReplaceAll(token, {{"\xE2\x96\x81", " "}});
        v.types[i] = static_cast<int32_t>(TokenType::kUserDefined);
      }
      v.scores[i] = -1000.0f;
    } else {
      v.types[i] = static_cast<int32_t>(type == TokenType::kByte || type == TokenType::kUnknown
                                            ? type : TokenType::kNormal);
      auto r = first_rank.find(token);
      v.scores[i] = type == TokenType::kNormal
                        ? (r != first_rank.end() ? -static_cast<float>(r->second) : floor)
                        : 0.0f;
    }
    v.tokens[i] = std::move(token);
  }
  RETURN_IF_ERROR(ReadSpecialVocab(dir, tok_json, vocab_size, &v));
  v.add_space_prefix = false;  // Gemma3Model.set_vocab
  return v;
}

absl::StatusOr<GgufVocab> HfJsonVocab(const std::string& dir, int64_t vocab_size) {
  const std::string path = dir + "/tokenizer.json";
  ASSIGN_OR_RETURN(HfTokenizer tok, HfTokenizer::FromFile(path));
  ASSIGN_OR_RETURN(json tok_json, ReadJsonFile(path));
  if (tok.vocab_size() > vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, " has ids up to ", tok.vocab_size() - 1, ", config.json vocab_size is ", vocab_size,
        " (the embedding has a row per id)"));
  }
  if (tok.is_byte_level()) return ByteLevelVocab(dir, path, tok, tok_json, vocab_size);
  if (tok.is_sentencepiece_style()) return SentencePieceVocab(dir, path, tok, tok_json, vocab_size);
  return absl::UnimplementedError(absl::StrCat(
      path, ": neither byte-level nor SentencePiece-style BPE; GGUF export supports those two"));
}

#endif  // QATK_HAVE_HF_TOKENIZER

}  // namespace

std::string Sha256Hex(const std::string& data) {
  uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  std::string m = data;
  const uint64_t bits = static_cast<uint64_t>(data.size()) * 8;
  m.push_back(static_cast<char>(0x80));
  while (m.size() % 64 != 56) m.push_back('\0');
  for (int i = 7; i >= 0; --i) m.push_back(static_cast<char>((bits >> (8 * i)) & 0xff));
  for (size_t off = 0; off < m.size(); off += 64) {
    uint32_t w[64];
    for (int i = 0; i < 16; ++i) {
      const auto* p = reinterpret_cast<const uint8_t*>(m.data() + off + 4 * i);
      w[i] = (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
    }
    for (int i = 16; i < 64; ++i) {
      const uint32_t s0 = Rotr(w[i - 15], 7) ^ Rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      const uint32_t s1 = Rotr(w[i - 2], 17) ^ Rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; ++i) {
      const uint32_t t1 = hh + (Rotr(e, 6) ^ Rotr(e, 11) ^ Rotr(e, 25)) + ((e & f) ^ (~e & g)) + kK[i] + w[i];
      const uint32_t t2 = (Rotr(a, 2) ^ Rotr(a, 13) ^ Rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      hh = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
  }
  std::string out;
  char buf[9];
  for (uint32_t x : h) {
    std::snprintf(buf, sizeof(buf), "%08x", x);
    out += buf;
  }
  return out;
}

const std::string& PreCheckText() {
  static const std::string* text = new std::string(
#include "export/bpe_pre_chktxt.inc"
  );
  return *text;
}

std::optional<std::string> PreNameForHash(const std::string& chkhsh) {
  for (const PreHash& p : kPreHashes) {
    if (chkhsh == p.hash) return std::string(p.name);
  }
  return std::nullopt;
}

std::optional<uint32_t> GgufVocab::SpecialId(const std::string& key) const {
  for (const auto& [k, id] : special_ids) {
    if (k == key) return id;
  }
  return std::nullopt;
}

std::optional<bool> GgufVocab::AddSpecial(const std::string& key) const {
  for (const auto& [k, b] : add_special) {
    if (k == key) return b;
  }
  return std::nullopt;
}

absl::StatusOr<GgufVocab> LoadCheckpointVocab(const std::string& dir, int64_t vocab_size,
                                              int64_t config_bos, int64_t config_eos) {
  if (PathExists(dir + "/tokenizer.json")) {
#ifdef QATK_HAVE_HF_TOKENIZER
    return HfJsonVocab(dir, vocab_size);
#else
    return absl::UnimplementedError(absl::StrCat(
        dir, "/tokenizer.json: this build has no tokenizer.json support (needs PCRE2 and ICU)"));
#endif
  }
  const std::string path = dir + "/tokenizer.model";
  ASSIGN_OR_RETURN(spm::SpmVocab s, LoadSpmChecked(path, vocab_size, config_bos, config_eos));
  return FromSpm(s, path);
}

absl::Status AddVocabKv(const GgufVocab& v, gguf::GgufWriter* w) {
  RETURN_IF_ERROR(w->AddKv("tokenizer.ggml.model", Value::Str(v.model)));
  if (!v.pre.empty()) RETURN_IF_ERROR(w->AddKv("tokenizer.ggml.pre", Value::Str(v.pre)));
  RETURN_IF_ERROR(w->AddKv("tokenizer.ggml.tokens", Value::StrArray(v.tokens)));
  if (!v.scores.empty()) RETURN_IF_ERROR(w->AddKv("tokenizer.ggml.scores", Value::F32Array(v.scores)));
  RETURN_IF_ERROR(w->AddKv("tokenizer.ggml.token_type", Value::I32Array(v.types)));
  if (!v.merges.empty()) RETURN_IF_ERROR(w->AddKv("tokenizer.ggml.merges", Value::StrArray(v.merges)));
  for (const auto& [typ, id] : v.special_ids) {
    if (const char* key = SpecialIdKey(typ)) RETURN_IF_ERROR(w->AddKv(key, Value::U32(id)));
  }
  for (const auto& [typ, add] : v.add_special) {
    if (const char* key = AddSpecialKey(typ)) RETURN_IF_ERROR(w->AddKv(key, Value::Bool(add)));
  }
  if (v.add_space_prefix) {
    RETURN_IF_ERROR(w->AddKv("tokenizer.ggml.add_space_prefix", Value::Bool(*v.add_space_prefix)));
  }
  if (v.remove_extra_whitespaces) {
    RETURN_IF_ERROR(w->AddKv("tokenizer.ggml.remove_extra_whitespaces",
                             Value::Bool(*v.remove_extra_whitespaces)));
  }
  std::vector<std::string> names;
  for (const auto& [name, text] : v.named_chat_templates) {
    RETURN_IF_ERROR(w->AddKv("tokenizer.chat_template." + name, Value::Str(text)));
    names.push_back(name);
  }
  if (!names.empty()) RETURN_IF_ERROR(w->AddKv("tokenizer.chat_templates", Value::StrArray(names)));
  if (v.chat_template) RETURN_IF_ERROR(w->AddKv("tokenizer.chat_template", Value::Str(*v.chat_template)));
  return absl::OkStatus();
}

}  // namespace qatk::exporter
