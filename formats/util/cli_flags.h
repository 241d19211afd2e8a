// cxxopts glue shared by the qat and qat-run subcommands (header-only: the
// core library does not link cxxopts): parse errors become
// kInvalidArgument, --help prints and returns HelpRequested() (exit 0).
//
// A command declares each flag once, in an Args struct whose members hold
// the values, initialised to the defaults, and whose ForEach names them:
//
//   struct Args {
//     std::string data;
//     int steps = 600;
//     template <class Visitor> void ForEach(Visitor&& v) {
//       v(data, "data", "data DIR", kRequired);
//       v(steps, "steps", "fine-tuning budget", kShowDefault | kEcho);
//     }
//     absl::Status Validate() const;  // checks across flags
//   };
//
// ParseArgs registers the flags (in ForEach order, which is --help's),
// parses into the members and checks the required ones; EchoArgs gives the
// kEcho flags as JSON (a run's settings). The defaults are the members'
// initial values, so --help shows the value the command uses. A bool member
// is a switch that cxxopts sets to false unless given: initialise it false
// and name the flag for the non-default case (--no-progress).
#ifndef QATK_FORMATS_UTIL_CLI_FLAGS_H_
#define QATK_FORMATS_UTIL_CLI_FLAGS_H_

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cxxopts.hpp"
#include "formats/util/cli.h"
#include "nlohmann/json.hpp"

namespace qatk::cli {

inline absl::StatusOr<cxxopts::ParseResult> ParseFlags(cxxopts::Options& opts, int argc, char** argv) {
  opts.add_options()("h,help", "show this help");
  try {
    cxxopts::ParseResult r = opts.parse(argc, argv);
    if (r.count("help")) {
      std::cout << opts.help() << std::endl;
      return HelpRequested();
    }
    return r;
  } catch (const cxxopts::exceptions::exception& e) {
    return absl::InvalidArgumentError(e.what());
  }
}

// kInvalidArgument naming the flag when a required flag is absent.
inline absl::Status Require(const cxxopts::ParseResult& r, const char* flag, const char* command,
                            const char* program = "qat") {
  if (r.count(flag)) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("missing required flag --", flag, " (see ", program, " ", command, " --help)"));
}

// Attributes of a flag in an Args table (bitwise or).
enum FlagAttr : unsigned {
  kNoAttr = 0,
  kShowDefault = 1u << 0,  // --help appends "(default: X)"
  kRequired = 1u << 1,     // ParseArgs fails as Require does when absent
  kEcho = 1u << 2,         // in EchoArgs, keyed by the name with '-' -> '_'
};

// A default as --help shows it. Doubles as the docs write them: integral
// ones as "1.0", those below 0.01 in the shortest exponent form ("3e-4"),
// others in the shortest decimal form ("0.95").
inline std::string FormatFlagDefault(const std::string& v) { return v.empty() ? "\"\"" : v; }
inline std::string FormatFlagDefault(double v) {
  char buf[64];
  if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof(buf), "%.1f", v);
    return buf;
  }
  const bool exponent = v != 0 && std::fabs(v) < 0.01;
  for (int digits = exponent ? 0 : 1; digits <= 17; ++digits) {
    std::snprintf(buf, sizeof(buf), exponent ? "%.*e" : "%.*g", digits, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  if (!exponent) return buf;
  const std::string s = buf;  // "3e-04" -> "3e-4"
  const size_t e = s.find('e');
  return s.substr(0, e) + "e" + std::to_string(std::atoi(s.c_str() + e + 1));
}
inline std::string FormatFlagDefault(const std::vector<std::string>& v) { return absl::StrJoin(v, ","); }
template <typename T, typename = std::enable_if_t<std::is_integral_v<T>>>
std::string FormatFlagDefault(T v) {
  return std::to_string(v);
}

namespace internal {

struct AddFlag {
  cxxopts::OptionAdder adder;
  template <typename T>
  void operator()(T& member, const char* name, const char* help, unsigned attrs = kNoAttr) {
    std::string text = help;
    if (attrs & kShowDefault) absl::StrAppend(&text, " (default: ", FormatFlagDefault(member), ")");
    adder(name, text, cxxopts::value(member));
  }
};

struct RequireFlag {
  const cxxopts::ParseResult& result;
  const char* command;
  const char* program;
  absl::Status status;
  template <typename T>
  void operator()(T&, const char* name, const char*, unsigned attrs = kNoAttr) {
    if (status.ok() && (attrs & kRequired)) status = Require(result, name, command, program);
  }
};

struct EchoFlag {
  nlohmann::json& out;
  template <typename T>
  void operator()(T& member, const char* name, const char*, unsigned attrs = kNoAttr) {
    if (!(attrs & kEcho)) return;
    std::string key = name;
    for (char& c : key) c = c == '-' ? '_' : c;
    out[key] = member;
  }
};

}  // namespace internal

// Registers args' flags on opts, parses argv into its members and checks
// the kRequired ones (in ForEach order). Returns the parse result for
// commands that look at it further.
template <typename Args>
absl::StatusOr<cxxopts::ParseResult> ParseArgs(Args& args, cxxopts::Options& opts, int argc, char** argv,
                                               const char* command, const char* program = "qat") {
  args.ForEach(internal::AddFlag{opts.add_options()});
  auto r = ParseFlags(opts, argc, argv);
  if (!r.ok()) return r.status();
  internal::RequireFlag require{*r, command, program, absl::OkStatus()};
  args.ForEach(require);
  if (!require.status.ok()) return require.status;
  return r;
}

// The kEcho flags' values as one JSON object.
template <typename Args>
nlohmann::json EchoArgs(Args args) {
  nlohmann::json out = nlohmann::json::object();
  args.ForEach(internal::EchoFlag{out});
  return out;
}

}  // namespace qatk::cli

#endif  // QATK_FORMATS_UTIL_CLI_FLAGS_H_
