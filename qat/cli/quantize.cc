// qat quantize: the PTQ baseline. Weights per the recipe, by round-to-nearest
// (--method rtn, the codec itself) or by GPTQ (--method gptq, q4_0 weights:
// qat/quant/gptq.h, layer inputs from --calib); static activation scales
// calibrated on a few batches of --calib text. With --recon-steps, GPTQ's
// model then goes through block reconstruction (qat/train/block_recon.h).
#include <cstdio>

#include "formats/util/cli_flags.h"
#include "formats/util/output_lock.h"
#include "formats/util/status_macros.h"
#include "qat/cli/commands.h"
#include "qat/data/token_stream.h"
#include "qat/model/checkpoint.h"
#include "qat/quant/awq.h"
#include "qat/quant/gptq.h"
#include "qat/quant/prepare.h"
#include "qat/train/block_recon.h"
#include "qat/train/calibrate.h"

namespace qatk::cli {
namespace {

// A block reconstruction that is off unless --recon-steps asks for it.
qat::BlockReconOptions NoBlockRecon() {
  qat::BlockReconOptions r;
  r.steps = 0;
  return r;
}

// The flags of qat quantize, each declared once (--help order).
struct QuantizeOptions {
  std::string model, recipe, out, calib;
  std::string method = "rtn";  // rtn | gptq
  std::string latent_out;      // gptq: also a float checkpoint of the rounded weights
  std::string gptq_order = "parallel";  // parallel | sequential
  bool act_order = false;
  bool awq = false;  // gptq: activation-aware input scaling first (qat/quant/awq.h)
  double percdamp = 0.01;
  int64_t calib_batches = 8, batch = 8, seq = 0;
  uint64_t seed = 1234;
  qat::BlockReconOptions recon = NoBlockRecon();  // steps: --recon-steps
  bool no_progress = false;

  template <typename Visitor>
  void ForEach(Visitor&& v) {
    v(model, "model", "input checkpoint", kRequired);
    v(recipe, "recipe", "quantization recipe JSON", kRequired);
    v(out, "out", "output checkpoint", kRequired);
    v(method, "method", "weight rounding: rtn (round to nearest, the codec) or gptq (q4_0 weights; needs --calib)",
      kShowDefault);
    v(calib, "calib", "text for static activation calibration and GPTQ's layer inputs");
    v(calib_batches, "calib-batches", "calibration batches");
    v(batch, "batch", "sequences per calibration batch");
    v(seq, "seq", "tokens per sequence (default min(256, context))");
    v(seed, "seed", "calibration sampling seed");
    v(percdamp, "percdamp", "gptq: damping as a fraction of the mean Hessian diagonal", kShowDefault);
    v(gptq_order, "gptq-order",
      "gptq: parallel (every linear from the FP model's inputs, one pass) or sequential (one "
      "linear at a time, inputs from the model with the earlier linears already rounded)",
      kShowDefault);
    v(awq, "awq",
      "gptq: first scale each q4_0 linear's inputs by their RMS to a searched power (AWQ), folded "
      "into the norms and up_proj rows, so the FP model is unchanged");
    v(act_order, "gptq-act-order",
      "gptq: round each linear's input columns by decreasing input energy (H_jj) instead of left to right");
    v(latent_out, "latent-out",
      "gptq: also write a float checkpoint (no recipe) with the rounded weights, for qat train --init");
    v(recon.steps, "recon-steps",
      "gptq: then block reconstruction: each decoder layer in turn trains N Adam steps (STE) to "
      "reproduce the FP layer's output on --calib windows, from the output of the layers before it "
      "(0: off)",
      kShowDefault);
    v(recon.batches, "recon-batches", "block reconstruction: batches of --batch x --seq, cycled", kShowDefault);
    v(recon.lr, "recon-lr", "block reconstruction: peak LR of the weights and norms (cosine to 0)",
      kShowDefault);
    v(recon.scale_lr, "recon-scale-lr", "block reconstruction: peak LR of the q4_0 block scales", kShowDefault);
    v(no_progress, "no-progress", "block reconstruction: no progress bar within each layer");
  }

  absl::Status Validate() const {
    if (calib_batches <= 0 || batch <= 0) {
      return absl::InvalidArgumentError("--calib-batches and --batch must be positive");
    }
    if (recon.steps < 0 || recon.batches <= 0 || !(recon.lr >= 0) || !(recon.scale_lr >= 0)) {
      return absl::InvalidArgumentError("--recon-steps and the LRs must be >= 0, --recon-batches positive");
    }
    return absl::OkStatus();
  }
};

void Log(const char* what, const QuantizeOptions& o, int64_t seq) {
  std::fprintf(stderr, "%s on %lld batches of %lldx%lld tokens from %s\n", what,
               static_cast<long long>(o.calib_batches), static_cast<long long>(o.batch),
               static_cast<long long>(seq), o.calib.c_str());
}

// GPTQ of every q4_0 linear from layer inputs of the calibration text:
// "parallel", all from the FP model in one pass; "sequential", one linear at
// a time in module order, each from the model whose earlier linears are
// already rounded (a pass per linear). With --awq the inputs are first
// rescaled (ApplyAwq on the FP model's inputs), then GPTQ rounds.
absl::Status RunGptq(qat::Checkpoint& c, const QuantizeOptions& o, const std::vector<int32_t>& tokens,
                     int64_t seq) {
  const std::vector<std::string> names = qat::GptqModuleNames(*c.model);
  qat::GptqOptions g;
  g.percdamp = o.percdamp;
  g.act_order = o.act_order;
  Log(absl::StrCat("gptq (", o.gptq_order, "): layer inputs of ", names.size(), " q4_0 linears").c_str(), o, seq);
  const bool sequential = o.gptq_order == "sequential";
  std::vector<std::vector<std::string>> steps;
  if (sequential) {
    for (const std::string& n : names) steps.push_back({n});
  } else {
    steps.push_back(names);
  }
  std::map<std::string, torch::Tensor> awq_hessians;
  if (o.awq) {  // on the FP model's inputs, before any rounding
    awq_hessians = qat::CollectInputHessians(c.model, names, tokens, seq, o.batch, o.calib_batches, o.seed,
                                             c.tokenizer->bos_id());
    RETURN_IF_ERROR(qat::ApplyAwq(c.model, awq_hessians).status());
  }
  for (const std::vector<std::string>& step : steps) {
    // Parallel GPTQ rounds with the FP inputs, which --awq has just collected
    // (and rescaled); sequential recollects them after each linear.
    std::map<std::string, torch::Tensor> h =
        o.awq && !sequential ? std::move(awq_hessians)
                             : qat::CollectInputHessians(c.model, step, tokens, seq, o.batch, o.calib_batches,
                                                         o.seed, c.tokenizer->bos_id());
    RETURN_IF_ERROR(qat::ApplyGptq(*c.model, h, g, nullptr, &step));
  }
  return absl::OkStatus();
}

// After GPTQ: every decoder layer trains to reproduce the FP model's (--model).
absl::Status RunBlockRecon(qat::Checkpoint& c, const QuantizeOptions& o, const std::vector<int32_t>& tokens,
                           int64_t seq) {
  ASSIGN_OR_RETURN(qat::Checkpoint fp, qat::LoadCheckpoint(o.model));
  RETURN_IF_ERROR(qat::RequireTokenizer(fp));
  qat::BlockReconOptions r = o.recon;
  r.batch = o.batch;
  r.seq = seq;
  r.seed = o.seed;
  const double mib = static_cast<double>(qat::BlockReconActivationBytes(r, c.config.hidden_size)) / (1 << 20);
  std::fprintf(stderr, "block recon: %lld steps per layer on %lld batches of %lldx%lld tokens from %s (%.0f MiB of activations)\n",
               static_cast<long long>(r.steps), static_cast<long long>(r.batches), static_cast<long long>(r.batch),
               static_cast<long long>(seq), o.calib.c_str(), mib);
  return qat::BlockReconstruct(c.model, fp.model, tokens, c.tokenizer->bos_id(), r).status();
}

// The FP checkpoint of --model with the float parameters of the quantized
// model and no recipe: a QAT --init. Each q4_0 linear's weight is the one its
// forward uses, (q - 8) * d: GPTQ's dequantized weight, or after block
// reconstruction the rounding of its latent weight with its learned scales.
// The rest as trained (with --awq the rescaled norms and linears, after block
// reconstruction the norms).
absl::Status WriteLatent(const QuantizeOptions& o, qat::Checkpoint& quantized) {
  ASSIGN_OR_RETURN(qat::Checkpoint fresh, qat::LoadCheckpoint(o.model));
  RETURN_IF_ERROR(qat::RequireTokenizer(fresh));
  torch::NoGradGuard no_grad;
  auto src = quantized.model->named_parameters();
  auto dst = fresh.model->named_parameters();
  // Every float parameter: GPTQ's weights and, with --awq, the folded norms and up_proj rows.
  for (auto& p : dst) {
    if (const torch::Tensor* t = src.find(p.key())) p.value().copy_(*t);
  }
  for (const auto& m : quantized.model->named_modules("", /*include_self=*/false)) {
    auto* l = m.value()->as<qat::QLinearImpl>();
    if (l == nullptr || l->quant().weight.scheme != QuantScheme::kQ4_0) continue;
    if (torch::Tensor* t = dst.find(m.key() + ".weight")) t->copy_(l->QuantizedWeight());
  }
  qat::CheckpointWrite w;
  w.config = &fresh.config;
  w.model = fresh.model.get();
  w.tokenizer_model = &fresh.tokenizer->serialized();
  w.tokenizer_files = &fresh.tokenizer_files;
  RETURN_IF_ERROR(qat::SaveCheckpoint(o.latent_out, w));
  std::fprintf(stderr, "wrote %s (float checkpoint, %s weights, no recipe)\n", o.latent_out.c_str(),
               o.recon.steps > 0 ? "GPTQ + block reconstruction" : "GPTQ-rounded");
  return absl::OkStatus();
}

absl::Status RunQuantize(const QuantizeOptions& o) {
  const bool gptq = o.method == "gptq";
  if (!gptq && o.method != "rtn") {
    return absl::InvalidArgumentError(absl::StrCat("--method must be rtn or gptq, got '", o.method, "'"));
  }
  if (!gptq && o.awq) return absl::InvalidArgumentError("--awq needs --method gptq");
  if (!gptq && !o.latent_out.empty()) return absl::InvalidArgumentError("--latent-out needs --method gptq");
  if (!gptq && o.recon.steps > 0) return absl::InvalidArgumentError("--recon-steps needs --method gptq");
  if (o.gptq_order != "parallel" && o.gptq_order != "sequential") {
    return absl::InvalidArgumentError(absl::StrCat("--gptq-order must be parallel or sequential, got '", o.gptq_order, "'"));
  }
  if (gptq && o.calib.empty()) {
    return absl::InvalidArgumentError("--method gptq needs --calib TEXT (GPTQ weighs the rounding by the layer inputs)");
  }
  ASSIGN_OR_RETURN(OutputLock lock, OutputLock::Acquire(o.out));
  OutputLock latent_lock;
  if (!o.latent_out.empty()) {
    ASSIGN_OR_RETURN(latent_lock, OutputLock::Acquire(o.latent_out));
  }
  ASSIGN_OR_RETURN(qat::Checkpoint c, qat::LoadCheckpoint(o.model));
  RETURN_IF_ERROR(qat::RequireTokenizer(c));
  if (c.recipe) return absl::InvalidArgumentError(absl::StrCat(o.model, " is already quantized (has recipe.json)"));
  ASSIGN_OR_RETURN(Recipe recipe, LoadRecipe(o.recipe));
  if (gptq) {
    int converted = 0;
    absl::StatusOr<Recipe> learned = qat::WithLearnedQ4_0Scales(recipe, &converted);
    if (!learned.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--method gptq needs q4_0 weights: ", learned.status().message(), " (use --method rtn)"));
    }
    recipe = *std::move(learned);
    if (converted > 0) {
      std::fprintf(stderr, "gptq: %s: q4_0 weights keep GPTQ's block scales (\"scale_rule\": \"learned\" on %d "
                   "rules, as configs/recipes/q4_0_learned.json); the GGUF is the same Q4_0 format\n",
                   o.recipe.c_str(), converted);
    }
  }
  RETURN_IF_ERROR(qat::ApplyRecipe(*c.model, recipe, c.config.head_dim));
  const bool calibrate = qat::RecipeNeedsCalibration(c.model, recipe);
  if (calibrate && o.calib.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(o.recipe, " has static activation scales: give --calib TEXT"));
  }
  if (gptq || calibrate) {
    ASSIGN_OR_RETURN(std::vector<int32_t> tokens, data::LoadTokenStream(o.calib, *c.tokenizer));
    const int64_t seq = o.seq > 0 ? o.seq : std::min<int64_t>(256, c.config.max_position_embeddings);
    if (static_cast<int64_t>(tokens.size()) <= seq + 1) {
      return absl::InvalidArgumentError(absl::StrCat(o.calib, " is too short for --seq ", seq));
    }
    if (gptq) RETURN_IF_ERROR(RunGptq(c, o, tokens, seq));
    if (o.recon.steps > 0) RETURN_IF_ERROR(RunBlockRecon(c, o, tokens, seq));
    if (calibrate) {
      qat::CalibrateModel(c.model, tokens, seq, o.batch, o.calib_batches, o.seed, c.tokenizer->bos_id());
      Log("calibrated", o, seq);
    }
  }
  qat::SetQuantMode(*c.model, qat::QuantMode::kQuant);
  qat::FreezeQuantizers(*c.model);
  qat::CheckpointWrite w;
  w.config = &c.config;
  w.model = c.model.get();
  w.tokenizer_model = &c.tokenizer->serialized();
  w.tokenizer_files = &c.tokenizer_files;
  w.recipe = &recipe;
  RETURN_IF_ERROR(qat::SaveCheckpoint(o.out, w));
  std::fprintf(stderr, "wrote %s (recipe %s, %s)\n", o.out.c_str(), recipe.name.c_str(), o.method.c_str());
  if (!o.latent_out.empty()) RETURN_IF_ERROR(WriteLatent(o, c));
  return absl::OkStatus();
}

}  // namespace

absl::Status QuantizeCommand(int argc, char** argv) {
  cxxopts::Options opts("qat quantize", "Post-training quantization (PTQ baseline) of a checkpoint");
  QuantizeOptions o;
  RETURN_IF_ERROR(ParseArgs(o, opts, argc, argv, "quantize").status());
  o.recon.progress = !o.no_progress;
  RETURN_IF_ERROR(o.Validate());
  return RunQuantize(o);
}

}  // namespace qatk::cli
