#include "qat/quant/quantizer.h"

#include <cmath>

#include "formats/util/status_macros.h"
#include "qat/quant/fake_quant.h"

namespace qatk::qat {
namespace {

// Registers `value` on `owner` as a parameter (learned) or buffer under
// `name`; when the name exists already (re-configuration) the existing tensor
// is overwritten in place and returned, so references stay valid.
torch::Tensor RegisterState(torch::nn::Module& owner, const std::string& name, const torch::Tensor& value,
                            bool learned) {
  torch::NoGradGuard no_grad;
  auto params = owner.named_parameters(/*recurse=*/false);
  auto buffers = owner.named_buffers(/*recurse=*/false);
  if (torch::Tensor* p = params.find(name)) {
    QATK_CHECK(learned, "quantizer state registered as a parameter is now a buffer");
    p->set_data(value.to(p->device()));
    return *p;
  }
  if (torch::Tensor* b = buffers.find(name)) {
    QATK_CHECK(!learned, "quantizer state registered as a buffer is now learned");
    b->set_data(value.to(b->device()));
    return *b;
  }
  if (learned) return owner.register_parameter(name, value.clone(), /*requires_grad=*/true);
  return owner.register_buffer(name, value.clone());
}

bool IsStaticTensor(const QuantSpec& s) { return s.scheme == QuantScheme::kIntTensor; }

}  // namespace

void WeightQuantizer::Configure(const QuantSpec& spec, torch::nn::Module& owner, const torch::Tensor& w) {
  spec_ = spec;
  if (spec.scheme == QuantScheme::kQ4_0 && spec.scale_rule == ScaleRule::kLearned) {
    // One d per block, initialised to the reference rule's fp32 d, so the
    // first forward (and a PTQ export) is llama.cpp's Q4_0 exactly.
    QATK_CHECK(w.dim() == 2, "weight quantizer expects a [R, C] weight");
    scale_ = RegisterState(owner, "weight_scale", Q4_0CodesTensor(w.detach()).second.contiguous(), true);
    return;
  }
  if (spec.scheme != QuantScheme::kIntChannel) return;
  QATK_CHECK(w.dim() == 2, "weight quantizer expects a [R, C] weight");
  if (spec.scale_rule == ScaleRule::kMse || spec.scale_rule == ScaleRule::kLearned) {
    scale_ = RegisterState(owner, "weight_scale", MseScales(w, spec), spec.scale_rule == ScaleRule::kLearned);
  }
}

torch::Tensor WeightQuantizer::operator()(const torch::Tensor& w, const torch::Tensor& rows) const {
  if (mode != QuantMode::kQuant || !spec_.enabled()) return w;
  if (!scale_.defined()) return FakeQuantWeightNoState(w, spec_);
  const torch::Tensor s = rows.defined() ? scale_.index_select(0, rows) : scale_;  // [R, 1] or [R, C/32]
  if (codes_.defined()) return FakeQuantQ4_0FixedCodes(rows.defined() ? codes_.index_select(0, rows) : codes_, s);
  if (spec_.scheme == QuantScheme::kQ4_0) {
    // LSQ with N = the weights of the tensor, like the per-channel rule.
    const double n = static_cast<double>(scale_.size(0)) * static_cast<double>(w.size(-1));
    return FakeQuantQ4_0Lsq(w, s, 1.0 / std::sqrt(n * spec_.Qp()));
  }
  if (spec_.scale_rule == ScaleRule::kMse) return FakeQuantFixedScale(w, StoreScaleTensor(s, spec_), spec_);
  // LSQ: N = weights sharing the quantizer (the whole tensor).
  const double n = static_cast<double>(scale_.size(0)) * static_cast<double>(w.size(-1));
  const double g = 1.0 / std::sqrt(n * spec_.Qp());
  return FakeQuantLsq(w, StoreScaleSte(s, spec_), spec_, g);
}

void WeightQuantizer::FreezeCodes(const torch::Tensor& w) {
  QATK_CHECK(spec_.scheme == QuantScheme::kQ4_0 && scale_.defined(), "FreezeCodes needs q4_0 with learned scales");
  const torch::Tensor d = scale_.detach();
  const torch::Tensor x = w.detach().reshape({d.size(0), d.size(1), 32});
  codes_ = (Q4_0CodesWithScale(x, d.unsqueeze(-1)) - 8.0).reshape(w.sizes()).contiguous();
}

torch::Tensor WeightQuantizer::FrozenDequantized() const {
  torch::NoGradGuard no_grad;
  return FakeQuantQ4_0FixedCodes(codes_, scale_.detach());
}

void WeightQuantizer::RefreshScale(const torch::Tensor& w) {
  if (spec_.scale_rule != ScaleRule::kMse || !scale_.defined()) return;
  torch::NoGradGuard no_grad;
  scale_.copy_(MseScales(w, spec_));
}

void WeightQuantizer::Freeze() {
  if (scale_.defined() && scale_.requires_grad()) scale_.set_requires_grad(false);
}

void ActQuantizer::Configure(const QuantSpec& spec, torch::nn::Module& owner, const std::string& state_name) {
  spec_ = spec;
  observer_ = Observer(spec);
  frozen_ = false;
  initialized_ = false;
  if (IsStaticTensor(spec)) {
    scale_ = RegisterState(owner, state_name, torch::zeros({1}), spec.scale_rule == ScaleRule::kLearned);
  }
}

void ActQuantizer::Observe(const torch::Tensor& x) {
  if (frozen_) return;
  observer_.Update(x);
  torch::NoGradGuard no_grad;
  scale_.fill_(observer_.Scale());
}

torch::Tensor ActQuantizer::operator()(const torch::Tensor& x) {
  if (!spec_.enabled() || mode == QuantMode::kOff) return x;
  if (!IsStaticTensor(spec_)) return mode == QuantMode::kQuant ? FakeQuantDynamic(x, spec_) : x;
  if (mode == QuantMode::kCalibrate) {
    Observe(x);
    return x;
  }
  // An uncalibrated static scale (0) is initialised from this batch once
  // (the flag avoids a device sync per step).
  if (!initialized_) {
    if (scale_.item<float>() == 0.0f) Observe(x);
    initialized_ = true;
  }
  if (spec_.scale_rule == ScaleRule::kLearned) {
    const double g = 1.0 / std::sqrt(static_cast<double>(x.size(-1)) * spec_.Qp());
    return FakeQuantLsq(x, StoreScaleSte(scale_, spec_), spec_, g);
  }
  return FakeQuantFixedScale(x, StoreScaleTensor(scale_, spec_), spec_);
}

void ActQuantizer::Freeze() {
  frozen_ = true;
  if (scale_.defined() && scale_.requires_grad()) scale_.set_requires_grad(false);
}

}  // namespace qatk::qat
