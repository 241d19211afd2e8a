// Block reconstruction: QAT's starting point after GPTQ (`qat quantize
// --method gptq --recon-steps N`, `qat compare --recon-steps N`). Each decoder
// layer of the quantized student, in turn, trains to reproduce the output of
// the same layer of the FP teacher (BRECQ, Li et al. 2021; EfficientQAT's
// Block-AP, Chen et al. 2024), with the straight-through estimator.
//
// Dimension letters: B batch, T time (seq), E hidden, L decoder layers.
//
// For layer l = 0..L-1, on `batches` [B, T] windows of the calibration text:
//   x_l   the student's input: the student's (quantized) embedding for l = 0,
//         then the output of the student's layers 0..l-1 after their own
//         reconstruction, so each layer also learns to undo the error that
//         reaches it;
//   y_l   the teacher's layer-l output on the teacher's own input;
//   loss  mean((student_l(x_l) - y_l)^2) over [B, T, E], one window batch per
//         step, the batches cycled in order;
//   Adam on the layer's parameters (latent weights and norms at `lr`, learned
//   q4_0 block scales `weight_scale` at `scale_lr`; static activation and KV
//   scales stay as they are), the LR on a cosine from its peak to 0 over
//   `steps`, which averts ending on an oscillating step.
// The embeddings, the final norm and the head are not touched: QAT trains
// them end to end next. Memory: two [batches, B, T, E] f32 activation sets
// (BlockReconActivationBytes).
#ifndef QATK_QAT_TRAIN_BLOCK_RECON_H_
#define QATK_QAT_TRAIN_BLOCK_RECON_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "qat/model/transformer.h"

namespace qatk::qat {

struct BlockReconOptions {
  int64_t steps = 600;     // Adam steps per decoder layer
  int64_t batches = 40;    // calibration window batches, cycled
  int64_t batch = 8;       // windows per batch
  int64_t seq = 256;       // tokens per window
  double lr = 1e-4;        // latent weights and norms
  double scale_lr = 1e-5;  // learned q4_0 block scales
  uint64_t seed = 1234;    // window sampling
  bool verbose = true;     // one line per layer on stderr
  bool progress = false;   // and a progress bar within each layer
};

struct BlockReconLayer {
  double mse_before = 0, mse_after = 0;  // the loss over all batches, before and after
};

// The activations BlockReconstruct keeps: the student's and the teacher's
// layer inputs, batches x batch x seq x hidden f32 each.
int64_t BlockReconActivationBytes(const BlockReconOptions& options, int64_t hidden_size);

// Reconstructs every decoder layer of `student` (a recipe applied, in any
// mode: it is left in QuantMode::kQuant) against `teacher` (FP, unchanged) on
// windows of `tokens`. kInvalidArgument when the two configs differ in shape
// or the text is shorter than one window; kInternal naming the layer and step
// where the loss stops being finite.
absl::StatusOr<std::vector<BlockReconLayer>> BlockReconstruct(CausalLM& student, CausalLM& teacher,
                                                              const std::vector<int32_t>& tokens, int32_t bos_id,
                                                              const BlockReconOptions& options);

}  // namespace qatk::qat

#endif  // QATK_QAT_TRAIN_BLOCK_RECON_H_
