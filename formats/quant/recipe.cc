#include "formats/quant/recipe.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "formats/util/file_io.h"
#include "formats/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace qatk {
namespace {

using json = nlohmann::json;

const std::vector<std::string>& TopKeys() {
  static const std::vector<std::string> k = {"recipe_version", "name", "description", "export_format",
                                             "rules"};
  return k;
}
const std::vector<std::string>& RuleKeys() {
  static const std::vector<std::string> k = {"match", "weight", "input", "cache", "optional"};
  return k;
}

absl::Status UnknownKeys(const json& obj, const std::vector<std::string>& known,
                         absl::string_view where) {
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (std::find(known.begin(), known.end(), it.key()) != known.end()) continue;
    const std::string hint = ClosestName(it.key(), known);
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": unknown key \"", it.key(), "\"",
                     hint.empty() ? "" : absl::StrCat(" (did you mean \"", hint, "\"?)"),
                     "; known keys: ", absl::StrJoin(known, ", ")));
  }
  return absl::OkStatus();
}

absl::Status ParsePatterns(const json& m, absl::string_view where, std::vector<std::string>* out) {
  auto add = [&](const json& p) -> absl::Status {
    if (!p.is_string() || p.get<std::string>().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".match: patterns must be non-empty strings"));
    }
    out->push_back(p.get<std::string>());
    return absl::OkStatus();
  };
  if (m.is_string()) return add(m);
  if (!m.is_array() || m.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ".match: expected a glob string or a non-empty list of globs"));
  }
  for (const json& p : m) RETURN_IF_ERROR(add(p));
  return absl::OkStatus();
}

absl::StatusOr<RecipeRule> ParseRule(const json& r, int index, absl::string_view source) {
  const std::string where = absl::StrCat(source, ": rules[", index, "]");
  if (!r.is_object()) return absl::InvalidArgumentError(absl::StrCat(where, ": expected an object"));
  RETURN_IF_ERROR(UnknownKeys(r, RuleKeys(), where));
  RecipeRule rule;
  rule.index = index;
  if (!r.contains("match")) return absl::InvalidArgumentError(absl::StrCat(where, ": missing \"match\""));
  RETURN_IF_ERROR(ParsePatterns(r["match"], where, &rule.patterns));
  const std::string label = absl::StrCat(source, ": ", rule.Label());
  struct SlotRef {
    const char* key;
    QuantSlot slot;
    bool* has;
    QuantSpec* spec;
  } slots[] = {{"weight", QuantSlot::kWeight, &rule.has_weight, &rule.weight},
               {"input", QuantSlot::kInput, &rule.has_input, &rule.input},
               {"cache", QuantSlot::kCache, &rule.has_cache, &rule.cache}};
  for (SlotRef& s : slots) {
    if (!r.contains(s.key)) continue;
    ASSIGN_OR_RETURN(*s.spec, ParseQuantSpec(r[s.key], s.slot, absl::StrCat(label, ".", s.key)));
    *s.has = true;
  }
  if (!rule.has_weight && !rule.has_input && !rule.has_cache) {
    return absl::InvalidArgumentError(absl::StrCat(label, ": names no slot (give weight, input or cache)"));
  }
  if (r.contains("optional")) {
    if (!r["optional"].is_boolean()) {
      return absl::InvalidArgumentError(absl::StrCat(label, ".optional: expected true/false"));
    }
    rule.optional = r["optional"].get<bool>();
  }
  return rule;
}

absl::Status RequireString(const json& j, const char* key, absl::string_view source, bool required,
                           std::string* out) {
  if (!j.contains(key)) {
    if (!required) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(source, ": missing \"", key, "\""));
  }
  if (!j[key].is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": \"", key, "\" must be a string"));
  }
  *out = j[key].get<std::string>();
  return absl::OkStatus();
}

// Which slots a module kind has.
bool KindHasSlot(ModuleKind kind, QuantSlot slot) {
  switch (kind) {
    case ModuleKind::kLinear: return slot != QuantSlot::kCache;
    case ModuleKind::kEmbedding: return slot == QuantSlot::kWeight;
    case ModuleKind::kCache: return slot == QuantSlot::kCache;
  }
  return false;
}

const char* KindName(ModuleKind k) {
  switch (k) {
    case ModuleKind::kLinear: return "linear";
    case ModuleKind::kEmbedding: return "embedding";
    case ModuleKind::kCache: return "KV cache";
  }
  return "?";
}

}  // namespace

std::string RecipeRule::Label() const {
  std::vector<std::string> quoted;
  for (const auto& p : patterns) quoted.push_back(absl::StrCat("\"", p, "\""));
  return absl::StrCat("rules[", index, "] (match ", absl::StrJoin(quoted, ", "), ")");
}

bool RecipeRule::Matches(absl::string_view name) const {
  for (const auto& p : patterns) {
    if (GlobMatch(p, name)) return true;
  }
  return false;
}

bool GlobMatch(absl::string_view pattern, absl::string_view text) {
  size_t p = 0, t = 0, star = absl::string_view::npos, mark = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
    } else if (p < pattern.size() && pattern[p] == text[t]) {
      ++p;
      ++t;
    } else if (star != absl::string_view::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

LayerQuant Recipe::Resolve(absl::string_view module_name) const {
  LayerQuant lq;
  for (const RecipeRule& r : rules) {
    if (!r.Matches(module_name)) continue;
    if (r.has_weight && lq.weight_rule < 0) {
      lq.weight = r.weight;
      lq.weight_rule = r.index;
    }
    if (r.has_input && lq.input_rule < 0) {
      lq.input = r.input;
      lq.input_rule = r.index;
    }
    if (r.has_cache && lq.cache_rule < 0) {
      lq.cache = r.cache;
      lq.cache_rule = r.index;
    }
  }
  return lq;
}

absl::Status Recipe::Validate(const std::vector<ModuleShape>& modules) const {
  for (const RecipeRule& r : rules) {
    const std::string label = absl::StrCat(source, ": ", r.Label());
    bool matched = false;
    for (const ModuleShape& m : modules) {
      if (!r.Matches(m.name)) continue;
      matched = true;
      if (r.has_weight && m.kind == ModuleKind::kCache) {
        return absl::InvalidArgumentError(absl::StrCat(label, ": \"weight\" given for KV cache ", m.name,
                                                       " (use \"cache\")"));
      }
      if (r.has_cache && m.kind != ModuleKind::kCache) {
        return absl::InvalidArgumentError(absl::StrCat(label, ": \"cache\" given for ", KindName(m.kind),
                                                       " ", m.name, " (only *.k_cache / *.v_cache)"));
      }
      if (r.has_input && m.kind == ModuleKind::kEmbedding) {
        return absl::InvalidArgumentError(absl::StrCat(label, ": \"input\" given for embedding ", m.name,
                                                       " (its input is token ids)"));
      }
    }
    if (!matched && !r.optional) {
      return absl::InvalidArgumentError(absl::StrCat(
          label, ": matches no module (names look like model.layers.0.self_attn.q_proj, lm_head, "
                 "model.embed_tokens, model.layers.0.self_attn.k_cache); add \"optional\": true if intended"));
    }
  }
  for (const ModuleShape& m : modules) {
    const LayerQuant lq = Resolve(m.name);
    struct {
      const QuantSpec* spec;
      int rule;
      QuantSlot slot;
    } slots[] = {{&lq.weight, lq.weight_rule, QuantSlot::kWeight},
                 {&lq.input, lq.input_rule, QuantSlot::kInput},
                 {&lq.cache, lq.cache_rule, QuantSlot::kCache}};
    for (const auto& s : slots) {
      if (s.rule < 0 || !KindHasSlot(m.kind, s.slot)) continue;
      const std::string label = absl::StrCat(source, ": ", rules[s.rule].Label());
      const int block = s.spec->block_size();
      if (block > 0 && m.cols > 0 && m.cols % block != 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            label, ": ", m.name, " has ", m.cols, " ", m.kind == ModuleKind::kCache ? "head_dim" : "in_features",
            ", not a multiple of ", block, " as ", SchemeName(s.spec->scheme), " needs"));
      }
      if (s.slot == QuantSlot::kWeight && export_format == "gguf" && s.spec->enabled() &&
          !s.spec->is_block()) {
        return absl::InvalidArgumentError(absl::StrCat(label, ": ", m.name, ": weight scheme ",
                                                       SchemeName(s.spec->scheme),
                                                       " cannot be stored in GGUF (use q4_0, q8_0 or q2_0, "
                                                       "or export_format \"mobile\")"));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Recipe> ParseRecipe(absl::string_view json_text, absl::string_view source) {
  json j = json::parse(json_text.begin(), json_text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": not valid JSON"));
  }
  if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat(source, ": expected a JSON object"));
  RETURN_IF_ERROR(UnknownKeys(j, TopKeys(), source));
  Recipe r;
  r.source = std::string(source);
  if (!j.contains("recipe_version")) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": missing \"recipe_version\" (use 1)"));
  }
  if (!j["recipe_version"].is_number_integer()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": \"recipe_version\" must be an integer"));
  }
  r.version = j["recipe_version"].get<int>();
  if (r.version != kRecipeVersion) {
    return absl::UnimplementedError(absl::StrCat(source, ": recipe_version ", r.version,
                                                 " is not supported (this build reads version ",
                                                 kRecipeVersion, ")"));
  }
  RETURN_IF_ERROR(RequireString(j, "name", source, true, &r.name));
  RETURN_IF_ERROR(RequireString(j, "description", source, false, &r.description));
  RETURN_IF_ERROR(RequireString(j, "export_format", source, true, &r.export_format));
  if (r.export_format != "gguf" && r.export_format != "mobile") {
    const std::string hint = ClosestName(r.export_format, {"gguf", "mobile"});
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": export_format \"", r.export_format, "\" is not gguf or mobile",
        hint.empty() ? "" : absl::StrCat(" (did you mean \"", hint, "\"?)")));
  }
  if (!j.contains("rules") || !j["rules"].is_array() || j["rules"].empty()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": \"rules\" must be a non-empty list"));
  }
  int index = 0;
  for (const json& rj : j["rules"]) {
    ASSIGN_OR_RETURN(RecipeRule rule, ParseRule(rj, index++, source));
    r.rules.push_back(std::move(rule));
  }
  return r;
}

absl::StatusOr<Recipe> LoadRecipe(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return ParseRecipe(text, path);
}

std::string RecipeToJson(const Recipe& recipe) {
  json j;
  j["recipe_version"] = recipe.version;
  j["name"] = recipe.name;
  j["description"] = recipe.description;
  j["export_format"] = recipe.export_format;
  json rules = json::array();
  for (const RecipeRule& r : recipe.rules) {
    json rj;
    rj["match"] = r.patterns.size() == 1 ? json(r.patterns[0]) : json(r.patterns);
    if (r.has_weight) rj["weight"] = QuantSpecToJson(r.weight);
    if (r.has_input) rj["input"] = QuantSpecToJson(r.input);
    if (r.has_cache) rj["cache"] = QuantSpecToJson(r.cache);
    if (r.optional) rj["optional"] = true;
    rules.push_back(std::move(rj));
  }
  j["rules"] = std::move(rules);
  return j.dump(2) + "\n";
}

}  // namespace qatk
