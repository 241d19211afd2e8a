// GPTQ rounding for llama.cpp's Q4_0 (Frantar et al. 2022, "GPTQ: Accurate
// Post-Training Quantization for Generative Pre-trained Transformers"), used
// by `qat quantize --method gptq` and as QAT's starting point
// (`qat compare --qat-init gptq`).
//
// Dimension letters: R rows (output features), C columns (input features,
// the quantized axis), B = C / 32 Q4_0 blocks per row, N calibration rows.
//
// The algorithm, per weight W [R, C] with the layer-input Hessian
// H = 2/N X^T X [C, C] (X [N, C], the FP inputs of the layer):
//   1. dead columns (H_jj == 0: the input is always 0) get H_jj = 1 and
//      W[:, j] = 0; damping H += percdamp * mean(diag H) * I;
//   2. U = the upper Cholesky factor of H^-1;
//   3. columns are quantized left to right; the error of column j,
//      e = (w_j - q_j) / U_jj, is spread over the columns not yet quantized,
//      w_k -= e * U_jk. Updates are applied at once inside a lazy block of
//      `block_size` columns and to the rest of the matrix once per block;
//   4. Q4_0 block rule: when the sweep reaches the first column of a Q4_0
//      block (32 columns of one row), that row-block's d is computed from its
//      CURRENT (error-updated) values with the reference rule (d = m / -8, m
//      the signed element of largest |x|, first on ties; fp32), rounded to
//      fp16, and every column of the block is then coded with that d:
//      id = d ? 1/d : 0 (fp32), q = clamp(trunc(x*id + 8.5), 0, 15) (0 where
//      not finite), x^ = (q - 8) * d. That is exactly the learned-scale Q4_0
//      codec (Q4_0CodesWithScale) with weight_scale = d, so a checkpoint with
//      weight = x^ and weight_scale = d exports these codes and scales.
//   5. act order (GptqOptions::act_order): the columns are swept by
//      decreasing H_jj, so the inputs with the most energy are rounded first
//      while the most columns are left to absorb their error. A Q4_0 block's
//      d is taken, by the same rule, when the sweep reaches the first of its
//      32 columns, from the block's current values; the lazy update is off.
// Accumulation and the sweep run in fp64 (the codes in fp32, as the codec
// does), on the device of the weight: no host copies.
#ifndef QATK_QAT_QUANT_GPTQ_H_
#define QATK_QAT_QUANT_GPTQ_H_

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "formats/quant/recipe.h"

namespace qatk::qat {

struct GptqOptions {
  double percdamp = 0.01;    // damping, a fraction of mean(diag H)
  int64_t block_size = 128;  // lazy-update block (a multiple of 32)
  bool act_order = false;    // sweep the columns by decreasing H_jj (below)
  bool verbose = true;       // one progress line per layer on stderr
};

struct GptqResult {
  torch::Tensor dequantized;  // [R, C] f32, (q - 8) * d: the new latent weight
  torch::Tensor codes;        // [R, C] uint8 in 0..15
  torch::Tensor scales;       // [R, B] f32, each exactly an fp16 value
  int64_t dead_columns = 0;
  // tr((W - Q) H (W - Q)^T) with the undamped H, for GPTQ's Q and for the
  // reference round-to-nearest Q4_0 of W (the layer-output error it saves).
  double error = 0, rtn_error = 0;
};

// GPTQ of w [R, C] (C % 32 == 0) for Q4_0 with the Hessian h [C, C] (any
// float dtype, the device of w). kInvalidArgument for bad shapes, a
// non-finite Hessian or weight, or a Hessian that is not positive definite
// after damping.
absl::StatusOr<GptqResult> GptqQ4_0(const torch::Tensor& w, const torch::Tensor& h,
                                    const GptqOptions& options = {});

// Names of the QLinear modules of `model` whose weight quantizer is q4_0.
std::vector<std::string> GptqModuleNames(torch::nn::Module& model);

// Runs GptqQ4_0 on every module of GptqModuleNames with hessians[name] and
// writes the result into the module: weight = dequantized, weight_scale = d.
// The modules must have learned q4_0 scales (WithLearnedQ4_0Scales). kNotFound for a
// module without a Hessian; the error of GptqQ4_0 prefixed with the module
// name. `results` (optional) receives each module's result; `only`
// (optional) restricts the run to those modules (the sequential order: one
// module at a time, its Hessian taken after its predecessors were rounded).
absl::Status ApplyGptq(torch::nn::Module& model, const std::map<std::string, torch::Tensor>& hessians,
                       const GptqOptions& options, std::map<std::string, GptqResult>* results = nullptr,
                       const std::vector<std::string>* only = nullptr);

}  // namespace qatk::qat

#endif  // QATK_QAT_QUANT_GPTQ_H_
