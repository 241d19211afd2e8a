// qat train: pretraining, fine-tuning, QAT and distillation (qat/train/trainer.h).
#include <torch/torch.h>

#include <csignal>
#include <thread>

#include "formats/util/status_macros.h"
#include "qat/cli/commands.h"
#include "formats/util/cli_flags.h"
#include "qat/train/trainer.h"

namespace qatk::cli {
namespace {

void OnSigint(int) { qat::RequestStop(); }

template <typename T>
void Set(const cxxopts::ParseResult& r, const char* flag, T* out) {
  if (r.count(flag)) *out = r[flag].as<T>();
}

}  // namespace

absl::Status TrainCommand(int argc, char** argv) {
  cxxopts::Options opts("qat train", "Train from scratch (--config) or from a checkpoint (--init), "
                                     "optionally with a QAT --recipe and a distillation --teacher");
  qat::TrainOptions d;
  opts.add_options()("data", "folder with train.txt / valid.txt", cxxopts::value<std::string>())(
      "out", "output checkpoint folder", cxxopts::value<std::string>())(
      "config", "model config JSON (from scratch)", cxxopts::value<std::string>())(
      "init", "initial checkpoint", cxxopts::value<std::string>())(
      "recipe", "quantization recipe JSON (QAT)", cxxopts::value<std::string>())(
      "teacher", "teacher checkpoint for distillation", cxxopts::value<std::string>())(
      "tokenizer", "tokenizer.model (default DATA/tokenizer.model; trained if absent)",
      cxxopts::value<std::string>())("steps", "optimizer steps", cxxopts::value<int64_t>())(
      "batch", "sequences per micro-batch", cxxopts::value<int64_t>())(
      "seq", "tokens per sequence (default min(256, context))", cxxopts::value<int64_t>())(
      "grad-accum", "micro-batches per step", cxxopts::value<int64_t>())(
      "lr", "peak learning rate", cxxopts::value<double>())(
      "min-lr-ratio", "final LR / peak LR (cosine)", cxxopts::value<double>())(
      "warmup", "warmup steps (default steps/20)", cxxopts::value<int64_t>())(
      "weight-decay", "AdamW weight decay (matrices only)", cxxopts::value<double>())(
      "clip", "gradient-norm clip", cxxopts::value<double>())(
      "scale-lr", "LR of learned quantizer scales (default --lr)", cxxopts::value<double>())(
      "head-lr", "LR of the output head's weight (default --lr)", cxxopts::value<double>())(
      "kd-alpha", "weight of the distillation loss (default 1 with --teacher)", cxxopts::value<double>())(
      "kd-temp", "distillation temperature", cxxopts::value<double>())(
      "freeze-codes", "q4_0 weights keep their current codes; only their block scales (learned) and the "
                      "unquantized parameters train")(
      "ema", "keep a moving average of the weights with this decay (e.g. 0.98) and save it as the model; "
             "0: off", cxxopts::value<double>())(
      "seed", "data order and init seed", cxxopts::value<uint64_t>())(
      "save-every", "checkpoint every N steps (0: at the end)", cxxopts::value<int64_t>())(
      "eval-every", "valid perplexity every N steps (0: at the end)", cxxopts::value<int64_t>())(
      "eval-chunks", "valid chunks per intermediate evaluation (0: all)", cxxopts::value<int64_t>())(
      "calib-batches", "batches for static activation calibration", cxxopts::value<int64_t>())(
      "threads", "CPU threads (default: all cores)", cxxopts::value<int>())(
      "device", "cpu or cuda", cxxopts::value<std::string>())(
      "resume", "continue from the checkpoint in --out")("no-progress", "no progress bar");
  ASSIGN_OR_RETURN(cxxopts::ParseResult r, ParseFlags(opts, argc, argv));
  RETURN_IF_ERROR(Require(r, "data", "train"));
  RETURN_IF_ERROR(Require(r, "out", "train"));
  qat::TrainOptions o;
  Set(r, "data", &o.data), Set(r, "out", &o.out), Set(r, "config", &o.config), Set(r, "init", &o.init);
  Set(r, "recipe", &o.recipe), Set(r, "teacher", &o.teacher), Set(r, "tokenizer", &o.tokenizer);
  Set(r, "steps", &o.steps), Set(r, "batch", &o.batch), Set(r, "seq", &o.seq);
  Set(r, "grad-accum", &o.grad_accum), Set(r, "lr", &o.lr), Set(r, "min-lr-ratio", &o.min_lr_ratio);
  Set(r, "warmup", &o.warmup), Set(r, "weight-decay", &o.weight_decay), Set(r, "clip", &o.clip);
  Set(r, "scale-lr", &o.scale_lr), Set(r, "head-lr", &o.head_lr);
  Set(r, "kd-alpha", &o.kd_alpha), Set(r, "kd-temp", &o.kd_temp), Set(r, "ema", &o.ema);
  Set(r, "seed", &o.seed), Set(r, "save-every", &o.save_every), Set(r, "eval-every", &o.eval_every);
  Set(r, "eval-chunks", &o.eval_chunks), Set(r, "calib-batches", &o.calib_batches), Set(r, "device", &o.device);
  o.resume = r.count("resume") > 0;
  o.freeze_codes = r.count("freeze-codes") > 0;
  o.progress = r.count("no-progress") == 0;
  if (r.count("threads")) torch::set_num_threads(r["threads"].as<int>());
  std::signal(SIGINT, OnSigint);
  return qat::Train(o);
}

}  // namespace qatk::cli
