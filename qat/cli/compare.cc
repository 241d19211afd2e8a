// qat compare: the QAT-vs-PTQ study with one shared fine-tuning budget.
//
//   base (given, or pretrained from --config)
//     └─ fp      : FP fine-tune of base, N steps                  (reference)
//         ├─ ptq-R : round-to-nearest PTQ of fp with recipe R     (baseline)
//         ├─ ptq-gptq-R : GPTQ PTQ of fp (--qat-init gptq, recipes with
//         │              q4_0 weights; with --awq, AWQ's input scaling
//         │              first), then block reconstruction (--recon-steps,
//         │              qat/train/block_recon.h), calibrated on
//         │              DATA/train.txt (--gptq-calib): a baseline of its
//         │              own, and its weights (gptq-init-R) are QAT's start
//         └─ qat-R : QAT with recipe R, N steps, initialised from
//                    gptq-init-R (--qat-init gptq, the default; fp for
//                    recipes without q4_0 weights), from fp (--qat-init
//                    fp) or from base, and distilled from fp. For
//                    recipes with q4_0 weights the last F of the N steps
//                    (--freeze-codes-steps) keep the q4_0 codes and train
//                    the block scales: qat-R-ste runs the first N - F
//                    steps (STE), then qat-R the last F from it
//                    (qat train --freeze-codes).
//                    The recovered fraction is always against ptq-R.
//   With pure distillation (--kd-alpha 1) from fp, QAT learns nothing from
//   the data that fp does not already know: what it gains over PTQ is
//   recovered quantization damage, not extra training.
//   each → exported (GGUF or mobile, per recipe) → perplexity on the test split
//   in qat-run, and in llama.cpp for GGUF files.
//   --qat-seeds N repeats each QAT run with seeds seed+1 .. seed+N-1
//   (qat-R-seedS, exported and evaluated in qat-run), and the report gives
//   the recovered fraction's mean over the N runs, with a 95% interval from a
//   bootstrap over both the runs and the evaluation chunks, and its range.
//
// Every step is a child `qat`/`qat-run` process whose completion is recorded
// in OUT/.done/ (qat/eval/pipeline.h), so an interrupted compare resumes
// where it stopped (training steps resume from their last checkpoint).
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "formats/quant/recipe.h"
#include "formats/util/cli_flags.h"
#include "formats/util/file_io.h"
#include "formats/util/output_lock.h"
#include "formats/util/status_macros.h"
#include "formats/util/subprocess.h"
#include "nlohmann/json.hpp"
#include "qat/cli/commands.h"
#include "qat/cli/compare_report.h"
#include "qat/eval/pipeline.h"

namespace qatk::cli {
namespace {

using json = nlohmann::json;

// The flags of qat compare, each declared once in ForEach (--help order):
// name, help, the member holding its value and default, and whether it is
// echoed in results.json's "settings".
struct CompareArgs {
  std::string data;          // DIR with train/valid/test.txt (+ tokenizer.model)
  std::string out;           // output DIR
  std::string base;          // base checkpoint, or
  std::string config;        // model config to pretrain a base from
  std::string recipes_list;  // --recipes, comma-separated
  int pretrain_steps = 3000;
  double pretrain_lr = 3e-3;
  int steps = 600;           // shared fine-tuning budget (FP and each QAT run)
  int batch = 16;
  int seq = 0;               // 0: the model's context
  double lr = 3e-4;          // FP fine-tuning learning rate
  std::string qat_lr_list;   // --qat-lr: none, one, or one per recipe
  double kd_alpha = 1.0;     // weight of distillation in the QAT loss
  std::string qat_init = "gptq";  // QAT starts from GPTQ of fp ("gptq"), the FP fine-tune ("fp"), or the base
  std::string gptq_calib = "train";  // the split GPTQ and block reconstruction calibrate on
  int gptq_calib_batches = 15;  // GPTQ's calibration: batches of --batch x --seq from DATA/<gptq_calib>.txt
  int recon_steps = 600;        // block reconstruction steps per layer after GPTQ (0: off)
  int freeze_codes_steps = -1;  // q4_0 recipes: the last F QAT steps with frozen codes (-1: steps / 5)
  double freeze_scale_lr = 1e-5;  // the block scales' LR in those steps
  bool awq = false;             // AWQ's input scaling before GPTQ (qat quantize --awq)
  std::string eval_file;     // default DATA/test.txt
  int ctx = 0;               // eval context, 0: min(512, model context)
  int vocab = 4096;          // tokenizer size when DATA has none
  int seed = 1;
  int qat_seeds = 1;         // QAT runs per recipe (seeds seed .. seed+qat_seeds-1)
  int bootstrap = 1000;
  bool no_llamacpp = false;
  std::string qat_run;       // path of qat-run (default: next to qat)
  std::string node_script;   // tests/interop/interop.mjs

  // Resolved by Validate().
  std::vector<std::string> recipes;
  std::vector<double> qat_lr;  // QAT learning rate of each recipe
  bool pretrain = false;       // no --base: pretrain one into OUT/base

  template <typename Visitor>
  void ForEach(Visitor&& v) {
    v(data, "data", "data DIR (train.txt, valid.txt, test.txt; tokenizer.model is trained if absent)",
      kRequired | kEcho);
    v(out, "out", "output DIR", kRequired);
    v(base, "base", "base full-precision checkpoint", kEcho);
    v(config, "config", "model config to pretrain a base from (instead of --base)");
    v(recipes_list, "recipes", "comma-separated recipe files");
    v(pretrain_steps, "pretrain-steps", "steps to pretrain the base (with --config)", kShowDefault | kEcho);
    v(pretrain_lr, "pretrain-lr", "peak learning rate of the pretraining (cosine)", kShowDefault | kEcho);
    v(steps, "steps", "fine-tuning budget, the same for FP and each QAT run", kShowDefault | kEcho);
    v(batch, "batch", "sequences per step", kShowDefault | kEcho);
    v(seq, "seq", "training sequence length (0: model context)", kShowDefault);
    v(lr, "lr", "FP fine-tuning learning rate (and QAT's unless --qat-lr)", kShowDefault | kEcho);
    v(qat_lr_list, "qat-lr",
      "QAT learning rate: one value, or one per recipe (comma-separated, in --recipes order; default: --lr)");
    v(kd_alpha, "kd-alpha", "distillation weight in the QAT loss (1 = pure KD)", kShowDefault | kEcho);
    v(qat_init, "qat-init",
      "QAT starts from: gptq (GPTQ rounding of fp, then block reconstruction, for recipes with q4_0 "
      "weights, which adds the ptq-gptq-R baseline; fp for the others), fp (the FP fine-tune, also "
      "the teacher), or base",
      kShowDefault | kEcho);
    v(gptq_calib, "gptq-calib",
      "--qat-init gptq: the split, train or valid, that GPTQ and block reconstruction calibrate on",
      kShowDefault | kEcho);
    v(gptq_calib_batches, "gptq-calib-batches", "--qat-init gptq: GPTQ calibration batches of --batch x --seq",
      kShowDefault | kEcho);
    v(recon_steps, "recon-steps",
      "--qat-init gptq: after GPTQ, each decoder layer trains N steps to reproduce the FP "
      "layer's output (qat quantize --recon-steps, its other --recon-* flags at their defaults; 0: GPTQ only)",
      kShowDefault);
    v(freeze_codes_steps, "freeze-codes-steps",
      "recipes with q4_0 weights: the last N of the --steps QAT steps keep the q4_0 codes "
      "and train only the block scales and the unquantized parameters (qat train "
      "--freeze-codes, continuing the first --steps - N); -1: --steps/5; 0: off",
      kShowDefault | kEcho);
    v(freeze_scale_lr, "freeze-scale-lr", "the block scales' peak LR in the --freeze-codes-steps steps",
      kShowDefault | kEcho);
    v(awq, "awq", "--qat-init gptq: AWQ's activation-aware input scaling before GPTQ (qat quantize --awq)");
    v(eval_file, "eval-file", "evaluation text (default DATA/test.txt)", kEcho);
    v(ctx, "ctx", "evaluation context (0: min(512, model context))", kShowDefault);
    v(vocab, "vocab", "tokenizer vocabulary size when DATA has none", kShowDefault);
    v(seed, "seed", "seed for training and bootstrap", kShowDefault | kEcho);
    v(qat_seeds, "qat-seeds",
      "QAT runs per recipe, seeds --seed.. (N > 1: the report adds the recovered fraction's mean, its 95% "
      "interval over seeds and chunks, and its range; the extra runs are evaluated in qat-run only)",
      kShowDefault | kEcho);
    v(bootstrap, "bootstrap", "bootstrap resamples over evaluation chunks", kShowDefault);
    v(no_llamacpp, "no-llamacpp", "skip the llama.cpp perplexity of GGUF files");
    v(qat_run, "qat-run", "path of the qat-run binary");
    v(node_script, "node-script", "llama.cpp interop script");
  }

  // Checks the flags together (kInvalidArgument) and resolves their
  // defaults that depend on others.
  absl::Status Validate();

  // results.json's "settings": the kEcho flags as resolved, with the QAT
  // learning rate per recipe and the GPTQ start's settings (null without one).
  nlohmann::json Settings() const {
    nlohmann::json s = EchoArgs(*this);
    s["qat_lr"] = qat_lr;
    const bool gptq = qat_init == "gptq";
    s["gptq_awq"] = gptq ? nlohmann::json(awq) : nlohmann::json(nullptr);
    s["gptq_recon_steps"] = gptq ? nlohmann::json(recon_steps) : nlohmann::json(nullptr);
    if (!gptq) s["gptq_calib"] = s["gptq_calib_batches"] = nullptr;
    return s;
  }
};

absl::Status CompareArgs::Validate() {
  if (base.empty() == config.empty()) {
    return absl::InvalidArgumentError("give exactly one of --base CKPT or --config MODEL.json");
  }
  if (recipes_list.empty()) return absl::InvalidArgumentError("missing --recipes R1.json[,R2.json]");
  recipes = absl::StrSplit(recipes_list, ',', absl::SkipEmpty());
  std::vector<double> lrs;
  for (absl::string_view v : absl::StrSplit(qat_lr_list, ',', absl::SkipEmpty())) {
    double value = 0;
    if (!absl::SimpleAtod(v, &value) || !(value > 0)) {
      return absl::InvalidArgumentError(absl::StrCat("--qat-lr: '", v, "' is not a positive number"));
    }
    lrs.push_back(value);
  }
  if (lrs.size() > 1 && lrs.size() != recipes.size()) {
    return absl::InvalidArgumentError(absl::StrCat("--qat-lr has ", lrs.size(), " values for ", recipes.size(),
                                                   " recipes (give one, or one per recipe)"));
  }
  for (const std::string& rp : recipes) {
    if (!PathExists(rp)) return absl::InvalidArgumentError(absl::StrCat("recipe file not found: ", rp));
  }
  if (steps <= 0 || batch <= 0) return absl::InvalidArgumentError("--steps and --batch must be positive");
  if (qat_seeds < 1 || qat_seeds > 100) {
    return absl::InvalidArgumentError(absl::StrCat("--qat-seeds must be in 1..100, got ", qat_seeds));
  }
  if (qat_init != "fp" && qat_init != "base" && qat_init != "gptq") {
    return absl::InvalidArgumentError(absl::StrCat("--qat-init must be fp, base or gptq, got '", qat_init, "'"));
  }
  if (gptq_calib_batches < 1) return absl::InvalidArgumentError("--gptq-calib-batches must be positive");
  if (gptq_calib != "train" && gptq_calib != "valid") {
    return absl::InvalidArgumentError(absl::StrCat("--gptq-calib must be train or valid, got '", gptq_calib, "'"));
  }
  if (recon_steps < 0) return absl::InvalidArgumentError("--recon-steps must be >= 0");
  const int freeze = freeze_codes_steps < 0 ? steps / 5 : freeze_codes_steps;
  if (freeze_codes_steps < -1 || freeze >= steps) {
    return absl::InvalidArgumentError(absl::StrCat("--freeze-codes-steps must be in 0..", steps - 1,
                                                   " (fewer than --steps), got ", freeze_codes_steps));
  }
  if (!(freeze_scale_lr > 0)) return absl::InvalidArgumentError("--freeze-scale-lr must be positive");
  if (awq && qat_init != "gptq") return absl::InvalidArgumentError("--awq needs --qat-init gptq");
  // Resolved values (what the run uses and the settings echo).
  freeze_codes_steps = freeze;
  qat_lr.clear();
  for (size_t i = 0; i < recipes.size(); ++i) qat_lr.push_back(lrs.empty() ? lr : lrs.size() == 1 ? lrs[0] : lrs[i]);
  if (eval_file.empty()) eval_file = data + "/test.txt";
  pretrain = base.empty();
  if (pretrain) {
    base = out + "/base";
  } else {
    pretrain_steps = 0;  // echoed as 0: nothing is pretrained
  }
  return absl::OkStatus();
}

// Paths as strings (no std::filesystem in LibTorch binaries: file_io.h).
std::string DirName(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
}

std::string AbsolutePath(const std::string& path) {
  if (!path.empty() && path[0] == '/') return path;
  char buf[4096];
  return ::getcwd(buf, sizeof(buf)) != nullptr ? std::string(buf) + "/" + path : path;
}

std::string DefaultQatRun() {
  const std::string dir = DirName(SelfExecutable());
  for (const std::string& p : {dir + "/qat-run", DirName(dir) + "/inference/qat-run"}) {
    if (PathExists(p)) return p;
  }
  return "qat-run";
}

std::string DefaultNodeScript() {
#ifdef QATK_SOURCE_DIR
  return std::string(QATK_SOURCE_DIR) + "/tests/interop/interop.mjs";
#else
  return "tests/interop/interop.mjs";
#endif
}

// File name without folder and extension ("runs/a/fp.gguf" -> "fp").
std::string Stem(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  const size_t dot = name.find_last_of('.');
  return dot == std::string::npos || dot == 0 || name == ".." ? name : name.substr(0, dot);
}

absl::StatusOr<json> ReadRecipeJson(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat("recipe ", path, " is not valid JSON"));
  return j;
}

// qat train's arguments for a run of `steps` steps into `out`.
std::vector<std::string> TrainArgv(const std::string& qat, const CompareArgs& o, const std::string& out, int steps,
                                   double lr, int seed_offset = 0) {
  std::vector<std::string> a = {qat, "train", "--data", o.data, "--out", out, "--steps",
                                std::to_string(steps), "--batch", std::to_string(o.batch), "--lr",
                                absl::StrCat(lr), "--seed", std::to_string(o.seed + seed_offset), "--resume"};
  if (o.seq > 0) {
    a.push_back("--seq");
    a.push_back(std::to_string(o.seq));
  }
  // Ten validation points per run for the curves (a 32-chunk sample each).
  a.insert(a.end(), {"--eval-every", std::to_string(std::max(1, steps / 10)), "--eval-chunks", "32"});
  return a;
}

// True when the recipe has q4_0 weights (what --method gptq rounds).
absl::StatusOr<bool> HasQ4_0Weights(const std::string& path) {
  ASSIGN_OR_RETURN(Recipe recipe, LoadRecipe(path));
  for (const RecipeRule& rule : recipe.rules) {
    if (rule.has_weight && rule.weight.scheme == QuantScheme::kQ4_0) return true;
  }
  return false;
}

// The frozen-code steps' data seed offset: their windows are drawn apart
// from the first phase's (which a second run with the same seed would repeat).
constexpr int kFreezeSeedOffset = 1000;

// What the steps of one compare share.
struct Steps {
  qat::Pipeline& pipeline;
  std::string qat;      // this binary
  const CompareArgs& o;
  std::string fp;       // the FP fine-tune: PTQ's model and QAT's teacher
};

// One QAT run of a recipe.
struct QatRun {
  std::string recipe;       // recipe file
  size_t recipe_index = 0;  // its place in --recipes (its --qat-lr)
  std::string name;         // the variant, trained into OUT/name
  std::string init;         // the checkpoint it starts from
  int seed_offset = 0;      // trains with --seed + seed_offset
  int freeze_steps = 0;     // the last steps with frozen q4_0 codes (0: none)
};

// QAT of q.recipe into OUT/q.name from q.init, distilled from fp: one qat
// train run of --steps; or, when q.freeze_steps > 0, the first --steps -
// freeze_steps STE steps into OUT/NAME-ste and then freeze_steps steps of
// qat train --freeze-codes from it into OUT/NAME. Appends the runs' loss
// curves to `runs` when given.
absl::Status QatStep(const Steps& s, const QatRun& q, std::vector<TrainingRun>* runs) {
  const CompareArgs& o = s.o;
  const int freeze = q.freeze_steps;
  const double lr = o.qat_lr[q.recipe_index];
  const std::string out = o.out + "/" + q.name, ste = freeze > 0 ? out + "-ste" : out;
  std::vector<std::string> a = TrainArgv(s.qat, o, ste, o.steps - freeze, lr, q.seed_offset);
  a.insert(a.end(), {"--init", q.init, "--recipe", q.recipe, "--teacher", s.fp, "--kd-alpha",
                     absl::StrCat(o.kd_alpha)});
  RETURN_IF_ERROR(s.pipeline.Run(freeze > 0 ? q.name + "-ste" : q.name, a, false).status());
  if (runs) runs->push_back({q.name, ste + "/metrics.jsonl"});
  if (freeze == 0) return absl::OkStatus();
  std::vector<std::string> f = TrainArgv(s.qat, o, out, freeze, lr, q.seed_offset + kFreezeSeedOffset);
  f.insert(f.end(), {"--init", ste, "--teacher", s.fp, "--kd-alpha", absl::StrCat(o.kd_alpha), "--freeze-codes",
                     "--scale-lr", absl::StrCat(o.freeze_scale_lr)});
  RETURN_IF_ERROR(s.pipeline.Run(q.name, f, false).status());
  if (runs) runs->push_back({q.name + " (codes frozen)", out + "/metrics.jsonl", o.steps - freeze});
  return absl::OkStatus();
}

// --qat-init gptq: GPTQ PTQ of fp with `recipe`, then block reconstruction
// (--recon-steps; step gptq-NAME) writing ptq-gptq-NAME and the float
// gptq-init-NAME; returns the latter, or "" for a recipe without q4_0
// weights (`q4_0` false: its QAT then starts from fp).
absl::StatusOr<std::string> GptqStep(const Steps& s, const std::string& recipe, const std::string& name,
                                     bool q4_0) {
  if (!q4_0) {
    std::fprintf(stderr, "[compare] %s has no q4_0 weights: its QAT starts from fp\n", name.c_str());
    return std::string();
  }
  const CompareArgs& o = s.o;
  const std::string init = o.out + "/gptq-init-" + name;
  std::vector<std::string> g = {s.qat, "quantize", "--method", "gptq", "--model", s.fp, "--recipe", recipe,
                                "--out", o.out + "/ptq-gptq-" + name, "--latent-out", init,
                                "--calib", o.data + "/" + o.gptq_calib + ".txt", "--calib-batches",
                                std::to_string(o.gptq_calib_batches), "--batch", std::to_string(o.batch),
                                "--recon-steps", std::to_string(o.recon_steps)};
  if (o.seq > 0) g.insert(g.end(), {"--seq", std::to_string(o.seq)});
  if (o.awq) g.push_back("--awq");
  RETURN_IF_ERROR(s.pipeline.Run("gptq-" + name, g, false).status());
  return init;
}

struct Variant {
  std::string name, recipe, method, format, file;
  int seed = 0;  // extra QAT seeds only: the variant is qat-R repeated with this seed
};

absl::Status RunCompare(const CompareArgs& o) {
  const std::string qat = SelfExecutable();
  const std::string qat_run = o.qat_run.empty() ? DefaultQatRun() : o.qat_run;
  const std::string node_script = o.node_script.empty() ? DefaultNodeScript() : o.node_script;
  ASSIGN_OR_RETURN(OutputLock lock, OutputLock::Acquire(o.out));
  RETURN_IF_ERROR(MakeDirs(o.out + "/.done"));
  qat::Pipeline p(o.out, "compare");

  // 0. tokenizer, 1. base.
  const std::string tok = o.data + "/tokenizer.model";
  if (!PathExists(tok)) {
    RETURN_IF_ERROR(p.Run("tokenizer", {qat, "tokenizer", "--data", o.data + "/train.txt", "--vocab",
                                        std::to_string(o.vocab), "--out", tok}, false).status());
  }
  if (o.pretrain) {
    std::vector<std::string> a = TrainArgv(qat, o, o.base, o.pretrain_steps, o.pretrain_lr);
    a.insert(a.end(), {"--config", o.config, "--tokenizer", tok});
    RETURN_IF_ERROR(p.Run("base", a, false).status());
  }
  // 2. FP fine-tune (the reference and the teacher).
  const Steps shared{p, qat, o, o.out + "/fp"};
  const std::string& fp = shared.fp;
  {
    std::vector<std::string> a = TrainArgv(qat, o, fp, o.steps, o.lr);
    a.insert(a.end(), {"--init", o.base});
    RETURN_IF_ERROR(p.Run("fp", a, false).status());
  }
  std::vector<Variant> variants = {{"fp", "", "fp", "gguf", o.out + "/fp.gguf"}};
  std::vector<TrainingRun> runs = {{"fp", fp + "/metrics.jsonl"}};
  // 3. per recipe: PTQ of fp, QAT from fp (or base, or GPTQ of fp) distilled from fp.
  for (size_t ri = 0; ri < o.recipes.size(); ++ri) {
    const std::string& r = o.recipes[ri];
    ASSIGN_OR_RETURN(json recipe, ReadRecipeJson(r));
    const std::string name = recipe.value("name", Stem(r));
    const std::string format = recipe.value("export_format", "gguf");
    const std::string ext = format == "mobile" ? ".qmob" : ".gguf";
    RETURN_IF_ERROR(p.Run("ptq-" + name, {qat, "quantize", "--model", fp, "--recipe", r, "--out",
                                          o.out + "/ptq-" + name, "--calib", o.data + "/valid.txt"},
                          false).status());
    variants.push_back({"ptq-" + name, r, "ptq", format, o.out + "/ptq-" + name + ext});
    ASSIGN_OR_RETURN(const bool q4_0, HasQ4_0Weights(r));
    QatRun q;
    q.recipe = r;
    q.recipe_index = ri;
    q.name = "qat-" + name;
    q.init = o.qat_init == "base" ? o.base : fp;
    if (o.qat_init == "gptq") {
      ASSIGN_OR_RETURN(std::string init, GptqStep(shared, r, name, q4_0));
      if (!init.empty()) {
        q.init = init;
        variants.push_back({"ptq-gptq-" + name, r, "ptq", format, o.out + "/ptq-gptq-" + name + ext});
      }
    }
    q.freeze_steps = q4_0 ? o.freeze_codes_steps : 0;
    RETURN_IF_ERROR(QatStep(shared, q, &runs));
    variants.push_back({q.name, r, "qat", format, o.out + "/" + q.name + ext});
    for (int k = 1; k < o.qat_seeds; ++k) {
      QatRun extra = q;
      extra.name = absl::StrCat("qat-", name, "-seed", o.seed + k);
      extra.seed_offset = k;
      RETURN_IF_ERROR(QatStep(shared, extra, nullptr));
      variants.push_back({extra.name, r, "qat", format, o.out + "/" + extra.name + ext, o.seed + k});
    }
  }
  // 4. export, 5. evaluate.
  std::vector<VariantResult> results;
  for (const Variant& v : variants) {
    const std::string ckpt = o.out + "/" + v.name;
    RETURN_IF_ERROR(p.Run("export-" + v.name, {qat, "export", "--model", ckpt, "--format", v.format,
                                               "--out", v.file}, false).status());
    VariantResult res;
    res.name = v.name;
    res.recipe = v.recipe;
    res.method = v.method;
    res.format = v.format;
    res.file = v.file;
    res.seed = v.seed;
    const absl::StatusOr<uint64_t> bytes = FileSize(v.file);
    res.bytes = bytes.ok() ? *bytes : 0;
    std::vector<std::string> eval = {qat_run, "perplexity", "--model", v.file, "--file", o.eval_file, "--json"};
    if (o.ctx > 0) eval.insert(eval.end(), {"--ctx", std::to_string(o.ctx)});
    ASSIGN_OR_RETURN(std::string out, p.Run("eval-" + v.name, eval, true));
    ASSIGN_OR_RETURN(json j, qat::ParseStepJson("eval-" + v.name, out));
    res.ppl_runtime = j.value("ppl", NAN);
    res.tokens = j.value("tokens", 0);
    res.ctx = j.value("ctx", 0);
    if (j.contains("chunk_nll")) res.chunk_nll = j["chunk_nll"].get<std::vector<double>>();
    // KL from the FP file's distributions (a step of its own, so that
    // folders evaluated before it existed resume; the FP model runs again
    // for each variant: cheaper than its log-prob file, ~600 MB for the
    // Brown test split at a 4096 vocabulary).
    if (v.method == "fp") {
      res.kl_mean = res.kl_p99 = 0;
      res.top1 = 1;
    } else if (v.seed == 0) {
      std::vector<std::string> kl = eval;
      kl.insert(kl.end(), {"--kl-base", variants.front().file});
      ASSIGN_OR_RETURN(std::string kout, p.Run("kl-" + v.name, kl, true));
      ASSIGN_OR_RETURN(json kj, qat::ParseStepJson("kl-" + v.name, kout));
      res.kl_mean = kj.value("kl_mean", NAN);
      res.kl_p99 = kj.value("kl_p99", NAN);
      res.top1 = kj.value("top1", NAN);
    }
    if (!o.no_llamacpp && v.format == "gguf" && v.seed == 0 && PathExists(node_script)) {
      // interop.mjs computes llama.cpp's perplexity with llama-perplexity's chunking.
      const std::string expect = p.Marker("llamacpp-" + v.name) + ".expect.json";
      json e = {{"perplexity", {{"text_file", AbsolutePath(o.eval_file)},
                                {"ctx", res.ctx}, {"ppl", nullptr}}}};
      RETURN_IF_ERROR(WriteFileAtomic(expect, e.dump() + "\n"));
      std::vector<std::string> lc = {"node", node_script, "--model", v.file, "--expect", expect};
      ASSIGN_OR_RETURN(std::string lout, p.Run("llamacpp-" + v.name, lc, true));
      ASSIGN_OR_RETURN(json lj, qat::ParseStepJson("llamacpp-" + v.name, lout));
      if (lj.contains("perplexity")) res.ppl_llamacpp = lj["perplexity"].value("ppl", NAN);
    }
    results.push_back(std::move(res));
  }
  // 6. report.
  ReportOptions ro;
  ro.out_dir = o.out;
  ro.bootstrap = o.bootstrap;
  ro.seed = o.seed;
  ro.runs = runs;
  ro.settings = o.Settings();
  return WriteCompareReport(ro, results);
}

}  // namespace

absl::Status CompareCommand(int argc, char** argv) {
  cxxopts::Options opts("qat compare",
                        "QAT vs PTQ with one shared fine-tuning budget: FP fine-tune, PTQ and QAT per "
                        "recipe, export, perplexity in qat-run and llama.cpp; writes OUT/results.json, "
                        "OUT/results.md and plots. Re-running with the same flags resumes where it "
                        "stopped; with a changed flag it stops and names the step.");
  CompareArgs o;
  RETURN_IF_ERROR(ParseArgs(o, opts, argc, argv, "compare").status());
  RETURN_IF_ERROR(o.Validate());
  // Ctrl-C reaches the running step too: it saves and exits 130, and the
  // pipeline turns that into compare's own exit 130. A handler (not
  // SIG_IGN, which children would inherit) keeps compare alive meanwhile.
  std::signal(SIGINT, [](int) {});
  return RunCompare(o);
}

}  // namespace qatk::cli
