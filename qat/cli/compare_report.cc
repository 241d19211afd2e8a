#include "qat/cli/compare_report.h"

#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "formats/util/file_io.h"
#include "formats/util/status_macros.h"
#include "formats/util/subprocess.h"

namespace qatk::cli {
namespace {

using json = nlohmann::json;

json NumOrNull(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

std::string Fmt(double v, const char* f = "%.3f") {
  return std::isfinite(v) ? absl::StrFormat(f, v) : std::string("–");
}

const VariantResult* FindByName(const std::vector<VariantResult>& rs, const std::string& name) {
  for (const VariantResult& r : rs) {
    if (r.name == name) return &r;
  }
  return nullptr;
}

std::string PlotScript() {
#ifdef QATK_SOURCE_DIR
  return std::string(QATK_SOURCE_DIR) + "/scripts/plot_compare.py";
#else
  return "scripts/plot_compare.py";
#endif
}

}  // namespace

absl::Status WriteCompareReport(const ReportOptions& o, const std::vector<VariantResult>& results) {
  const VariantResult* fp = FindByName(results, "fp");
  const bool multi_seed = std::any_of(results.begin(), results.end(), [](const VariantResult& v) { return v.seed != 0; });
  json variants = json::array();
  std::string md = absl::StrCat(
      "| variant | method | format | size (MiB) | PPL qat-run | PPL llama.cpp | Δ vs FP | KL vs FP | 99% KL | "
      "top-1 vs FP | recovered [95% CI] |",
      multi_seed ? " recovered over seeds: mean [95% CI] (n), range |" : "", "\n",
      "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|", multi_seed ? "---|" : "", "\n");
  // The GPTQ start ran AWQ's input scaling first (compare --awq).
  const json awq = o.settings.is_object() ? o.settings.value("gptq_awq", json()) : json();
  // ... and block reconstruction after GPTQ (compare --recon-steps).
  const json recon = o.settings.is_object() ? o.settings.value("gptq_recon_steps", json()) : json();
  const std::string gptq = absl::StrCat(awq.is_boolean() && awq.get<bool>() ? "AWQ+GPTQ" : "GPTQ",
                                        recon.is_number_integer() && recon.get<int>() > 0 ? "+recon" : "");
  for (const VariantResult& v : results) {
    if (v.seed != 0) continue;  // reported with its variant below
    qat::Recovered rec;
    const VariantResult* ptq = nullptr;
    // qat-R and ptq-gptq-R (what GPTQ alone recovers) are measured against
    // the round-to-nearest ptq-R.
    const bool gptq_ptq = v.method == "ptq" && v.name.rfind("ptq-gptq-", 0) == 0;
    const bool has_rec = v.method == "qat" || gptq_ptq;
    if (has_rec && fp) {
      ptq = FindByName(results, "ptq-" + v.name.substr(gptq_ptq ? 9 : 4));
      if (ptq) rec = qat::ComputeRecovered(fp->scores(), ptq->scores(), v.scores(), o.bootstrap, o.seed);
    }
    const VariantResult* ptq_gptq = v.method == "qat" ? FindByName(results, "ptq-gptq-" + v.name.substr(4)) : nullptr;
    // This variant's runs with other seeds.
    json seeds = json::array();
    std::vector<double> seed_rec;
    std::vector<qat::EvalScores> seed_runs;
    qat::Recovered seed_mean;
    if (v.method == "qat" && fp && ptq) {
      seeds.push_back({{"seed", o.seed}, {"file", v.file}, {"ppl_runtime", NumOrNull(v.ppl_runtime)},
                       {"recovered", NumOrNull(rec.value)}});
      seed_rec.push_back(rec.value);
      seed_runs.push_back(v.scores());
      for (const VariantResult& s : results) {
        if (s.seed == 0 || s.name != absl::StrCat(v.name, "-seed", s.seed)) continue;
        const double r =
            qat::ComputeRecovered(fp->scores(), ptq->scores(), s.scores(), /*resamples=*/0, 0).value;  // point value
        seeds.push_back({{"seed", s.seed}, {"file", s.file}, {"ppl_runtime", NumOrNull(s.ppl_runtime)},
                         {"recovered", NumOrNull(r)}});
        seed_rec.push_back(r);
        seed_runs.push_back(s.scores());
      }
      seed_mean = qat::ComputeMeanRecovered(fp->scores(), ptq->scores(), seed_runs, o.bootstrap, o.seed);
    }
    const qat::SeedSpread spread = qat::ComputeSeedSpread(seed_rec);
    const double delta = fp ? v.ppl_runtime / fp->ppl_runtime - 1.0 : NAN;
    json j = {{"name", v.name}, {"recipe", v.recipe.empty() ? json(nullptr) : json(v.recipe)},
              {"method", v.method}, {"format", v.format}, {"file", v.file}, {"bytes", v.bytes},
              {"ppl_runtime", NumOrNull(v.ppl_runtime)}, {"ppl_llamacpp", NumOrNull(v.ppl_llamacpp)},
              {"delta_vs_fp", NumOrNull(delta)}, {"kl_mean", NumOrNull(v.kl_mean)},
              {"kl_p99", NumOrNull(v.kl_p99)}, {"top1", NumOrNull(v.top1)}, {"tokens", v.tokens}, {"ctx", v.ctx},
              {"recovered", has_rec ? NumOrNull(rec.value) : json(nullptr)},
              {"recovered_ci95", has_rec && std::isfinite(rec.lo)
                                     ? json::array({rec.lo, rec.hi}) : json(nullptr)}};
    if (v.method == "qat") {
      // QAT started from GPTQ's rounding (--qat-init gptq): that PTQ's perplexity.
      j["ppl_ptq_gptq"] = ptq_gptq ? NumOrNull(ptq_gptq->ppl_runtime) : json(nullptr);
      j["seeds"] = seeds;
      j["recovered_seeds"] = {{"n", spread.n}, {"mean", NumOrNull(spread.mean)}, {"min", NumOrNull(spread.min)},
                              {"max", NumOrNull(spread.max)},
                              {"mean_ci95", std::isfinite(seed_mean.lo) ? json::array({seed_mean.lo, seed_mean.hi})
                                                                        : json(nullptr)}};
    }
    variants.push_back(j);
    std::string rec_s = !has_rec ? "" :
        absl::StrCat(Fmt(100 * rec.value, "%.1f%%"),
                     std::isfinite(rec.lo) ? absl::StrFormat(" [%.1f%%, %.1f%%]", 100 * rec.lo, 100 * rec.hi) : "",
                     gptq_ptq ? absl::StrCat(" (", gptq, " alone)") : "",
                     ptq_gptq ? absl::StrCat(" (from ", gptq, ", PTQ ", Fmt(ptq_gptq->ppl_runtime), ")") : "");
    absl::StrAppend(&md, "| ", v.name, " | ", v.method, " | ", v.format, " | ",
                    Fmt(v.bytes / 1048576.0, "%.2f"), " | ", Fmt(v.ppl_runtime), " | ",
                    Fmt(v.ppl_llamacpp), " | ", Fmt(100 * delta, "%+.2f%%"), " | ", Fmt(v.kl_mean, "%.5f"), " | ",
                    Fmt(v.kl_p99, "%.5f"), " | ", Fmt(100 * v.top1, "%.1f%%"), " | ", rec_s, " |");
    if (multi_seed) {
      std::string cell;
      if (v.method == "qat" && spread.n > 0) {
        cell = absl::StrCat(Fmt(100 * spread.mean, "%.1f%%"),
                            std::isfinite(seed_mean.lo)
                                ? absl::StrFormat(" [%.1f%%, %.1f%%]", 100 * seed_mean.lo, 100 * seed_mean.hi) : "",
                            absl::StrFormat(" (%d), %.1f-%.1f%%", spread.n, 100 * spread.min, 100 * spread.max));
      }
      absl::StrAppend(&md, " ", cell, " |");
    }
    absl::StrAppend(&md, "\n");
  }
  json runs = json::array();
  for (const TrainingRun& t : o.runs) {
    runs.push_back({{"name", t.name}, {"metrics", t.metrics}, {"step_offset", t.step_offset}});
  }
  json doc = {{"variants", variants}, {"runs", runs}, {"settings", o.settings},
              {"recovered_definition", "(ppl_ptq - ppl_qat) / (ppl_ptq - ppl_fp), qat-run perplexity on the test split; "
                                       "95% CI from a paired bootstrap over evaluation chunks; recovered_seeds: "
                                       "mean and range over the QAT runs with different seeds (--qat-seeds), and "
                                       "mean_ci95 from a bootstrap that redraws both the runs and the chunks; "
                                       "kl_mean, kl_p99 and top1: KL(P_fp || P_variant) per scored position, its mean and 99th percentile, "
                                       "and the share of positions whose most likely token agrees, from qat-run perplexity --kl-base "
                                       "with the fp file; "
                                       "ptq-gptq-R (GPTQ rounding, then block reconstruction with --recon-steps; --qat-init gptq) is measured against the "
                                       "round-to-nearest ptq-R too, and ppl_ptq_gptq of a QAT variant names it"}};
  RETURN_IF_ERROR(WriteFileAtomic(o.out_dir + "/results.json", doc.dump(2) + "\n"));
  RETURN_IF_ERROR(WriteFileAtomic(o.out_dir + "/results.md", md));
  std::fprintf(stderr, "\n%s\n", md.c_str());
  auto plot = RunProcess({"/usr/bin/python3", PlotScript(), o.out_dir}, false);
  if (!plot.ok() || plot->exit_code != 0) {
    std::fprintf(stderr, "[compare] warning: plotting failed (is python3-matplotlib installed?)\n");
  } else {
    std::fprintf(stderr, "[compare] plots: %s/{loss_curves,ppl_bars,size_bars,kl_bars}.png\n", o.out_dir.c_str());
  }
  std::fprintf(stderr, "[compare] results: %s/results.json, %s/results.md\n", o.out_dir.c_str(),
               o.out_dir.c_str());
  return absl::OkStatus();
}

}  // namespace qatk::cli
