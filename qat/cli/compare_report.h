// The report of `qat compare`: results.json, results.md and plots, with the
// recovered fraction and its bootstrap intervals (qat/eval/recovered.h).
#ifndef QATK_QAT_CLI_COMPARE_REPORT_H_
#define QATK_QAT_CLI_COMPARE_REPORT_H_

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"
#include "qat/eval/recovered.h"

namespace qatk::cli {

struct VariantResult {
  std::string name, recipe, method, format, file;
  uint64_t bytes = 0;
  double ppl_runtime = NAN;
  double ppl_llamacpp = NAN;   // NaN: not measured
  // Against the FP variant's file (qat-run perplexity --kl-base); NaN: not measured.
  double kl_mean = NAN, kl_p99 = NAN, top1 = NAN;
  int64_t tokens = 0;
  int ctx = 0;
  std::vector<double> chunk_nll;  // mean NLL of each evaluation chunk
  // 0, or the seed of an extra QAT run of the variant named "qat-R" (its own
  // name is "qat-R-seedS"): reported inside qat-R, not as a row of its own.
  int seed = 0;

  qat::EvalScores scores() const { return {ppl_runtime, chunk_nll}; }
};

// One training run's loss curve for the plots: its metrics.jsonl, drawn
// from step_offset + 1 on (a second phase continues its first's curve).
struct TrainingRun {
  std::string name, metrics;
  int step_offset = 0;
};

struct ReportOptions {
  std::string out_dir;
  int bootstrap = 1000;
  int seed = 1;
  std::vector<TrainingRun> runs;
  nlohmann::json settings;
};

// Writes OUT/results.json and OUT/results.md, runs scripts/plot_compare.py
// (warning only if plotting fails), prints the table on stderr.
absl::Status WriteCompareReport(const ReportOptions& o, const std::vector<VariantResult>& results);

}  // namespace qatk::cli

#endif  // QATK_QAT_CLI_COMPARE_REPORT_H_
