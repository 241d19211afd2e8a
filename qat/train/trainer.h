// `qat train`: pretraining from a config, fine-tuning / QAT from a checkpoint
// with a recipe, optional distillation from a teacher checkpoint.
//
// Each step: grad_accum micro-batches of [batch, seq] windows (WindowSampler),
// loss = (1 - kd_alpha) * CE + kd_alpha * T^2 * KL(teacher_T || student_T)
// (kd_alpha = 0 without a teacher) over the targets whose loss mask is 1
// (qat/train/loss.h; text data trains on every token), AdamW with linear warmup then cosine decay
// to min_lr_ratio * lr, global-norm clipping. Quantizer scales (parameters
// named *_scale) get their own LR (scale_lr, default lr) and no weight decay;
// the output head's weight can get its own LR too (head_lr, default lr): a
// 2-bit head needs larger steps than the body to move weights across its
// few quantization levels.
// With ema > 0 an exponential moving average of the trainable parameters
// (started at the initial weights) is kept after every step; evaluations and
// model.safetensors hold the averaged weights, and the raw ones go to
// train_weights.pt for resuming.
// With freeze_codes every q4_0 weight keeps the codes it has at the start
// (under the reference rule's d, or the checkpoint's learned d): only its
// block scales train, with exact gradients instead of the STE, alongside
// every parameter that is not a q4_0 weight. A recipe with rule-derived q4_0
// scales is switched to learned ones first.
// Resume reloads weights, optimizer.pt and the sampler position from
// trainer_state.json, so the losses equal those of an uninterrupted run.
#ifndef QATK_QAT_TRAIN_TRAINER_H_
#define QATK_QAT_TRAIN_TRAINER_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace qatk::qat {

struct TrainOptions {
  std::string data;         // folder with train.txt / valid.txt, or a prepared
                            // dataset (dataset.json, train.qtd; `qat data --jsonl`)
  std::string out;          // checkpoint folder
  std::string config;       // model config (from scratch) ...
  std::string init;         // ... or an initial checkpoint
  std::string recipe;       // QAT recipe (optional)
  std::string teacher;      // distillation teacher checkpoint (optional)
  std::string tokenizer;    // default: <data>/tokenizer.model (trained if absent)
  int64_t steps = 1000;
  int64_t batch = 16;
  int64_t seq = 0;          // 0: min(256, context)
  int64_t grad_accum = 1;
  std::string pack = "stream";  // "stream": windows across documents (EOS between
                                // them); "doc": no window crosses a document
  double lr = 3e-3;
  double min_lr_ratio = 0.1;
  int64_t warmup = -1;      // -1: steps / 20
  double weight_decay = 0.1;
  double clip = 1.0;
  double scale_lr = 0;      // 0: lr
  double head_lr = 0;       // lm_head.weight's LR; 0: lr
  double kd_alpha = -1;     // -1: 1 with a teacher, else 0
  double kd_temp = 1.0;
  bool freeze_codes = false;  // q4_0 weights keep their current codes; their block
                              // scales (learned) and the other parameters train
  double ema = 0;           // > 0: keep an EMA of the weights with this decay;
                            // evaluations and the saved model use it
  uint64_t seed = 1234;
  int64_t save_every = 0;   // 0: only at the end
  int64_t eval_every = 0;   // 0: only at the end
  int64_t eval_chunks = 16; // valid chunks per evaluation, also the final one (0: all)
  int64_t calib_batches = 4;
  bool resume = false;
  int64_t stop_after = 0;   // tests: behave as if Ctrl-C arrived after this step
  bool progress = true;
  std::string device = "cpu";
};

absl::Status Train(const TrainOptions& options);

// Set by the SIGINT handler; the loop saves a checkpoint and stops.
void RequestStop();
// Whether the last Train() stopped early on RequestStop() (after its save).
bool StopRequested();

}  // namespace qatk::qat

#endif  // QATK_QAT_TRAIN_TRAINER_H_
