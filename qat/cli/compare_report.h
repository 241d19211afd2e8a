// The report of `qat compare`: results.json, results.md, plots, and the
// recovered fraction with a paired bootstrap over evaluation chunks.
#ifndef QATK_QAT_CLI_COMPARE_REPORT_H_
#define QATK_QAT_CLI_COMPARE_REPORT_H_

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"

namespace qatk::cli {

struct VariantResult {
  std::string name, recipe, method, format, file;
  uint64_t bytes = 0;
  double ppl_runtime = NAN;
  double ppl_llamacpp = NAN;   // NaN: not measured
  int64_t tokens = 0;
  int ctx = 0;
  std::vector<double> chunk_nll;  // mean NLL of each evaluation chunk
  // 0, or the seed of an extra QAT run of the variant named "qat-R" (its own
  // name is "qat-R-seedS"): reported inside qat-R, not as a row of its own.
  int seed = 0;
};

// The recovered fraction over a QAT variant's runs (its own and its extra
// seeds'): point values only.
struct SeedSpread {
  int n = 0;
  double mean = NAN, min = NAN, max = NAN;
};
SeedSpread ComputeSeedSpread(const std::vector<double>& recovered);

struct Recovered {
  double value = NAN;            // (ppl_ptq - ppl_qat) / (ppl_ptq - ppl_fp)
  double lo = NAN, hi = NAN;     // 95% paired-bootstrap interval over chunks
};

// recovered for qat vs ptq against fp; the interval is NaN when the chunk
// NLLs are missing or of different lengths.
Recovered ComputeRecovered(const VariantResult& fp, const VariantResult& ptq, const VariantResult& qat,
                           int resamples, uint64_t seed);

// The mean recovered fraction over several QAT runs of one variant, with a
// 95% interval from a two-level bootstrap: each resample redraws the runs
// (with replacement) and the evaluation chunks (paired across every file),
// so the interval holds both the training noise between seeds and the
// sampling noise of the test text. The interval is NaN with fewer than two
// runs or when any chunk NLLs are missing or of different lengths.
Recovered ComputeMeanRecovered(const VariantResult& fp, const VariantResult& ptq,
                               const std::vector<const VariantResult*>& runs, int resamples, uint64_t seed);

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
