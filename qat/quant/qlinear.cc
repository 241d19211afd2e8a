#include "qat/quant/qlinear.h"

#include <cmath>

#include "formats/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace qatk::qat {

QLinearImpl::QLinearImpl(int64_t in, int64_t out, bool with_bias) : in_features(in), out_features(out) {
  // torch.nn.Linear's default init: U(-1/sqrt(in), 1/sqrt(in)).
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  weight = register_parameter("weight", torch::empty({out, in}).uniform_(-bound, bound));
  if (with_bias) bias = register_parameter("bias", torch::empty({out}).uniform_(-bound, bound));
}

torch::Tensor QLinearImpl::forward(const torch::Tensor& x) { return ForwardQuantized(QuantizeInput(x)); }

torch::Tensor QLinearImpl::QuantizeInput(const torch::Tensor& x) {
  return quant_.input.enabled() ? aq_(x) : x;
}

torch::Tensor QLinearImpl::ForwardQuantized(const torch::Tensor& xq) {
  if (capture_ != nullptr) {
    torch::NoGradGuard no_grad;
    const torch::Tensor x = xq.detach().reshape({-1, in_features}).to(torch::kDouble);  // [N, in]
    if (!capture_->gram.defined()) capture_->gram = torch::zeros({in_features, in_features}, x.options());
    capture_->gram.addmm_(x.t(), x);
    capture_->rows += x.size(0);
  }
  return torch::linear(xq, QuantizedWeight(), bias);
}

bool QLinearImpl::SharesInputQuantizer(QLinearImpl& other) {
  const QuantSpec& a = quant_.input;
  const QuantSpec& b = other.quant_.input;
  if (!a.enabled() || !b.enabled()) return !a.enabled() && !b.enabled();
  return a.scheme != QuantScheme::kIntTensor && aq_.mode == other.aq_.mode && QuantSpecToJson(a) == QuantSpecToJson(b);
}

torch::Tensor QLinearImpl::QuantizedWeight() {
  return quant_.weight.enabled() ? wq_(weight) : weight;
}

void QLinearImpl::Configure(const LayerQuant& lq) {
  QATK_CHECK(!lq.weight.is_block() || in_features % lq.weight.block_size() == 0,
             "in_features is not a multiple of the weight block size (Recipe::Validate first)");
  quant_ = lq;
  quant_.cache = QuantSpec();
  if (lq.weight.enabled()) wq_.Configure(lq.weight, *this, weight);
  if (lq.input.enabled()) aq_.Configure(lq.input, *this, "input_scale");
}

void QLinearImpl::SetMode(QuantMode mode) {
  wq_.mode = mode;
  aq_.mode = mode;
}

void QLinearImpl::Freeze() {
  wq_.Freeze();
  aq_.Freeze();
}

QEmbeddingImpl::QEmbeddingImpl(int64_t num, int64_t d) : num_embeddings(num), dim(d) {
  weight = register_parameter("weight", torch::randn({num, d}));  // torch.nn.Embedding's N(0, 1)
}

torch::Tensor QEmbeddingImpl::forward(const torch::Tensor& ids) {
  if (!quant_.weight.enabled() || wq_.mode != QuantMode::kQuant) return torch::embedding(weight, ids);
  const torch::Tensor flat = ids.reshape({-1});                 // [N]
  const torch::Tensor rows = weight.index_select(0, flat);      // [N, E]
  std::vector<int64_t> shape(ids.sizes().begin(), ids.sizes().end());
  shape.push_back(dim);
  return wq_(rows, flat).reshape(shape);                        // [..., E]
}

torch::Tensor QEmbeddingImpl::QuantizedWeight() {
  return quant_.weight.enabled() ? wq_(weight) : weight;
}

void QEmbeddingImpl::Configure(const LayerQuant& lq) {
  QATK_CHECK(!lq.weight.is_block() || dim % lq.weight.block_size() == 0,
             "embedding dim is not a multiple of the weight block size (Recipe::Validate first)");
  quant_ = LayerQuant();
  quant_.weight = lq.weight;
  quant_.weight_rule = lq.weight_rule;
  if (lq.weight.enabled()) wq_.Configure(lq.weight, *this, weight);
}

void QEmbeddingImpl::SetMode(QuantMode mode) { wq_.mode = mode; }
void QEmbeddingImpl::Freeze() { wq_.Freeze(); }

torch::Tensor KvQuantImpl::forward(const torch::Tensor& x) { return aq_.spec().enabled() ? aq_(x) : x; }

void KvQuantImpl::Configure(const QuantSpec& spec, torch::nn::Module& parent, const std::string& state_name) {
  if (spec.enabled()) aq_.Configure(spec, parent, state_name);
}

void KvQuantImpl::SetMode(QuantMode mode) { aq_.mode = mode; }
void KvQuantImpl::Freeze() { aq_.Freeze(); }

}  // namespace qatk::qat
