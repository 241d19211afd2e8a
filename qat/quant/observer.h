// Range observers for static activation scales (calibrate mode). Each
// Update() sees one batch; Range() is the clip value r, and the calibrated
// scale is Store(r / Qp).
//   minmax:      r = max over batches of max|x|
//   ema:         r_1 = max|x_1|; r_t = d*r_{t-1} + (1-d)*max|x_t|   (d = ema_decay)
//   percentile:  r = mean over batches of the p-th percentile of |x_t|
//   mse:         r = mean over batches of the clip that minimises
//                sum (x - fq(x; Store(r/Qp)))^2 (grid as the mse scale rule)
// Percentile and mse subsample batches above 1M elements with a fixed stride.
#ifndef QATK_QAT_QUANT_OBSERVER_H_
#define QATK_QAT_QUANT_OBSERVER_H_

#include <torch/torch.h>

#include <cstdint>

#include "formats/quant/spec.h"

namespace qatk::qat {

class Observer {
 public:
  Observer() = default;
  explicit Observer(const QuantSpec& spec) : spec_(spec) {}
  void Update(const torch::Tensor& x);  // any shape
  double Range() const { return range_; }
  int64_t batches() const { return batches_; }
  // Store(Range() / Qp); 0 before the first batch.
  float Scale() const;
  void Reset() { range_ = 0; batches_ = 0; }

 private:
  QuantSpec spec_;
  double range_ = 0;
  int64_t batches_ = 0;
};

// The p-th percentile (0 < p <= 100) of |x| (linear interpolation between
// order statistics, like numpy's default).
double AbsPercentile(const torch::Tensor& x, double p);
// The clip r minimising the fake-quant squared error of x under spec's grid.
double MseOptimalRange(const torch::Tensor& x, const QuantSpec& spec);

}  // namespace qatk::qat

#endif  // QATK_QAT_QUANT_OBSERVER_H_
