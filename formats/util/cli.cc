#include "formats/util/cli.h"

#include <cstdio>
#include <cstring>
#include <exception>

#include "absl/strings/cord.h"

namespace qatk::cli {

absl::Status HelpRequested() { return absl::CancelledError("help"); }

namespace {
constexpr char kInterruptedPayload[] = "qatk/interrupted";
}  // namespace

absl::Status Interrupted(const std::string& message) {
  absl::Status s = absl::AbortedError(message);
  s.SetPayload(kInterruptedPayload, absl::Cord("1"));
  return s;
}

bool IsInterrupted(const absl::Status& s) { return s.GetPayload(kInterruptedPayload).has_value(); }

namespace {
void PrintUsage(const char* program, const char* about, const std::vector<Command>& commands) {
  std::printf("%s — %s\n\nUsage: %s <command> [flags]   (%s <command> --help for its flags)\n\nCommands:\n",
              program, about, program, program);
  for (const Command& c : commands) std::printf("  %-12s %s\n", c.name, c.summary);
  std::printf("\nExit status: 0 finished, 1 error, 2 bad usage, 130 interrupted (Ctrl-C) after a clean save.\n"
              "A command that writes an output holds <output>.lock while it runs: a second writer\n"
              "of the same output fails at once, naming the holder's pid.\n");
}
}  // namespace

int Main(const char* program, const char* about, const std::vector<Command>& commands,
         int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0 ||
      std::strcmp(argv[1], "help") == 0) {
    PrintUsage(program, about, commands);
    return argc < 2 ? 2 : 0;
  }
  for (const Command& c : commands) {
    if (std::strcmp(argv[1], c.name) != 0) continue;
    absl::Status s;
    try {
      s = c.run(argc - 1, argv + 1);
    } catch (const std::exception& e) {
      s = absl::InternalError(e.what());
    }
    if (s.ok() || absl::IsCancelled(s)) return 0;
    if (IsInterrupted(s)) {
      std::fprintf(stderr, "%s %s: %s\n", program, c.name, std::string(s.message()).c_str());
      return 130;
    }
    std::fprintf(stderr, "%s %s: error: %s\n", program, c.name, std::string(s.message()).c_str());
    return absl::IsInvalidArgument(s) ? 2 : 1;
  }
  std::fprintf(stderr, "%s: unknown command '%s'\n", program, argv[1]);
  PrintUsage(program, about, commands);
  return 2;
}

}  // namespace qatk::cli
