// The training loss of one micro-batch:
//   (1 - alpha) * CE + alpha * T^2 * KL(teacher_T || student_T)
// over the targets that are not data::kIgnoreTarget (masked or padding), each
// term averaged over those targets. Without ignored targets this is exactly
// the unmasked loss (mean CE, KL summed and divided by the row count).
#ifndef QATK_QAT_TRAIN_LOSS_H_
#define QATK_QAT_TRAIN_LOSS_H_

#include <torch/torch.h>

#include "absl/status/statusor.h"

namespace qatk::qat {

// logits, teacher_logits: [N, V]; targets: [N] int64. teacher_logits may be
// undefined when alpha == 0. A batch whose every target is ignored is
// kFailedPrecondition (its mean would be NaN).
absl::StatusOr<torch::Tensor> TrainingLoss(const torch::Tensor& logits, const torch::Tensor& targets,
                                           const torch::Tensor& teacher_logits, double alpha, double temp);

}  // namespace qatk::qat

#endif  // QATK_QAT_TRAIN_LOSS_H_
