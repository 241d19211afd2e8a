// QuantSpec parsing and validation. The codecs these specs describe are in
// codecs.cc. Compiled with -ffp-contract=off (formats/CMakeLists.txt) like
// the codecs, so any arithmetic added here rounds as they do.
#include "formats/quant/spec.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "formats/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace qatk {
namespace {

using json = nlohmann::json;

template <typename E>
struct NamedValue {
  const char* name;
  E value;
};

constexpr NamedValue<QuantScheme> kSchemes[] = {
    {"none", QuantScheme::kNone},          {"q4_0", QuantScheme::kQ4_0},
    {"q8_0", QuantScheme::kQ8_0},          {"q2_0", QuantScheme::kQ2_0},
    {"int_channel", QuantScheme::kIntChannel}, {"int_tensor", QuantScheme::kIntTensor},
    {"int_token", QuantScheme::kIntToken}, {"q8_0_act", QuantScheme::kQ8_0Act}};
constexpr NamedValue<Rounding> kRoundings[] = {{"ggml", Rounding::kGgml},
                                               {"half_away_from_zero", Rounding::kHalfAwayFromZero},
                                               {"half_even", Rounding::kHalfEven}};
constexpr NamedValue<ScaleType> kScaleTypes[] = {{"f16", ScaleType::kF16}, {"f32", ScaleType::kF32}};
constexpr NamedValue<ScaleRule> kScaleRules[] = {
    {"block_absmax", ScaleRule::kBlockAbsmax}, {"absmax", ScaleRule::kAbsmax},
    {"mse", ScaleRule::kMse}, {"calibrated", ScaleRule::kCalibrated}, {"learned", ScaleRule::kLearned}};
constexpr NamedValue<ObserverKind> kObservers[] = {{"minmax", ObserverKind::kMinMax},
                                                   {"ema", ObserverKind::kEma},
                                                   {"percentile", ObserverKind::kPercentile},
                                                   {"mse", ObserverKind::kMse}};

template <typename E, size_t N>
const char* NameOf(const NamedValue<E> (&table)[N], E v) {
  for (const auto& e : table) {
    if (e.value == v) return e.name;
  }
  return "?";
}

template <typename E, size_t N>
absl::Status ParseEnum(const json& j, const char* key, const NamedValue<E> (&table)[N],
                       absl::string_view where, E* out) {
  if (!j.is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".", key, ": expected a string"));
  }
  const std::string s = j.get<std::string>();
  std::vector<std::string> names;
  for (const auto& e : table) {
    if (s == e.name) {
      *out = e.value;
      return absl::OkStatus();
    }
    names.push_back(e.name);
  }
  const std::string hint = ClosestName(s, names);
  return absl::InvalidArgumentError(absl::StrCat(
      where, ".", key, ": unknown value \"", s, "\"",
      hint.empty() ? "" : absl::StrCat(" (did you mean \"", hint, "\"?)"), "; expected one of ",
      absl::StrJoin(names, ", ")));
}

absl::Status ParseNumber(const json& j, const char* key, absl::string_view where, double* out) {
  if (!j.is_number()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".", key, ": expected a number"));
  }
  *out = j.get<double>();
  return absl::OkStatus();
}

absl::Status ParseInt(const json& j, const char* key, absl::string_view where, int* out) {
  if (!j.is_number_integer()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".", key, ": expected an integer"));
  }
  *out = j.get<int>();
  return absl::OkStatus();
}

// Scheme defaults; `slot` picks the activation flavour of q8_0.
void ApplyDefaults(QuantSpec* s) {
  switch (s->scheme) {
    case QuantScheme::kNone:
      break;
    case QuantScheme::kQ4_0:
    case QuantScheme::kQ8_0:
    case QuantScheme::kQ2_0:
    case QuantScheme::kQ8_0Act:
      s->bits = s->scheme == QuantScheme::kQ4_0 ? 4 : s->scheme == QuantScheme::kQ2_0 ? 2 : 8;
      s->rounding = Rounding::kGgml;
      s->scale_type = ScaleType::kF16;
      s->scale_rule = ScaleRule::kBlockAbsmax;
      break;
    case QuantScheme::kIntChannel:
      s->bits = 8;
      s->scale_type = ScaleType::kF16;
      s->scale_rule = ScaleRule::kAbsmax;
      break;
    case QuantScheme::kIntTensor:
      s->bits = 8;
      s->scale_type = ScaleType::kF32;
      s->scale_rule = ScaleRule::kCalibrated;
      break;
    case QuantScheme::kIntToken:
      s->bits = 8;
      s->scale_type = ScaleType::kF32;
      s->scale_rule = ScaleRule::kAbsmax;
      break;
  }
}

const std::vector<std::string>& SpecKeys() {
  static const std::vector<std::string> keys = {
      "scheme", "bits", "narrow_range", "rounding", "scale_type", "scale_rule",
      "observer", "ema_decay", "percentile", "mse_grid", "mse_min_ratio"};
  return keys;
}

absl::Status ParseField(const std::string& key, const json& v, absl::string_view where,
                        QuantSpec* s) {
  if (key == "bits") return ParseInt(v, "bits", where, &s->bits);
  if (key == "narrow_range") {
    if (!v.is_boolean()) return absl::InvalidArgumentError(absl::StrCat(where, ".narrow_range: expected true/false"));
    s->narrow_range = v.get<bool>();
    return absl::OkStatus();
  }
  if (key == "rounding") return ParseEnum(v, "rounding", kRoundings, where, &s->rounding);
  if (key == "scale_type") return ParseEnum(v, "scale_type", kScaleTypes, where, &s->scale_type);
  if (key == "scale_rule") return ParseEnum(v, "scale_rule", kScaleRules, where, &s->scale_rule);
  if (key == "observer") return ParseEnum(v, "observer", kObservers, where, &s->observer);
  if (key == "ema_decay") return ParseNumber(v, "ema_decay", where, &s->ema_decay);
  if (key == "percentile") return ParseNumber(v, "percentile", where, &s->percentile);
  if (key == "mse_grid") return ParseInt(v, "mse_grid", where, &s->mse_grid);
  if (key == "mse_min_ratio") return ParseNumber(v, "mse_min_ratio", where, &s->mse_min_ratio);
  return absl::OkStatus();  // "scheme" handled by the caller
}

bool IsWeightScheme(QuantScheme s) {
  return s == QuantScheme::kQ4_0 || s == QuantScheme::kQ8_0 || s == QuantScheme::kQ2_0 ||
         s == QuantScheme::kIntChannel;
}

}  // namespace

const char* SchemeName(QuantScheme s) { return NameOf(kSchemes, s); }
const char* RoundingName(Rounding r) { return NameOf(kRoundings, r); }
const char* ScaleTypeName(ScaleType t) { return NameOf(kScaleTypes, t); }
const char* ScaleRuleName(ScaleRule r) { return NameOf(kScaleRules, r); }
const char* ObserverName(ObserverKind o) { return NameOf(kObservers, o); }
const char* SlotName(QuantSlot s) {
  switch (s) {
    case QuantSlot::kWeight: return "weight";
    case QuantSlot::kInput: return "input";
    case QuantSlot::kCache: return "cache";
  }
  return "?";
}

bool QuantSpec::is_block() const {
  return scheme == QuantScheme::kQ4_0 || scheme == QuantScheme::kQ8_0 ||
         scheme == QuantScheme::kQ2_0 || scheme == QuantScheme::kQ8_0Act;
}

int QuantSpec::block_size() const {
  if (!is_block()) return 0;
  return Traits(ggml_type()).block_size;
}

GgmlType QuantSpec::ggml_type() const {
  switch (scheme) {
    case QuantScheme::kQ4_0: return GgmlType::kQ4_0;
    case QuantScheme::kQ2_0: return GgmlType::kQ2_0;
    case QuantScheme::kQ8_0:
    case QuantScheme::kQ8_0Act: return GgmlType::kQ8_0;
    default: break;
  }
  QATK_CHECK(false, "ggml_type() of a non-block scheme");
}

int QuantSpec::Qn() const {
  switch (scheme) {
    case QuantScheme::kQ4_0: return 8;
    case QuantScheme::kQ2_0: return 1;
    case QuantScheme::kQ8_0:
    case QuantScheme::kQ8_0Act: return 127;
    case QuantScheme::kNone: return 0;
    default: return narrow_range ? (1 << (bits - 1)) - 1 : (1 << (bits - 1));
  }
}

int QuantSpec::Qp() const {
  switch (scheme) {
    case QuantScheme::kQ4_0: return 7;
    case QuantScheme::kQ2_0: return 2;
    case QuantScheme::kQ8_0:
    case QuantScheme::kQ8_0Act: return 127;
    case QuantScheme::kNone: return 0;
    default: return (1 << (bits - 1)) - 1;
  }
}

bool QuantSpec::has_stored_scale() const {
  if (scheme == QuantScheme::kQ4_0) return scale_rule == ScaleRule::kLearned;
  if (scheme == QuantScheme::kIntChannel) {
    return scale_rule == ScaleRule::kMse || scale_rule == ScaleRule::kLearned;
  }
  return scheme == QuantScheme::kIntTensor;
}

std::string ClosestName(absl::string_view word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = std::numeric_limits<size_t>::max();
  for (const std::string& c : candidates) {
    std::vector<size_t> prev(c.size() + 1), cur(c.size() + 1);
    for (size_t j = 0; j <= c.size(); ++j) prev[j] = j;
    for (size_t i = 1; i <= word.size(); ++i) {
      cur[0] = i;
      for (size_t j = 1; j <= c.size(); ++j) {
        const size_t sub = prev[j - 1] + (word[i - 1] == c[j - 1] ? 0 : 1);
        cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
      }
      std::swap(prev, cur);
    }
    if (prev[c.size()] < best_d) {
      best_d = prev[c.size()];
      best = c;
    }
  }
  const size_t limit = std::max<size_t>(2, word.size() / 3);
  return best_d <= limit ? best : "";
}

absl::Status ValidateQuantSpec(const QuantSpec& s, QuantSlot slot, absl::string_view where) {
  auto err = [&](auto&&... parts) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", parts...));
  };
  if (!s.enabled()) return absl::OkStatus();
  const bool weight_scheme = IsWeightScheme(s.scheme);
  if ((slot == QuantSlot::kWeight) != weight_scheme) {
    return err("scheme ", SchemeName(s.scheme), " cannot be used for a ", SlotName(slot),
               slot == QuantSlot::kWeight ? " (weights take q4_0, q8_0, q2_0 or int_channel)"
                                          : " (activations take int_tensor, int_token or q8_0_act)");
  }
  if (s.is_block()) {
    QuantSpec d;
    d.scheme = s.scheme;
    ApplyDefaults(&d);
    // q4_0 alone may learn its block scales: llama.cpp reads any fp16 d.
    const bool learned_q4_0 = s.scheme == QuantScheme::kQ4_0 && s.scale_rule == ScaleRule::kLearned;
    if (s.bits != d.bits || s.rounding != d.rounding || s.scale_type != d.scale_type ||
        (s.scale_rule != d.scale_rule && !learned_q4_0) || s.narrow_range) {
      return err(SchemeName(s.scheme), " is fixed by the ggml format: only \"scheme\" may be given",
                 s.scheme == QuantScheme::kQ4_0 ? " (and \"scale_rule\": \"learned\")" : "");
    }
    return absl::OkStatus();
  }
  if (s.bits < 2 || s.bits > 8) return err("bits must be in 2..8, got ", s.bits);
  if (s.rounding == Rounding::kGgml) {
    return err("rounding \"ggml\" is only for q4_0/q8_0/q2_0; use half_away_from_zero or half_even");
  }
  const ScaleRule r = s.scale_rule;
  if (s.scheme == QuantScheme::kIntChannel && r != ScaleRule::kAbsmax && r != ScaleRule::kMse &&
      r != ScaleRule::kLearned) {
    return err("int_channel takes scale_rule absmax, mse or learned, not ", ScaleRuleName(r));
  }
  if (s.scheme == QuantScheme::kIntTensor && r != ScaleRule::kCalibrated && r != ScaleRule::kLearned) {
    return err("int_tensor takes scale_rule calibrated or learned, not ", ScaleRuleName(r));
  }
  if (s.scheme == QuantScheme::kIntToken && r != ScaleRule::kAbsmax) {
    return err("int_token (dynamic) takes scale_rule absmax only, not ", ScaleRuleName(r));
  }
  if (!(s.ema_decay > 0 && s.ema_decay < 1)) return err("ema_decay must be in (0, 1)");
  if (!(s.percentile > 0 && s.percentile <= 100)) return err("percentile must be in (0, 100]");
  if (s.mse_grid < 2 || s.mse_grid > 4096) return err("mse_grid must be in 2..4096");
  if (!(s.mse_min_ratio > 0 && s.mse_min_ratio < 1)) return err("mse_min_ratio must be in (0, 1)");
  return absl::OkStatus();
}

absl::StatusOr<QuantSpec> ParseQuantSpec(const json& j, QuantSlot slot, absl::string_view where) {
  if (!j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": expected an object like {\"scheme\": \"q4_0\"}"));
  }
  QuantSpec s;
  auto it = j.find("scheme");
  if (it == j.end()) return absl::InvalidArgumentError(absl::StrCat(where, ": missing \"scheme\""));
  RETURN_IF_ERROR(ParseEnum(*it, "scheme", kSchemes, where, &s.scheme));
  ApplyDefaults(&s);
  for (auto kv = j.begin(); kv != j.end(); ++kv) {
    const std::string& key = kv.key();
    if (std::find(SpecKeys().begin(), SpecKeys().end(), key) == SpecKeys().end()) {
      const std::string hint = ClosestName(key, SpecKeys());
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": unknown key \"", key, "\"",
                       hint.empty() ? "" : absl::StrCat(" (did you mean \"", hint, "\"?)"),
                       "; known keys: ", absl::StrJoin(SpecKeys(), ", ")));
    }
    RETURN_IF_ERROR(ParseField(key, kv.value(), where, &s));
  }
  RETURN_IF_ERROR(ValidateQuantSpec(s, slot, where));
  return s;
}

json QuantSpecToJson(const QuantSpec& s) {
  json j;
  j["scheme"] = SchemeName(s.scheme);
  if (s.is_block() && s.scale_rule == ScaleRule::kLearned) j["scale_rule"] = ScaleRuleName(s.scale_rule);
  if (!s.enabled() || s.is_block()) return j;
  j["bits"] = s.bits;
  j["narrow_range"] = s.narrow_range;
  j["rounding"] = RoundingName(s.rounding);
  j["scale_type"] = ScaleTypeName(s.scale_type);
  j["scale_rule"] = ScaleRuleName(s.scale_rule);
  if (s.scale_rule == ScaleRule::kCalibrated) {
    j["observer"] = ObserverName(s.observer);
    j["ema_decay"] = s.ema_decay;
    j["percentile"] = s.percentile;
  }
  j["mse_grid"] = s.mse_grid;
  j["mse_min_ratio"] = s.mse_min_ratio;
  return j;
}

std::string DescribeQuantSpec(const QuantSpec& s) {
  if (s.is_block() && s.scale_rule == ScaleRule::kLearned) return absl::StrCat(SchemeName(s.scheme), " learned");
  if (!s.enabled() || s.is_block()) return SchemeName(s.scheme);
  const char* gran = s.scheme == QuantScheme::kIntChannel ? "per-channel"
                     : s.scheme == QuantScheme::kIntTensor ? "per-tensor" : "per-token";
  std::string out = absl::StrCat("int", s.bits, " ", gran, " ", ScaleRuleName(s.scale_rule));
  if (s.scale_rule == ScaleRule::kCalibrated) absl::StrAppend(&out, "(", ObserverName(s.observer), ")");
  absl::StrAppend(&out, " ", ScaleTypeName(s.scale_type));
  if (s.narrow_range) absl::StrAppend(&out, " narrow");
  return out;
}

}  // namespace qatk
