// Quantizer state machines used by QLinear, QEmbedding and KvQuant: a spec,
// its scale tensor (registered on the owning module under the state-dict name
// of docs/ARCHITECTURE.md) and, for calibrated activations, an observer.
//
// Modes (QuantMode):
//   kQuant      fake quant on (training / eval against shipped numerics);
//               learned scales train, calibrated / searched scales are fixed
//   kCalibrate  observers see every input and rewrite the static scale; the
//               output is NOT quantized
//   kOff        plain float (weights untouched); used by fp baselines
// Freeze(): learned scales stop training (requires_grad false) and
// observers stop; the module stays in kQuant.
#ifndef QATK_QAT_QUANT_QUANTIZER_H_
#define QATK_QAT_QUANT_QUANTIZER_H_

#include <torch/torch.h>

#include <string>

#include "formats/quant/spec.h"
#include "qat/quant/observer.h"

namespace qatk::qat {

enum class QuantMode { kQuant, kCalibrate, kOff };

// Weight quantizer: x^ = fake_quant(w) per spec. Registers `weight_scale`
// on the owner: [R, 1] F32 for int_channel with mse (buffer) or learned
// (parameter) rules, [R, C/32] F32 (one d per block, a parameter) for q4_0
// with learned scales; other schemes keep no state.
class WeightQuantizer {
 public:
  // w [R, C] is the owner's weight, used to initialise stored scales.
  void Configure(const QuantSpec& spec, torch::nn::Module& owner, const torch::Tensor& w);
  // w [R, C] -> w^ [R, C]. `rows` (optional, int64 [N]) selects rows of the
  // stored scale when w holds only those rows (embedding lookups).
  torch::Tensor operator()(const torch::Tensor& w, const torch::Tensor& rows = {}) const;
  // Re-runs the mse search (mse rule) from the current weight.
  void RefreshScale(const torch::Tensor& w);
  void Freeze();
  // q4_0 with learned scales only: fixes the codes of w under the current
  // scales. From then on w^ = (code - 8) * fp16(d) whatever w holds, the
  // gradient goes to d alone (FakeQuantQ4_0FixedCodes), and w should be
  // set to FrozenDequantized() before it is saved, so that the saved weight
  // and scales give the same codes again.
  void FreezeCodes(const torch::Tensor& w);
  bool codes_frozen() const { return codes_.defined(); }
  torch::Tensor FrozenDequantized() const;
  const QuantSpec& spec() const { return spec_; }
  const torch::Tensor& scale() const { return scale_; }  // undefined if no state
  QuantMode mode = QuantMode::kQuant;

 private:
  QuantSpec spec_;
  torch::Tensor scale_;  // [R, 1] or [R, C/32]
  torch::Tensor codes_;  // [R, C] f32 code - 8 once FreezeCodes ran
};

// Activation quantizer (linear inputs, KV cache): static per-tensor
// (calibrated or learned), dynamic per-token, or q8_0 blocks. Static scales
// live in a [1] F32 tensor registered on `owner` as `state_name`
// (input_scale / k_scale / v_scale); 0 means "not calibrated yet": the first
// kQuant forward then initialises it from that batch (observer for
// calibrated, 2*mean|x|/sqrt(Qp) for learned).
class ActQuantizer {
 public:
  void Configure(const QuantSpec& spec, torch::nn::Module& owner, const std::string& state_name);
  // x [..., C] -> same shape.
  torch::Tensor operator()(const torch::Tensor& x);
  void Freeze();
  const QuantSpec& spec() const { return spec_; }
  const torch::Tensor& scale() const { return scale_; }
  QuantMode mode = QuantMode::kQuant;

 private:
  void Observe(const torch::Tensor& x);
  QuantSpec spec_;
  torch::Tensor scale_;  // [1]
  Observer observer_;
  bool frozen_ = false;
  bool initialized_ = false;  // scale checked for 0 once in kQuant
};

}  // namespace qatk::qat

#endif  // QATK_QAT_QUANT_QUANTIZER_H_
