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
// in OUT/.done/, so an interrupted compare resumes where it stopped (training
// steps resume from their last checkpoint).
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "formats/util/file_io.h"
#include "formats/quant/recipe.h"
#include "formats/util/status_macros.h"
#include "formats/util/subprocess.h"
#include "nlohmann/json.hpp"
#include "qat/cli/commands.h"
#include "qat/cli/compare_report.h"
#include "formats/util/cli_flags.h"

namespace qatk::cli {
namespace {

using json = nlohmann::json;

struct CompareOptions {
  std::string data;          // DIR with train/valid/test.txt (+ tokenizer.model)
  std::string out;           // output DIR
  std::string base;          // base checkpoint, or
  std::string config;        // model config to pretrain a base from
  std::vector<std::string> recipes;
  int pretrain_steps = 3000;
  double pretrain_lr = 3e-3;
  int steps = 600;           // shared fine-tuning budget (FP and each QAT run)
  int batch = 16;
  int seq = 0;               // 0: the model's context
  double lr = 3e-4;          // FP fine-tuning learning rate
  std::vector<double> qat_lr;  // QAT learning rate per recipe (empty: --lr; one value: all)
  double kd_alpha = 1.0;     // weight of distillation in the QAT loss
  std::string qat_init = "gptq";  // QAT starts from GPTQ of fp ("gptq"), the FP fine-tune ("fp"), or the base
  bool awq = false;             // AWQ's input scaling before GPTQ (qat quantize --awq)
  int gptq_calib_batches = 15;  // GPTQ's calibration: batches of --batch x --seq from DATA/<gptq_calib>.txt
  std::string gptq_calib = "train";  // the split GPTQ and block reconstruction calibrate on
  int recon_steps = 600;             // block reconstruction steps per layer after GPTQ (0: off)
  int freeze_codes_steps = -1;       // q4_0 recipes: the last F QAT steps with frozen codes (-1: steps / 5)
  double freeze_scale_lr = 1e-5;     // the block scales' LR in those steps
  int ctx = 0;               // eval context, 0: min(512, model context)
  int vocab = 4096;          // tokenizer size when DATA has none
  int seed = 1;
  int qat_seeds = 1;         // QAT runs per recipe (seeds seed .. seed+qat_seeds-1)
  int bootstrap = 1000;
  bool llamacpp = true;
  std::string qat_run;       // path of qat-run (default: next to qat)
  std::string node_script;   // tests/interop/interop.mjs
  std::string eval_file;     // default DATA/test.txt
};

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

// One step of the pipeline: a child command and the marker that says it is done.
class Pipeline {
 public:
  explicit Pipeline(std::string out) : out_(std::move(out)) {}

  // Runs argv unless `step` is already done; returns captured stdout.
  absl::StatusOr<std::string> Run(const std::string& step, const std::vector<std::string>& argv,
                                  bool capture) {
    const std::string cached = Marker(step), command = ShellJoin(argv);
    // A step is reused only for the same arguments (a changed flag, say
    // --qat-lr, must not silently keep the old result); the program's own
    // path may change, e.g. with another build folder.
    const std::string args = ShellJoin(std::vector<std::string>(argv.begin() + 1, argv.end()));
    if (PathExists(cached)) {
      absl::StatusOr<std::string> before = ReadFileToString(cached + ".args");
      if (before.ok() && *before != args) {
        return absl::FailedPreconditionError(absl::StrCat(
            "step '", step, "' in ", out_, " was run with\n  ", *before, "\nand would now run with\n  ", args,
            "\nuse a new --out, or delete ", out_, " to start again"));
      }
      std::fprintf(stderr, "[compare] %-18s done (resumed)\n", step.c_str());
      return ReadFileToString(cached);
    }
    std::fprintf(stderr, "[compare] %-18s %s\n", step.c_str(), command.c_str());
    ASSIGN_OR_RETURN(ProcessResult r, RunProcess(argv, capture));
    if (r.exit_code != 0) {
      return absl::InternalError(absl::StrCat("step '", step, "' failed (exit ", r.exit_code,
                                              "): ", command));
    }
    RETURN_IF_ERROR(WriteFileAtomic(cached + ".args", args));
    RETURN_IF_ERROR(WriteFileAtomic(cached, r.out));
    return r.out;
  }

 private:
  std::string Marker(const std::string& step) const { return out_ + "/.done/" + step; }
  std::string out_;
};

absl::StatusOr<json> ParseJsonOutput(const std::string& step, const std::string& out) {
  // The JSON object is the last non-empty line of stdout.
  std::vector<std::string> lines = absl::StrSplit(out, '\n', absl::SkipWhitespace());
  if (lines.empty()) return absl::InternalError(absl::StrCat("step '", step, "' printed no JSON"));
  json j = json::parse(lines.back(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InternalError(absl::StrCat("step '", step, "' printed invalid JSON: ", lines.back()));
  }
  return j;
}

absl::StatusOr<json> ReadRecipeJson(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat("recipe ", path, " is not valid JSON"));
  return j;
}

std::vector<std::string> TrainArgs(const std::string& qat, const CompareOptions& o, const std::string& out,
                                   int steps, double lr, int seed_offset = 0) {
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

// QAT learning rate of recipe i (--qat-lr: none, one, or one per recipe).
double QatLr(const CompareOptions& o, size_t i) {
  if (o.qat_lr.empty()) return o.lr;
  return o.qat_lr.size() == 1 ? o.qat_lr[0] : o.qat_lr[i];
}

// --freeze-codes-steps, its default (-1) resolved to a fifth of --steps.
int FreezeCodesSteps(const CompareOptions& o) { return o.freeze_codes_steps < 0 ? o.steps / 5 : o.freeze_codes_steps; }

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

// QAT of recipe r into OUT/vname (seed --seed + k) from `init`, distilled
// from fp: one qat train run of --steps; or, when `freeze` > 0, steps - freeze
// STE steps into OUT/vname-ste and then `freeze` steps of
// qat train --freeze-codes from it into OUT/vname. Appends the runs' loss
// curves to `runs` when given.
absl::Status QatStep(Pipeline& p, const std::string& qat, const CompareOptions& o, size_t ri,
                     const std::string& r, const std::string& vname, const std::string& init,
                     const std::string& fp, int k, int freeze, std::vector<TrainingRun>* runs) {
  const std::string out = o.out + "/" + vname, ste = freeze > 0 ? out + "-ste" : out;
  std::vector<std::string> a = TrainArgs(qat, o, ste, o.steps - freeze, QatLr(o, ri), k);
  a.insert(a.end(), {"--init", init, "--recipe", r, "--teacher", fp, "--kd-alpha", absl::StrCat(o.kd_alpha)});
  RETURN_IF_ERROR(p.Run(freeze > 0 ? vname + "-ste" : vname, a, false).status());
  if (runs) runs->push_back({vname, ste + "/metrics.jsonl"});
  if (freeze == 0) return absl::OkStatus();
  std::vector<std::string> f = TrainArgs(qat, o, out, freeze, QatLr(o, ri), k + kFreezeSeedOffset);
  f.insert(f.end(), {"--init", ste, "--teacher", fp, "--kd-alpha", absl::StrCat(o.kd_alpha), "--freeze-codes",
                     "--scale-lr", absl::StrCat(o.freeze_scale_lr)});
  RETURN_IF_ERROR(p.Run(vname, f, false).status());
  if (runs) runs->push_back({vname + " (codes frozen)", out + "/metrics.jsonl", o.steps - freeze});
  return absl::OkStatus();
}

// --qat-init gptq: GPTQ PTQ of fp with recipe r, then block reconstruction
// (--recon-steps; step gptq-NAME) writing
// ptq-gptq-NAME and the float gptq-init-NAME; returns the latter, or "" for a
// recipe without q4_0 weights (`q4_0` false: its QAT then starts from fp).
absl::StatusOr<std::string> GptqStep(Pipeline& p, const std::string& qat, const CompareOptions& o,
                                     const std::string& fp, const std::string& r, const std::string& name,
                                     bool q4_0) {
  if (!q4_0) {
    std::fprintf(stderr, "[compare] %s has no q4_0 weights: its QAT starts from fp\n", name.c_str());
    return std::string();
  }
  const std::string init = o.out + "/gptq-init-" + name;
  std::vector<std::string> g = {qat, "quantize", "--method", "gptq", "--model", fp, "--recipe", r,
                                "--out", o.out + "/ptq-gptq-" + name, "--latent-out", init,
                                "--calib", o.data + "/" + o.gptq_calib + ".txt", "--calib-batches",
                                std::to_string(o.gptq_calib_batches), "--batch", std::to_string(o.batch),
                                "--recon-steps", std::to_string(o.recon_steps)};
  if (o.seq > 0) g.insert(g.end(), {"--seq", std::to_string(o.seq)});
  if (o.awq) g.push_back("--awq");
  RETURN_IF_ERROR(p.Run("gptq-" + name, g, false).status());
  return init;
}

struct Variant {
  std::string name, recipe, method, format, file;
  int seed = 0;  // extra QAT seeds only: the variant is qat-R repeated with this seed
};

absl::Status RunCompare(const CompareOptions& o) {
  const std::string qat = SelfExecutable();
  const std::string qat_run = o.qat_run.empty() ? DefaultQatRun() : o.qat_run;
  const std::string node_script = o.node_script.empty() ? DefaultNodeScript() : o.node_script;
  const std::string eval_file = o.eval_file.empty() ? o.data + "/test.txt" : o.eval_file;
  RETURN_IF_ERROR(MakeDirs(o.out + "/.done"));
  Pipeline p(o.out);

  // 0. tokenizer, 1. base.
  const std::string tok = o.data + "/tokenizer.model";
  if (!PathExists(tok)) {
    RETURN_IF_ERROR(p.Run("tokenizer", {qat, "tokenizer", "--data", o.data + "/train.txt", "--vocab",
                                        std::to_string(o.vocab), "--out", tok}, false).status());
  }
  std::string base = o.base;
  if (base.empty()) {
    base = o.out + "/base";
    std::vector<std::string> a = TrainArgs(qat, o, base, o.pretrain_steps, o.pretrain_lr);
    a.insert(a.end(), {"--config", o.config, "--tokenizer", tok});
    RETURN_IF_ERROR(p.Run("base", a, false).status());
  }
  // 2. FP fine-tune (the reference and the teacher).
  const std::string fp = o.out + "/fp";
  {
    std::vector<std::string> a = TrainArgs(qat, o, fp, o.steps, o.lr);
    a.insert(a.end(), {"--init", base});
    RETURN_IF_ERROR(p.Run("fp", a, false).status());
  }
  std::vector<Variant> variants = {{"fp", "", "fp", "gguf", o.out + "/fp.gguf"}};
  std::vector<TrainingRun> runs = {{"fp", fp + "/metrics.jsonl"}};
  // 3. per recipe: PTQ of fp, QAT from fp (or base, or GPTQ of fp) distilled from fp.
  json qat_lrs = json::array();
  for (size_t ri = 0; ri < o.recipes.size(); ++ri) {
    const std::string& r = o.recipes[ri];
    qat_lrs.push_back(QatLr(o, ri));
    ASSIGN_OR_RETURN(json recipe, ReadRecipeJson(r));
    const std::string name = recipe.value("name", Stem(r));
    const std::string format = recipe.value("export_format", "gguf");
    const std::string ext = format == "mobile" ? ".qmob" : ".gguf";
    RETURN_IF_ERROR(p.Run("ptq-" + name, {qat, "quantize", "--model", fp, "--recipe", r, "--out",
                                          o.out + "/ptq-" + name, "--calib", o.data + "/valid.txt"},
                          false).status());
    variants.push_back({"ptq-" + name, r, "ptq", format, o.out + "/ptq-" + name + ext});
    ASSIGN_OR_RETURN(const bool q4_0, HasQ4_0Weights(r));
    std::string qat_init = o.qat_init == "base" ? base : fp;
    if (o.qat_init == "gptq") {
      ASSIGN_OR_RETURN(std::string init, GptqStep(p, qat, o, fp, r, name, q4_0));
      if (!init.empty()) {
        qat_init = init;
        variants.push_back({"ptq-gptq-" + name, r, "ptq", format, o.out + "/ptq-gptq-" + name + ext});
      }
    }
    const int freeze = q4_0 ? FreezeCodesSteps(o) : 0;
    RETURN_IF_ERROR(QatStep(p, qat, o, ri, r, "qat-" + name, qat_init, fp, 0, freeze, &runs));
    variants.push_back({"qat-" + name, r, "qat", format, o.out + "/qat-" + name + ext});
    for (int k = 1; k < o.qat_seeds; ++k) {
      const std::string sname = absl::StrCat("qat-", name, "-seed", o.seed + k);
      RETURN_IF_ERROR(QatStep(p, qat, o, ri, r, sname, qat_init, fp, k, freeze, nullptr));
      variants.push_back({sname, r, "qat", format, o.out + "/" + sname + ext, o.seed + k});
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
    std::vector<std::string> eval = {qat_run, "perplexity", "--model", v.file, "--file", eval_file, "--json"};
    if (o.ctx > 0) eval.insert(eval.end(), {"--ctx", std::to_string(o.ctx)});
    ASSIGN_OR_RETURN(std::string out, p.Run("eval-" + v.name, eval, true));
    ASSIGN_OR_RETURN(json j, ParseJsonOutput("eval-" + v.name, out));
    res.ppl_runtime = j.value("ppl", NAN);
    res.tokens = j.value("tokens", 0);
    res.ctx = j.value("ctx", 0);
    if (j.contains("chunk_nll")) res.chunk_nll = j["chunk_nll"].get<std::vector<double>>();
    if (o.llamacpp && v.format == "gguf" && v.seed == 0 && PathExists(node_script)) {
      // interop.mjs computes llama.cpp's perplexity with llama-perplexity's chunking.
      const std::string expect = o.out + "/.done/llamacpp-" + v.name + ".expect.json";
      json e = {{"perplexity", {{"text_file", AbsolutePath(eval_file)},
                                {"ctx", res.ctx}, {"ppl", nullptr}}}};
      RETURN_IF_ERROR(WriteFileAtomic(expect, e.dump() + "\n"));
      std::vector<std::string> lc = {"node", node_script, "--model", v.file, "--expect", expect};
      ASSIGN_OR_RETURN(std::string lout, p.Run("llamacpp-" + v.name, lc, true));
      ASSIGN_OR_RETURN(json lj, ParseJsonOutput("llamacpp-" + v.name, lout));
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
  ro.settings = {{"steps", o.steps}, {"pretrain_steps", o.base.empty() ? o.pretrain_steps : 0},
                 {"pretrain_lr", o.pretrain_lr},
                 {"lr", o.lr}, {"qat_lr", qat_lrs}, {"batch", o.batch}, {"kd_alpha", o.kd_alpha}, {"qat_init", o.qat_init},
                 {"gptq_calib_batches", o.qat_init == "gptq" ? json(o.gptq_calib_batches) : json(nullptr)},
                 {"gptq_awq", o.qat_init == "gptq" ? json(o.awq) : json(nullptr)},
                 {"gptq_calib", o.qat_init == "gptq" ? json(o.gptq_calib) : json(nullptr)},
                 {"gptq_recon_steps", o.qat_init == "gptq" ? json(o.recon_steps) : json(nullptr)},
                 {"freeze_codes_steps", FreezeCodesSteps(o)}, {"freeze_scale_lr", o.freeze_scale_lr}, {"seed", o.seed},
                 {"qat_seeds", o.qat_seeds},
                 {"base", base}, {"data", o.data}, {"eval_file", eval_file}};
  return WriteCompareReport(ro, results);
}

}  // namespace

absl::Status CompareCommand(int argc, char** argv) {
  cxxopts::Options opts("qat compare",
                        "QAT vs PTQ with one shared fine-tuning budget: FP fine-tune, PTQ and QAT per "
                        "recipe, export, perplexity in qat-run and llama.cpp; writes OUT/results.json, "
                        "OUT/results.md and plots. Re-running with the same flags resumes where it "
                        "stopped; with a changed flag it stops and names the step.");
  CompareOptions o;
  std::string recipes, qat_lr;
  opts.add_options()
      ("data", "data DIR (train.txt, valid.txt, test.txt; tokenizer.model is trained if absent)", cxxopts::value(o.data))
      ("out", "output DIR", cxxopts::value(o.out))
      ("base", "base full-precision checkpoint", cxxopts::value(o.base))
      ("config", "model config to pretrain a base from (instead of --base)", cxxopts::value(o.config))
      ("recipes", "comma-separated recipe files", cxxopts::value(recipes))
      ("pretrain-steps", "steps to pretrain the base (with --config)", cxxopts::value(o.pretrain_steps)->default_value("3000"))
      ("pretrain-lr", "peak learning rate of the pretraining (cosine)", cxxopts::value(o.pretrain_lr)->default_value("3e-3"))
      ("steps", "fine-tuning budget, the same for FP and each QAT run", cxxopts::value(o.steps)->default_value("600"))
      ("batch", "sequences per step", cxxopts::value(o.batch)->default_value("16"))
      ("seq", "training sequence length (0: model context)", cxxopts::value(o.seq)->default_value("0"))
      ("lr", "FP fine-tuning learning rate (and QAT's unless --qat-lr)", cxxopts::value(o.lr)->default_value("3e-4"))
      ("qat-lr", "QAT learning rate: one value, or one per recipe (comma-separated, in --recipes order; default: --lr)", cxxopts::value(qat_lr))
      ("kd-alpha", "distillation weight in the QAT loss (1 = pure KD)", cxxopts::value(o.kd_alpha)->default_value("1.0"))
      ("qat-init", "QAT starts from: gptq (GPTQ rounding of fp, then block reconstruction, for recipes with q4_0 "
                   "weights, which adds the ptq-gptq-R baseline; fp for the others), fp (the FP fine-tune, also "
                   "the teacher), or base",
       cxxopts::value(o.qat_init)->default_value("gptq"))
      ("gptq-calib", "--qat-init gptq: the split, train or valid, that GPTQ and block reconstruction calibrate on",
       cxxopts::value(o.gptq_calib)->default_value("train"))
      ("gptq-calib-batches", "--qat-init gptq: GPTQ calibration batches of --batch x --seq",
       cxxopts::value(o.gptq_calib_batches)->default_value("15"))
      ("recon-steps", "--qat-init gptq: after GPTQ, each decoder layer trains N steps to reproduce the FP "
                      "layer's output (qat quantize --recon-steps, its other --recon-* flags at their defaults; 0: GPTQ only)",
       cxxopts::value(o.recon_steps)->default_value("600"))
      ("freeze-codes-steps", "recipes with q4_0 weights: the last N of the --steps QAT steps keep the q4_0 codes "
                             "and train only the block scales and the unquantized parameters (qat train "
                             "--freeze-codes, continuing the first --steps - N); -1: --steps/5; 0: off",
       cxxopts::value(o.freeze_codes_steps)->default_value("-1"))
      ("freeze-scale-lr", "the block scales' peak LR in the --freeze-codes-steps steps",
       cxxopts::value(o.freeze_scale_lr)->default_value("1e-5"))
      ("awq", "--qat-init gptq: AWQ's activation-aware input scaling before GPTQ (qat quantize --awq)",
       cxxopts::value(o.awq))
      ("eval-file", "evaluation text (default DATA/test.txt)", cxxopts::value(o.eval_file))
      ("ctx", "evaluation context (0: min(512, model context))", cxxopts::value(o.ctx)->default_value("0"))
      ("vocab", "tokenizer vocabulary size when DATA has none", cxxopts::value(o.vocab)->default_value("4096"))
      ("seed", "seed for training and bootstrap", cxxopts::value(o.seed)->default_value("1"))
      ("qat-seeds", "QAT runs per recipe, seeds --seed.. (N > 1: the report adds the recovered fraction's mean, its 95% interval over seeds and chunks, and its range; the extra runs are evaluated in qat-run only)", cxxopts::value(o.qat_seeds)->default_value("1"))
      ("bootstrap", "bootstrap resamples over evaluation chunks", cxxopts::value(o.bootstrap)->default_value("1000"))
      ("no-llamacpp", "skip the llama.cpp perplexity of GGUF files")
      ("qat-run", "path of the qat-run binary", cxxopts::value(o.qat_run))
      ("node-script", "llama.cpp interop script", cxxopts::value(o.node_script));
  ASSIGN_OR_RETURN(cxxopts::ParseResult r, ParseFlags(opts, argc, argv));
  RETURN_IF_ERROR(Require(r, "data", "compare"));
  RETURN_IF_ERROR(Require(r, "out", "compare"));
  if (o.base.empty() == o.config.empty()) {
    return absl::InvalidArgumentError("give exactly one of --base CKPT or --config MODEL.json");
  }
  if (recipes.empty()) return absl::InvalidArgumentError("missing --recipes R1.json[,R2.json]");
  o.recipes = absl::StrSplit(recipes, ',', absl::SkipEmpty());
  for (absl::string_view v : absl::StrSplit(qat_lr, ',', absl::SkipEmpty())) {
    double lr = 0;
    if (!absl::SimpleAtod(v, &lr) || !(lr > 0)) {
      return absl::InvalidArgumentError(absl::StrCat("--qat-lr: '", v, "' is not a positive number"));
    }
    o.qat_lr.push_back(lr);
  }
  if (o.qat_lr.size() > 1 && o.qat_lr.size() != o.recipes.size()) {
    return absl::InvalidArgumentError(absl::StrCat("--qat-lr has ", o.qat_lr.size(), " values for ",
                                                   o.recipes.size(), " recipes (give one, or one per recipe)"));
  }
  for (const std::string& rp : o.recipes) {
    if (!PathExists(rp)) return absl::InvalidArgumentError(absl::StrCat("recipe file not found: ", rp));
  }
  if (o.steps <= 0 || o.batch <= 0) return absl::InvalidArgumentError("--steps and --batch must be positive");
  if (o.qat_seeds < 1 || o.qat_seeds > 100) {
    return absl::InvalidArgumentError(absl::StrCat("--qat-seeds must be in 1..100, got ", o.qat_seeds));
  }
  if (o.qat_init != "fp" && o.qat_init != "base" && o.qat_init != "gptq") {
    return absl::InvalidArgumentError(absl::StrCat("--qat-init must be fp, base or gptq, got '", o.qat_init, "'"));
  }
  if (o.gptq_calib_batches < 1) return absl::InvalidArgumentError("--gptq-calib-batches must be positive");
  if (o.gptq_calib != "train" && o.gptq_calib != "valid") {
    return absl::InvalidArgumentError(absl::StrCat("--gptq-calib must be train or valid, got '", o.gptq_calib, "'"));
  }
  if (o.recon_steps < 0) return absl::InvalidArgumentError("--recon-steps must be >= 0");
  if (o.freeze_codes_steps < -1 || FreezeCodesSteps(o) >= o.steps) {
    return absl::InvalidArgumentError(absl::StrCat("--freeze-codes-steps must be in 0..", o.steps - 1,
                                                   " (fewer than --steps), got ", o.freeze_codes_steps));
  }
  if (!(o.freeze_scale_lr > 0)) return absl::InvalidArgumentError("--freeze-scale-lr must be positive");
  if (o.awq && o.qat_init != "gptq") return absl::InvalidArgumentError("--awq needs --qat-init gptq");
  o.llamacpp = r.count("no-llamacpp") == 0;
  return RunCompare(o);
}

}  // namespace qatk::cli
