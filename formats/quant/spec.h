// QuantSpec: the one definition of a quantizer, shared by the LibTorch
// fake-quant ops (qat/quant/), the exporters and the runtime. No torch here.
//
// Schemes and where they apply (slot = weight / input activation / KV cache):
//
//   scheme        slot            granularity             levels (codes)
//   none          any             -                       unquantized
//   q4_0          weight          block 32 along input    -8..7   (ggml Q4_0)
//   q8_0          weight          block 32 along input    -127..127 (ggml Q8_0)
//   q2_0          weight          block 64 along input    -1..2   (ggml Q2_0)
//   int_channel   weight          one scale per output row (per token row for
//                                 embeddings)             [-Qn, Qp]
//   int_tensor    input / cache   one static scale        [-Qn, Qp]
//   int_token     input / cache   one dynamic scale per token (last dim)
//   q8_0_act      input / cache   Q8_0 blocks of 32 along the last dim, computed
//                                 at run time with llama.cpp's x86 activation
//                                 rule (QuantizeBlockQ8_0Act: id = 127/amax,
//                                 round half to even)
//
// Symmetric signed range of an intN scheme (bits = N):
//   full range:   Qn = 2^(N-1),    Qp = 2^(N-1) - 1    (int4: -8..7, int2: -2..1)
//   narrow range: Qn = Qp = 2^(N-1) - 1                (int4: -7..7, int2: -1..1)
//
// Per-channel / per-tensor / per-token intN codec (the reference, in
// codecs.h; fake-quant reproduces it bit for bit):
//   scale rule absmax:  s = amax(|x|) / Qp            (fp32 division)
//   scale rule mse:     s = argmin over r in {1, 1-h, 1-2h, ..., mse_min_ratio}
//                       (h = (1-mse_min_ratio)/(mse_grid-1)) and, for a
//                       full range (Qn != Qp), sign in {+1, -1}, of
//                       sum (x - dq(q(x; s)))^2 with s = sign*Store(r*amax/Qp);
//                       ties: +1 before -1, then the largest r. A negative
//                       scale mirrors the levels (int2: {2, 1, 0, -1}*|s|),
//                       putting the extra level on the positive side: it is
//                       free in storage (the scale's sign bit) and the
//                       quantize / dequantize formulas below are unchanged.
//   calibrated:         s = observer range / Qp (activations, see observers)
//   learned:            s is a trained parameter (LSQ), initialised by mse
//   Store(s):           s rounded to the scale storage type (fp16: round to
//                       nearest even, clamped to the largest finite fp16
//                       65504 in magnitude; f32: unchanged). Store is applied BEFORE the
//                       scale is used, so every consumer sees the same s.
//   quantize:           inv = s != 0 ? 1/s : 0 (fp32);  v = x * inv;
//                       q = clamp(Round(v), -Qn, Qp)
//   dequantize:         x^ = q * s
//   Round:              half_away_from_zero (C roundf, ggml's Q8_0/Q2_0) or
//                       half_even (torch's nearbyint); `ggml` means the block
//                       format's own rule and is valid only for q4_0/q8_0/q2_0.
//
// Observers (static activation scales, calibrate mode): minmax keeps the
// running max of |x|; ema averages per-batch max|x| with decay ema_decay;
// percentile takes the `percentile`-th percentile of |x| per batch (averaged
// over batches); mse keeps max|x| and a histogram and picks the clip that
// minimises the quantization MSE. range / Qp is the calibrated scale.
#ifndef QATK_FORMATS_QUANT_SPEC_H_
#define QATK_FORMATS_QUANT_SPEC_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "formats/quant/types.h"
#include "nlohmann/json_fwd.hpp"

namespace qatk {

enum class QuantScheme { kNone, kQ4_0, kQ8_0, kQ2_0, kIntChannel, kIntTensor, kIntToken, kQ8_0Act };
enum class Rounding { kGgml, kHalfAwayFromZero, kHalfEven };
enum class ScaleType { kF16, kF32 };
enum class ScaleRule { kBlockAbsmax, kAbsmax, kMse, kCalibrated, kLearned };
enum class ObserverKind { kMinMax, kEma, kPercentile, kMse };
// Where a spec is used; decides which schemes and defaults are allowed.
enum class QuantSlot { kWeight, kInput, kCache };

struct QuantSpec {
  QuantScheme scheme = QuantScheme::kNone;
  int bits = 0;               // 4 for q4_0, 8 for q8_0/q8_0_act, 2 for q2_0; 2..8 for int_*
  bool narrow_range = false;  // int_* only
  Rounding rounding = Rounding::kHalfAwayFromZero;
  ScaleType scale_type = ScaleType::kF16;
  ScaleRule scale_rule = ScaleRule::kAbsmax;
  // Observer (scale_rule == calibrated) and its parameters.
  ObserverKind observer = ObserverKind::kMinMax;
  double ema_decay = 0.95;     // ema: range = decay*range + (1-decay)*batch_max
  double percentile = 99.99;   // percentile: in (0, 100]
  // MSE scale search (scale_rule mse / learned init, observer mse).
  int mse_grid = 64;           // candidate ratios, >= 2
  double mse_min_ratio = 0.3;  // smallest clip ratio tried, in (0, 1)

  bool enabled() const { return scheme != QuantScheme::kNone; }
  // Block schemes stored as ggml blocks (q4_0, q8_0, q2_0, q8_0_act).
  bool is_block() const;
  int block_size() const;           // 32/64 for block schemes, 0 otherwise
  GgmlType ggml_type() const;       // block schemes only (q8_0_act -> Q8_0)
  // Code range: x^ = q * s with q in [-Qn, Qp].
  int Qn() const;
  int Qp() const;
  // True when the scale is a stored tensor (<module>.weight_scale /
  // input_scale / k_scale): learned or searched or calibrated.
  bool has_stored_scale() const;
};

// Parses one slot's spec ({"scheme": "q4_0", ...}). Unknown keys and values
// are kInvalidArgument naming `where` (e.g. "recipe.json: rules[2].weight")
// with a "did you mean" hint. Defaults per scheme are filled in, then the
// combination is validated for the slot.
absl::StatusOr<QuantSpec> ParseQuantSpec(const nlohmann::json& j, QuantSlot slot,
                                         absl::string_view where);
// Canonical JSON (every field that matters for the scheme; parses back equal).
nlohmann::json QuantSpecToJson(const QuantSpec& spec);
// Checks bits/rule/rounding/observer combinations for the slot.
absl::Status ValidateQuantSpec(const QuantSpec& spec, QuantSlot slot, absl::string_view where);
// Short human form: "q4_0", "int4 per-channel mse f16", ...
std::string DescribeQuantSpec(const QuantSpec& spec);

const char* SchemeName(QuantScheme s);
const char* RoundingName(Rounding r);
const char* ScaleTypeName(ScaleType t);
const char* ScaleRuleName(ScaleRule r);
const char* ObserverName(ObserverKind o);
const char* SlotName(QuantSlot s);

// "did you mean" helper: the candidate closest in edit distance, or "" when
// nothing is close (distance > max(2, len/3)).
std::string ClosestName(absl::string_view word, const std::vector<std::string>& candidates);

}  // namespace qatk

// The reference codecs of these specs (the intN codec above, QuantizeMatrix)
// are declared in codecs.h, which needs QuantSpec complete: it is included
// last so that every user of spec.h sees them.
#include "formats/quant/codecs.h"  // IWYU pragma: export

#endif  // QATK_FORMATS_QUANT_SPEC_H_
