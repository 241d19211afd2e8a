#include "qat/train/loss.h"

#include "qat/data/token_stream.h"

namespace qatk::qat {

absl::StatusOr<torch::Tensor> TrainingLoss(const torch::Tensor& logits, const torch::Tensor& targets,
                                           const torch::Tensor& teacher_logits, double alpha, double temp) {
  const int64_t rows = logits.size(0);
  const torch::Tensor keep = targets != data::kIgnoreTarget;
  const int64_t kept = keep.sum().item<int64_t>();
  if (kept == 0) return absl::FailedPreconditionError("every target of the batch is masked");
  torch::Tensor loss = alpha < 1.0 ? torch::cross_entropy_loss(logits, targets, {}, at::Reduction::Mean,
                                                                       data::kIgnoreTarget) *
                                             (1.0 - alpha)
                                   : torch::zeros({}, logits.options());
  if (alpha > 0) {
    const double T = temp;
    torch::Tensor kl;
    if (kept == rows) {
      kl = torch::kl_div(torch::log_softmax(logits / T, -1), torch::log_softmax(teacher_logits / T, -1),
                         at::Reduction::Sum, /*log_target=*/true) /
           static_cast<double>(rows);
    } else {
      torch::Tensor per_row = torch::kl_div(torch::log_softmax(logits / T, -1),
                                            torch::log_softmax(teacher_logits / T, -1), at::Reduction::None,
                                            /*log_target=*/true)
                                  .sum(-1);
      kl = (per_row * keep.to(per_row.dtype())).sum() / static_cast<double>(kept);
    }
    loss = loss + kl * (alpha * T * T);
  }
  return loss;
}

}  // namespace qatk::qat
