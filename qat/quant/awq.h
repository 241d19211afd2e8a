// Activation-aware scaling for Q4_0 (after Lin et al. 2023, "AWQ:
// Activation-aware Weight Quantization for LLM Compression and
// Acceleration"), used by `qat quantize --method gptq --awq` in front of
// GPTQ, and by `qat compare --awq` for its GPTQ start of QAT.
//
// A linear W [R, C] reads x [C]; for any s [C] > 0, W x = (W diag(s))
// (diag(s)^-1 x). The input scaling diag(s)^-1 is folded, exactly in float,
// into what produces x, so the FP model computes the same function, but Q4_0
// now rounds W diag(s): columns with large inputs can be given more of their
// block's 16 levels. Groups of linears that read one tensor, per layer:
//   q/k/v_proj     x = input_layernorm(h)       fold: the norm's weight / s
//   gate/up_proj   x = the MLP's input norm     fold: the norm's weight / s
//                  (post_attention_layernorm; pre_feedforward_layernorm
//                  for Gemma, whose norms scale by 1 + weight)
//   down_proj      x = act(gate) * up           fold: up_proj's row j / s_j
// o_proj is left alone: with grouped-query attention, query heads that share
// a value head would have to share its scales.
//
// The search, per group, over alpha in {0, 1/grid, ..., 1}:
//   a_j = sqrt(H_jj) (the RMS of input j; H = 2/N X^T X, GPTQ's Hessian),
//   s = a^alpha / sqrt(max(a^alpha) * min(a^alpha)),
//   error(alpha) = sum over the group's linears of tr(E H E^T),
//   E = W - diag-scaled back RTN: W - Q4_0(W diag(s)) diag(s)^-1,
// with Q4_0 the reference codec (round to nearest, the max rule). alpha = 0
// is s = 1 (plain round to nearest), so the chosen error is never larger.
// The chosen s is applied to the model and to the group's Hessians
// (H <- diag(s)^-1 H diag(s)^-1, the Hessian of the scaled input), which GPTQ
// then rounds with.
#ifndef QATK_QAT_QUANT_AWQ_H_
#define QATK_QAT_QUANT_AWQ_H_

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "qat/model/transformer.h"

namespace qatk::qat {

struct AwqOptions {
  int grid = 20;         // alpha steps in [0, 1]
  bool verbose = true;   // one line per group on stderr
};

struct AwqGroup {
  std::string name;      // e.g. "model.layers.0.mlp.down_proj"
  double alpha = 0;      // the chosen exponent (0: left as it was)
  double error = 0;      // sum of tr(E H E^T) at alpha ...
  double rtn_error = 0;  // ... and at alpha = 0
};

// The input scaling of `x` [C] for an exponent: a^alpha normalised by
// sqrt(max * min), with a = sqrt(diag H) clamped to 1e-6 * its max.
torch::Tensor AwqScales(const torch::Tensor& h, double alpha);

// Searches and applies the scaling of every group whose linears are all q4_0
// and all have an entry in `hessians` (CollectInputHessians of the FP
// model); other groups are skipped. kInvalidArgument for a Hessian of the
// wrong shape or one that is not finite.
absl::StatusOr<std::vector<AwqGroup>> ApplyAwq(CausalLM& model, std::map<std::string, torch::Tensor>& hessians,
                                               const AwqOptions& options = {});

}  // namespace qatk::qat

#endif  // QATK_QAT_QUANT_AWQ_H_
