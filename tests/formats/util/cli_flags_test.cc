// Flags declared once (formats/util/cli_flags.h): parsing into the members,
// defaults from their initial values, required flags, --help and the echo.
#include "formats/util/cli_flags.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace qatk::cli {
namespace {

struct TestArgs {
  std::string data;
  int steps = 600;
  double lr = 3e-4;
  std::string mode = "gptq";
  std::vector<std::string> files;
  bool fast = false;

  template <typename Visitor>
  void ForEach(Visitor&& v) {
    v(data, "data", "data DIR", kRequired | kEcho);
    v(steps, "steps", "steps to run", kShowDefault | kEcho);
    v(lr, "lr", "learning rate", kShowDefault);
    v(mode, "mode", "gptq or fp", kShowDefault | kEcho);
    v(files, "files", "input files");
    v(fast, "fast", "skip the slow parts", kEcho);
  }
};

absl::StatusOr<cxxopts::ParseResult> Parse(TestArgs& a, std::vector<std::string> args) {
  args.insert(args.begin(), "test");
  std::vector<char*> argv;
  for (std::string& s : args) argv.push_back(s.data());
  cxxopts::Options opts("test", "a test command");
  return ParseArgs(a, opts, static_cast<int>(argv.size()), argv.data(), "test");
}

TEST(CliFlagsTest, ParsesIntoMembersAndKeepsDefaults) {
  TestArgs a;
  auto r = Parse(a, {"--data", "d", "--lr", "0.5", "--files", "x,y", "--fast"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(a.data, "d");
  EXPECT_EQ(a.steps, 600);
  EXPECT_EQ(a.lr, 0.5);
  EXPECT_EQ(a.mode, "gptq");
  EXPECT_EQ(a.files, (std::vector<std::string>{"x", "y"}));
  EXPECT_TRUE(a.fast);
  EXPECT_EQ(r->count("steps"), 0u);
  const nlohmann::json echo = EchoArgs(a);
  EXPECT_EQ(echo, nlohmann::json({{"data", "d"}, {"steps", 600}, {"mode", "gptq"}, {"fast", true}}));
}

TEST(CliFlagsTest, RequiredAndBadFlagsAreInvalidArgument) {
  TestArgs a;
  auto missing = Parse(a, {"--steps", "3"});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(missing.status().message(), "missing required flag --data (see qat test --help)");
  TestArgs b;
  EXPECT_EQ(Parse(b, {"--data", "d", "--steps", "many"}).status().code(), absl::StatusCode::kInvalidArgument);
  TestArgs c;
  EXPECT_EQ(Parse(c, {"--data", "d", "--no-such-flag"}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CliFlagsTest, HelpShowsTheMembersDefaults) {
  TestArgs a;
  cxxopts::Options opts("test", "a test command");
  a.ForEach(internal::AddFlag{opts.add_options()});
  const std::string help = opts.help();
  EXPECT_NE(help.find("steps to run (default: 600)"), std::string::npos) << help;
  EXPECT_NE(help.find("learning rate (default: 3e-4)"), std::string::npos) << help;
  EXPECT_NE(help.find("gptq or fp (default: gptq)"), std::string::npos) << help;
  EXPECT_EQ(help.find("data DIR (default"), std::string::npos) << help;
  EXPECT_EQ(help.find("skip the slow parts (default"), std::string::npos) << help;
}

TEST(CliFlagsTest, DefaultsAreWrittenAsTheDocsWriteThem) {
  EXPECT_EQ(FormatFlagDefault(3e-3), "3e-3");
  EXPECT_EQ(FormatFlagDefault(1e-5), "1e-5");
  EXPECT_EQ(FormatFlagDefault(2.5e-4), "2.5e-4");
  EXPECT_EQ(FormatFlagDefault(1.0), "1.0");
  EXPECT_EQ(FormatFlagDefault(0.0), "0.0");
  EXPECT_EQ(FormatFlagDefault(0.01), "0.01");
  EXPECT_EQ(FormatFlagDefault(0.95), "0.95");
  EXPECT_EQ(FormatFlagDefault(-1), "-1");
  EXPECT_EQ(FormatFlagDefault(uint64_t{1234}), "1234");
  EXPECT_EQ(FormatFlagDefault(std::string()), "\"\"");
  EXPECT_EQ(FormatFlagDefault(std::string("auto")), "auto");
}

}  // namespace
}  // namespace qatk::cli
