// A resumable pipeline of child processes (qat compare's steps): each step
// is one command whose completion, arguments and captured stdout are
// recorded in OUT/.done/, so that running the pipeline again skips the steps
// already done with the same arguments and stops at a step whose arguments
// changed. No LibTorch.
#ifndef QATK_QAT_EVAL_PIPELINE_H_
#define QATK_QAT_EVAL_PIPELINE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace qatk::qat {

class Pipeline {
 public:
  // Records in out/.done/ (which must exist); logs "[tag] step ..." lines on stderr.
  Pipeline(std::string out, std::string tag);

  // Runs argv unless `step` is already done; returns its stdout when
  // `capture` (also when resumed), else "". A step done with other
  // arguments (argv[1..]: the program's own path may change, e.g. with
  // another build folder) is kFailedPrecondition naming both argument
  // lists; a command that exits non-zero is kInternal.
  absl::StatusOr<std::string> Run(const std::string& step, const std::vector<std::string>& argv, bool capture);

  // OUT/.done/<step>: the marker of a finished step.
  std::string Marker(const std::string& step) const { return out_ + "/.done/" + step; }

 private:
  std::string out_, tag_;
};

// The JSON object a step printed as the last non-empty line of its stdout
// (kInternal naming the step when there is none).
absl::StatusOr<nlohmann::json> ParseStepJson(const std::string& step, const std::string& out);

}  // namespace qatk::qat

#endif  // QATK_QAT_EVAL_PIPELINE_H_
