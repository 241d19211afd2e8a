#include "formats/util/cli.h"

#include <cstdio>
#include <cstring>
#include <exception>

namespace qatk::cli {

absl::Status HelpRequested() { return absl::CancelledError("help"); }

namespace {
void PrintUsage(const char* program, const char* about, const std::vector<Command>& commands) {
  std::printf("%s — %s\n\nUsage: %s <command> [flags]   (%s <command> --help for its flags)\n\nCommands:\n",
              program, about, program, program);
  for (const Command& c : commands) std::printf("  %-12s %s\n", c.name, c.summary);
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
    std::fprintf(stderr, "%s %s: error: %s\n", program, c.name, std::string(s.message()).c_str());
    return absl::IsInvalidArgument(s) ? 2 : 1;
  }
  std::fprintf(stderr, "%s: unknown command '%s'\n", program, argv[1]);
  PrintUsage(program, about, commands);
  return 2;
}

}  // namespace qatk::cli
