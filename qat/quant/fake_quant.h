// Fake-quant ops in LibTorch: quantize-then-dequantize with the numerics of
// the reference codecs (formats/quant/codecs.h, formats/quant/spec.h), plus
// the gradients used for QAT. Pure tensor ops: they run on CPU and CUDA
// tensors. Forward outputs equal dequantize(quantize(x)) of the reference
// codec bit for bit (tests/qat/quant/fake_quant_test.cc).
//
// Dimension letters: R rows (output channels / tokens), C columns (the
// quantized axis: input features, head_dim), B blocks per row (C / block).
//
// Gradients (docs/QUANTIZATION.md has the derivations):
//   block formats, absmax, per-token, q8_0_act:  dL/dx = dL/dy (pure STE; the
//       scale is a function of x that is treated as a constant)
//   fixed scale (calibrated / searched):  dL/dx = dL/dy * 1[-Qn <= x/s <= Qp]
//   LSQ (learned scale s):  dL/dx as above;
//       dL/ds = g * sum dL/dy * { q - x/s inside, -Qn below, Qp above }
//       with g = 1/sqrt(N * Qp) (N: numel for weights, features for
//       activations), summed over the elements that share s.
#ifndef QATK_QAT_QUANT_FAKE_QUANT_H_
#define QATK_QAT_QUANT_FAKE_QUANT_H_

#include <torch/torch.h>

#include "formats/quant/spec.h"

namespace qatk::qat {

// On CPU float tensors the forwards run the reference codec itself in one
// fused pass (at::parallel_for); elsewhere (CUDA) they are composed of ATen
// ops with identical results. Tests switch the CPU kernels off to check the
// ATen composition on CPU. Default: on.
void SetFakeQuantCpuKernels(bool enabled);

// ---- Block formats (x [..., C], C % block == 0; output same shape) --------
// Exactly ggml's Q4_0 / Q8_0 / Q2_0 reference quantizer followed by its
// dequantizer, including the fp16 rounding of d. STE backward.
torch::Tensor FakeQuantQ4_0(const torch::Tensor& x);
torch::Tensor FakeQuantQ8_0(const torch::Tensor& x);
torch::Tensor FakeQuantQ2_0(const torch::Tensor& x);
// Forward-only versions (no autograd node): the raw math.
torch::Tensor Q4_0Dequantized(const torch::Tensor& x);
torch::Tensor Q8_0Dequantized(const torch::Tensor& x);
torch::Tensor Q2_0Dequantized(const torch::Tensor& x);
// q8_0_act: llama.cpp's x86 activation quantizer (QuantizeBlockQ8_0Act:
// id = 127/amax, round half to even) followed by the Q8_0 dequantizer.
torch::Tensor FakeQuantQ8_0Act(const torch::Tensor& x);
torch::Tensor Q8_0ActDequantized(const torch::Tensor& x);
// Q4_0 codes 0..15 (uint8 [..., C]) and the fp32 d before fp16 rounding
// ([..., C/32]): the exporter's bit-exact checks.
std::pair<torch::Tensor, torch::Tensor> Q4_0CodesTensor(const torch::Tensor& x);

// q4_0 with learned block scales (scale_rule "learned"): d [..., C/32] holds
// one fp32 scale per block, any sign. Forward: exactly the reference codec
// QuantizeBlockQ4_0WithScale followed by DequantizeBlockQ4_0, i.e.
// q = clamp(trunc(x*id + 8.5), 0, 15) (0 where not finite), y = (q-8)*fp16(d).
// Gradients (LSQ with Qn = 8, Qp = 7, v = x*id):
//   dL/dx = dL/dy where -8 <= v <= 7, else 0
//   dL/dd = g * sum over the block of dL/dy * {q-8 - v inside, q-8 outside}
// With d from Q4_0CodesTensor the forward equals FakeQuantQ4_0's.
torch::Tensor FakeQuantQ4_0Lsq(const torch::Tensor& x, const torch::Tensor& d, double grad_factor);
// q4_0 with fixed codes and learned block scales: y = c * fp16(d) for
// c = code - 8 ([R, C] f32, from Q4_0CodesWithScale) and d [R, C/32];
// dL/dd = sum over the block of dL/dy * c (exact, apart from the fp16
// rounding, which passes the gradient straight through).
torch::Tensor FakeQuantQ4_0FixedCodes(const torch::Tensor& c, const torch::Tensor& d);
// The forward alone (no autograd node).
torch::Tensor Q4_0DequantizedWithScale(const torch::Tensor& x, const torch::Tensor& d);
// The code step of that forward on any shape: codes 0..15 (f32) of
// x * id with id = d ? 1/d : 0 broadcast against x (GPTQ codes one column
// of rows at a time with it).
torch::Tensor Q4_0CodesWithScale(const torch::Tensor& x, const torch::Tensor& d);

// ---- intN helpers ----------------------------------------------------------
// Rounding per spec (half_away_from_zero exactly like roundf, or half_even).
torch::Tensor RoundPerSpec(const torch::Tensor& v, const QuantSpec& spec);
// Store(s) elementwise (fp16 storage: RNE, clamped to 65504). No gradient
// rewrite: use StoreScaleSte for learned scales.
torch::Tensor StoreScaleTensor(const torch::Tensor& s, const QuantSpec& spec);
// Store(s) in the forward, identity in the backward.
torch::Tensor StoreScaleSte(const torch::Tensor& s, const QuantSpec& spec);
// absmax scales along the last dim: x [..., C] -> [..., 1], Store()d.
torch::Tensor AbsmaxScales(const torch::Tensor& x, const QuantSpec& spec);
// mse-searched per-row scales of w [R, C] -> [R, 1] via the reference codec
// (computed on CPU, returned on w's device). No gradient.
torch::Tensor MseScales(const torch::Tensor& w, const QuantSpec& spec);
// LSQ initial step size 2*mean|x|/sqrt(Qp) ([1]), Store()d.
torch::Tensor LsqInitScale(const torch::Tensor& x, const QuantSpec& spec);

// q * s with q = clamp(Round(x * inv), -Qn, Qp), inv = s != 0 ? 1/s : 0;
// s broadcasts against x and must already be Store()d. Forward only.
torch::Tensor IntDequantized(const torch::Tensor& x, const torch::Tensor& s, const QuantSpec& spec);
// Integer codes of the same (int8), for convert/export checks.
torch::Tensor IntCodes(const torch::Tensor& x, const torch::Tensor& s, const QuantSpec& spec);

// Fixed scale (no gradient to s): STE with clip mask.
torch::Tensor FakeQuantFixedScale(const torch::Tensor& x, const torch::Tensor& s, const QuantSpec& spec);
// Scale computed from x but treated as constant: pure STE (absmax rules).
torch::Tensor FakeQuantSte(const torch::Tensor& x, const torch::Tensor& s, const QuantSpec& spec);
// LSQ: s is a leaf that requires grad (pass StoreScaleSte(s) to follow the
// storage rounding). grad_factor = g.
torch::Tensor FakeQuantLsq(const torch::Tensor& x, const torch::Tensor& s, const QuantSpec& spec,
                           double grad_factor);

// ---- Spec dispatch ---------------------------------------------------------
// Dynamic activations: int_token (per-token absmax along the last dim) and
// q8_0_act (Q8_0 blocks along the last dim). STE.
torch::Tensor FakeQuantDynamic(const torch::Tensor& x, const QuantSpec& spec);
// Weight [R, C] of a block scheme or int_channel with absmax rule (scales
// computed on the fly). Other int_channel rules use a stored scale: call
// FakeQuantFixedScale / FakeQuantLsq.
torch::Tensor FakeQuantWeightNoState(const torch::Tensor& w, const QuantSpec& spec);

}  // namespace qatk::qat

#endif  // QATK_QAT_QUANT_FAKE_QUANT_H_
