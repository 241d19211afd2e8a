// qat train: pretraining, fine-tuning, QAT and distillation (qat/train/trainer.h).
#include <torch/torch.h>

#include <csignal>

#include "absl/strings/str_cat.h"
#include "formats/util/cli.h"
#include "formats/util/cli_flags.h"
#include "formats/util/output_lock.h"
#include "formats/util/status_macros.h"
#include "qat/cli/commands.h"
#include "qat/train/trainer.h"

namespace qatk::cli {
namespace {

void OnSigint(int) { qat::RequestStop(); }

// The flags of qat train, each declared once; the defaults are
// qat::TrainOptions' (not shown in --help: several depend on others).
struct TrainArgs {
  qat::TrainOptions o;
  int threads = 0;  // 0: all cores
  bool no_progress = false;

  template <typename Visitor>
  void ForEach(Visitor&& v) {
    v(o.data, "data", "folder with train.txt / valid.txt, or a prepared dataset (qat data --jsonl)", kRequired);
    v(o.out, "out", "output checkpoint folder", kRequired);
    v(o.config, "config", "model config JSON (from scratch)");
    v(o.init, "init", "initial checkpoint");
    v(o.recipe, "recipe", "quantization recipe JSON (QAT)");
    v(o.teacher, "teacher", "teacher checkpoint for distillation");
    v(o.tokenizer, "tokenizer", "tokenizer.model (default DATA/tokenizer.model; trained if absent)");
    v(o.steps, "steps", "optimizer steps");
    v(o.batch, "batch", "sequences per micro-batch");
    v(o.seq, "seq", "tokens per sequence (default min(256, context))");
    v(o.grad_accum, "grad-accum", "micro-batches per step");
    v(o.pack, "pack",
      "stream: windows run across documents (EOS between them); doc: no window crosses a document (short "
      "ones padded and masked)",
      kShowDefault);
    v(o.lr, "lr", "peak learning rate");
    v(o.min_lr_ratio, "min-lr-ratio", "final LR / peak LR (cosine)");
    v(o.warmup, "warmup", "warmup steps (default steps/20)");
    v(o.weight_decay, "weight-decay", "AdamW weight decay (matrices only)");
    v(o.clip, "clip", "gradient-norm clip");
    v(o.scale_lr, "scale-lr", "LR of learned quantizer scales (default --lr)");
    v(o.head_lr, "head-lr", "LR of the output head's weight (default --lr)");
    v(o.kd_alpha, "kd-alpha", "weight of the distillation loss (default 1 with --teacher)");
    v(o.kd_temp, "kd-temp", "distillation temperature");
    v(o.freeze_codes, "freeze-codes",
      "q4_0 weights keep their current codes; only their block scales (learned) and the unquantized "
      "parameters train");
    v(o.ema, "ema",
      "keep a moving average of the weights with this decay (e.g. 0.98) and save it as the model; 0: off");
    v(o.seed, "seed", "data order and init seed");
    v(o.save_every, "save-every", "checkpoint every N steps (0: at the end)");
    v(o.eval_every, "eval-every", "valid perplexity every N steps (0: at the end)");
    v(o.eval_chunks, "eval-chunks", "valid chunks per intermediate evaluation (0: all)");
    v(o.calib_batches, "calib-batches", "batches for static activation calibration");
    v(threads, "threads", "CPU threads (default: all cores)");
    v(o.device, "device", "cpu or cuda");
    v(o.resume, "resume", "continue from the checkpoint in --out");
    v(no_progress, "no-progress", "no progress bar");
  }
};

}  // namespace

absl::Status TrainCommand(int argc, char** argv) {
  cxxopts::Options opts("qat train", "Train from scratch (--config) or from a checkpoint (--init), "
                                     "optionally with a QAT --recipe and a distillation --teacher. Ctrl-C saves "
                                     "and exits 130; --resume continues.");
  TrainArgs a;
  ASSIGN_OR_RETURN(cxxopts::ParseResult r, ParseArgs(a, opts, argc, argv, "train"));
  a.o.progress = !a.no_progress;
  if (r.count("threads")) torch::set_num_threads(a.threads);
  // One writer per --out (a resume takes the same lock), held to the end.
  ASSIGN_OR_RETURN(OutputLock lock, OutputLock::Acquire(a.o.out));
  std::signal(SIGINT, OnSigint);
  RETURN_IF_ERROR(qat::Train(a.o));
  if (qat::StopRequested()) {
    return Interrupted(absl::StrCat("interrupted after saving ", a.o.out, "; continue with --resume"));
  }
  return absl::OkStatus();
}

}  // namespace qatk::cli
