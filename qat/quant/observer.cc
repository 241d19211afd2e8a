#include "qat/quant/observer.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "formats/util/status_macros.h"
#include "qat/quant/fake_quant.h"

namespace qatk::qat {
namespace {

constexpr int64_t kMaxSamples = 1 << 20;

// |x| flattened, strided down to at most kMaxSamples elements.
torch::Tensor AbsSamples(const torch::Tensor& x) {
  torch::Tensor a = x.detach().to(torch::kFloat).reshape({-1}).abs();
  if (a.numel() > kMaxSamples) {
    const int64_t stride = (a.numel() + kMaxSamples - 1) / kMaxSamples;
    a = a.slice(0, 0, a.numel(), stride);
  }
  return a;
}

}  // namespace

double AbsPercentile(const torch::Tensor& x, double p) {
  torch::NoGradGuard no_grad;
  const torch::Tensor a = std::get<0>(AbsSamples(x).sort());
  const int64_t n = a.numel();
  if (n == 0) return 0.0;
  const double rank = p / 100.0 * static_cast<double>(n - 1);
  const int64_t lo = static_cast<int64_t>(std::floor(rank));
  const int64_t hi = std::min(lo + 1, n - 1);
  const double vlo = a[lo].item<double>();
  const double vhi = a[hi].item<double>();
  return vlo + (rank - static_cast<double>(lo)) * (vhi - vlo);
}

double MseOptimalRange(const torch::Tensor& x, const QuantSpec& spec) {
  torch::NoGradGuard no_grad;
  const torch::Tensor a = AbsSamples(x);
  const double amax = a.numel() ? a.max().item<double>() : 0.0;
  if (amax == 0.0) return 0.0;
  double best_r = amax, best_err = std::numeric_limits<double>::infinity();
  const double step = (1.0 - spec.mse_min_ratio) / (spec.mse_grid - 1);
  for (int k = 0; k < spec.mse_grid; ++k) {
    const double r = amax * (1.0 - k * step);
    const float s = StoreScale(spec, static_cast<float>(r / spec.Qp()));
    const torch::Tensor st = torch::full({1}, s, a.options());
    // |x| suffices: the grid is symmetric except for the extra negative
    // level of full-range codes, which |x| never uses (a slight bias to
    // larger ranges, documented in docs/QUANTIZATION.md).
    const double err = (a - IntDequantized(a, st, spec)).square().sum().item<double>();
    if (err < best_err) {
      best_err = err;
      best_r = r;
    }
  }
  return best_r;
}

void Observer::Update(const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  double v = 0.0;
  switch (spec_.observer) {
    case ObserverKind::kMinMax:
      v = x.numel() ? x.detach().abs().max().item<double>() : 0.0;
      range_ = std::max(range_, v);
      break;
    case ObserverKind::kEma:
      v = x.numel() ? x.detach().abs().max().item<double>() : 0.0;
      range_ = batches_ == 0 ? v : spec_.ema_decay * range_ + (1.0 - spec_.ema_decay) * v;
      break;
    case ObserverKind::kPercentile:
      v = AbsPercentile(x, spec_.percentile);
      range_ = (range_ * batches_ + v) / (batches_ + 1);
      break;
    case ObserverKind::kMse:
      v = MseOptimalRange(x, spec_);
      range_ = (range_ * batches_ + v) / (batches_ + 1);
      break;
  }
  ++batches_;
}

float Observer::Scale() const {
  if (batches_ == 0) return 0.0f;
  return StoreScale(spec_, static_cast<float>(range_ / spec_.Qp()));
}

}  // namespace qatk::qat
