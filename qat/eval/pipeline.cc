#include "qat/eval/pipeline.h"

#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "formats/util/cli.h"
#include "formats/util/file_io.h"
#include "formats/util/status_macros.h"
#include "formats/util/subprocess.h"

namespace qatk::qat {

Pipeline::Pipeline(std::string out, std::string tag) : out_(std::move(out)), tag_(std::move(tag)) {}

absl::StatusOr<std::string> Pipeline::Run(const std::string& step, const std::vector<std::string>& argv,
                                          bool capture) {
  const std::string cached = Marker(step), command = ShellJoin(argv);
  const std::string args = ShellJoin(std::vector<std::string>(argv.begin() + 1, argv.end()));
  if (PathExists(cached)) {
    absl::StatusOr<std::string> before = ReadFileToString(cached + ".args");
    if (before.ok() && *before != args) {
      return absl::FailedPreconditionError(absl::StrCat(
          "step '", step, "' in ", out_, " was run with\n  ", *before, "\nand would now run with\n  ", args,
          "\nuse a new --out, or delete ", out_, " to start again"));
    }
    std::fprintf(stderr, "[%s] %-18s done (resumed)\n", tag_.c_str(), step.c_str());
    return ReadFileToString(cached);
  }
  std::fprintf(stderr, "[%s] %-18s %s\n", tag_.c_str(), step.c_str(), command.c_str());
  ASSIGN_OR_RETURN(ProcessResult r, RunProcess(argv, capture));
  if (r.exit_code == 130) {
    // Ctrl-C: the step saved what it had (or had nothing to save); the same
    // command resumes from the last finished step.
    return cli::Interrupted(absl::StrCat("interrupted during step '", step, "'; run the same command again to resume"));
  }
  if (r.exit_code != 0) {
    return absl::InternalError(absl::StrCat("step '", step, "' failed (exit ", r.exit_code, "): ", command));
  }
  RETURN_IF_ERROR(WriteFileAtomic(cached + ".args", args));
  RETURN_IF_ERROR(WriteFileAtomic(cached, r.out));
  return r.out;
}

absl::StatusOr<nlohmann::json> ParseStepJson(const std::string& step, const std::string& out) {
  std::vector<std::string> lines = absl::StrSplit(out, '\n', absl::SkipWhitespace());
  if (lines.empty()) return absl::InternalError(absl::StrCat("step '", step, "' printed no JSON"));
  nlohmann::json j = nlohmann::json::parse(lines.back(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InternalError(absl::StrCat("step '", step, "' printed invalid JSON: ", lines.back()));
  }
  return j;
}

}  // namespace qatk::qat
