// Quantization recipes (configs/recipes/*.json): which QuantSpec applies to
// which module, by module-name glob. No torch here. Format:
//
//   {
//     "recipe_version": 1,                  required, must be 1
//     "name": "q4_0",                       required
//     "description": "...",                 optional
//     "export_format": "gguf" | "mobile",   required
//     "rules": [                            required, non-empty, in priority order
//       {"match": "lm_head" | ["glob", ...],   required; `*` matches any run of
//                                               characters, dots included
//        "weight": {spec}, "input": {spec}, "cache": {spec},   any, at least one
//        "optional": false}                 true: matching no module is fine
//     ]                                     (e.g. lm_head in a tied model)
//   }
//
// Resolution: for each slot of a module the first rule that matches the module
// name and names that slot wins. Slots by module kind: linears (`*_proj`,
// `lm_head`) take weight + input, embeddings (`model.embed_tokens`) take
// weight, caches (`*.k_cache`, `*.v_cache`) take cache.
//
// Errors (kInvalidArgument, naming the file and the rule, e.g.
// "q4_0.json: rules[1] (match \"lm_head\"): ..."): unknown keys with a
// "did you mean" hint, a wrong version (kUnimplemented), a pattern that
// matches no module, a slot a module kind cannot have, a shape the scheme
// cannot hold (in_features % 32 for q4_0/q8_0/q8_0_act, % 64 for q2_0), and
// weight schemes the export format cannot store (gguf: q4_0/q8_0/q2_0/none).
#ifndef QATK_FORMATS_QUANT_RECIPE_H_
#define QATK_FORMATS_QUANT_RECIPE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "formats/quant/spec.h"

namespace qatk {

constexpr int kRecipeVersion = 1;

struct RecipeRule {
  int index = 0;                      // position in "rules"
  std::vector<std::string> patterns;  // globs
  bool has_weight = false, has_input = false, has_cache = false;
  QuantSpec weight, input, cache;
  bool optional = false;
  // "rules[1] (match \"lm_head\")": used in every error about this rule.
  std::string Label() const;
  bool Matches(absl::string_view module_name) const;
};

// The specs one module gets, with the index of the rule that set each slot
// (-1: no rule; the slot stays unquantized).
struct LayerQuant {
  QuantSpec weight, input, cache;
  int weight_rule = -1, input_rule = -1, cache_rule = -1;
  bool any() const { return weight.enabled() || input.enabled() || cache.enabled(); }
};

enum class ModuleKind { kLinear, kEmbedding, kCache };

// What Validate needs to know of a module: its name and the shape of what is
// quantized. Linear/embedding: weight [rows, cols] = [out, in] / [V, E];
// cache: cols = the last dim of the cached k/v rows (head_dim), rows unused.
struct ModuleShape {
  std::string name;
  ModuleKind kind = ModuleKind::kLinear;
  int64_t rows = 0, cols = 0;
};

struct Recipe {
  int version = kRecipeVersion;
  std::string name, description;
  std::string export_format;  // "gguf" | "mobile"
  std::vector<RecipeRule> rules;
  std::string source;         // file name (or "<string>") for error messages

  // First matching rule per slot.
  LayerQuant Resolve(absl::string_view module_name) const;
  // Every module against every rule: see the header comment for the errors.
  absl::Status Validate(const std::vector<ModuleShape>& modules) const;
};

// Glob match: `*` matches any (possibly empty) run of characters.
bool GlobMatch(absl::string_view pattern, absl::string_view text);

absl::StatusOr<Recipe> ParseRecipe(absl::string_view json_text, absl::string_view source = "<string>");
absl::StatusOr<Recipe> LoadRecipe(const std::string& path);
// Canonical JSON with every default spelled out (written into checkpoints as
// recipe.json; ParseRecipe(RecipeToJson(r)) resolves identically).
std::string RecipeToJson(const Recipe& recipe);

}  // namespace qatk

#endif  // QATK_FORMATS_QUANT_RECIPE_H_
