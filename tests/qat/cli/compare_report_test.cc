// The compare report: the recovered fraction, its bootstrap intervals and
// the spread over extra QAT seeds (--qat-seeds) in results.json / .md (the
// statistics themselves: tests/qat/eval/recovered_test.cc).
#include "qat/cli/compare_report.h"

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "formats/util/file_io.h"
#include "gtest/gtest.h"

namespace qatk::cli {
namespace {

using json = nlohmann::json;

// A variant whose chunk NLLs all equal log(ppl), so every bootstrap sample
// gives the same recovered fraction.
VariantResult Flat(const std::string& name, const std::string& method, double ppl, int seed = 0) {
  VariantResult v;
  v.name = name;
  v.method = method;
  v.format = "gguf";
  v.file = name + ".gguf";
  v.ppl_runtime = ppl;
  v.chunk_nll.assign(20, std::log(ppl));
  v.seed = seed;
  return v;
}

TEST(CompareReportTest, ExtraSeedsAreReportedInsideTheirVariant) {
  char tmpl[] = "/tmp/qatk_compare_report_XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const std::vector<VariantResult> results = {
      Flat("fp", "fp", 100), Flat("ptq-x", "ptq", 110), Flat("qat-x", "qat", 102),
      Flat("qat-x-seed2", "qat", 104, 2), Flat("qat-x-seed3", "qat", 101, 3)};
  ReportOptions o;
  o.out_dir = dir;
  o.bootstrap = 50;
  ASSERT_TRUE(WriteCompareReport(o, results).ok());
  auto text = ReadFileToString(dir + "/results.json");
  ASSERT_TRUE(text.ok());
  const json j = json::parse(*text);
  ASSERT_EQ(j["variants"].size(), 3u);  // the extra seeds are not rows
  const json& q = j["variants"][2];
  EXPECT_EQ(q["name"], "qat-x");
  EXPECT_NEAR(q["recovered"].get<double>(), 0.8, 1e-12);
  ASSERT_EQ(q["seeds"].size(), 3u);
  EXPECT_EQ(q["seeds"][1]["seed"], 2);
  EXPECT_NEAR(q["seeds"][1]["recovered"].get<double>(), 0.6, 1e-12);
  EXPECT_EQ(q["recovered_seeds"]["n"], 3);
  EXPECT_NEAR(q["recovered_seeds"]["mean"].get<double>(), (0.8 + 0.6 + 0.9) / 3, 1e-12);
  EXPECT_NEAR(q["recovered_seeds"]["min"].get<double>(), 0.6, 1e-12);
  EXPECT_NEAR(q["recovered_seeds"]["max"].get<double>(), 0.9, 1e-12);
  const json& ci = q["recovered_seeds"]["mean_ci95"];
  ASSERT_EQ(ci.size(), 2u);
  EXPECT_LT(ci[0].get<double>(), ci[1].get<double>());
  auto md = ReadFileToString(dir + "/results.md");
  ASSERT_TRUE(md.ok());
  EXPECT_NE(md->find("recovered over seeds"), std::string::npos);
  EXPECT_NE(md->find(absl::StrFormat("76.7%% [%.1f%%, %.1f%%] (3), 60.0-90.0%%", 100 * ci[0].get<double>(),
                                     100 * ci[1].get<double>())),
            std::string::npos) << *md;
  EXPECT_EQ(md->find("seed2"), std::string::npos);
  std::system(("rm -rf " + dir).c_str());
}

TEST(CompareReportTest, OneSeedKeepsTheTableAsBefore) {
  char tmpl[] = "/tmp/qatk_compare_report_XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  ReportOptions o;
  o.out_dir = dir;
  o.bootstrap = 50;
  ASSERT_TRUE(WriteCompareReport(o, {Flat("fp", "fp", 100), Flat("ptq-x", "ptq", 110), Flat("qat-x", "qat", 102)}).ok());
  auto md = ReadFileToString(dir + "/results.md");
  ASSERT_TRUE(md.ok());
  EXPECT_EQ(md->find("over seeds"), std::string::npos);
  auto text = ReadFileToString(dir + "/results.json");
  ASSERT_TRUE(text.ok());
  const json j = json::parse(*text);
  EXPECT_EQ(j["variants"][2]["recovered_seeds"]["n"], 1);
  EXPECT_TRUE(j["variants"][2]["ppl_ptq_gptq"].is_null());  // no --qat-init gptq: no GPTQ perplexity
  std::system(("rm -rf " + dir).c_str());
}

// The KL figures against FP: new keys of each variant (null when not
// measured) and three columns of the table.
TEST(CompareReportTest, KlAgainstFpIsReported) {
  char tmpl[] = "/tmp/qatk_compare_report_XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  ReportOptions o;
  o.out_dir = dir;
  o.bootstrap = 50;
  std::vector<VariantResult> rs = {Flat("fp", "fp", 100), Flat("ptq-x", "ptq", 110), Flat("qat-x", "qat", 102)};
  rs[0].kl_mean = rs[0].kl_p99 = 0;
  rs[0].top1 = 1;
  rs[2].kl_mean = 0.0123;
  rs[2].kl_p99 = 0.25;
  rs[2].top1 = 0.875;
  ASSERT_TRUE(WriteCompareReport(o, rs).ok());
  auto text = ReadFileToString(dir + "/results.json");
  ASSERT_TRUE(text.ok());
  const json j = json::parse(*text);
  EXPECT_EQ(j["variants"][0]["kl_mean"].get<double>(), 0);
  EXPECT_EQ(j["variants"][0]["top1"].get<double>(), 1);
  EXPECT_TRUE(j["variants"][1]["kl_mean"].is_null());
  EXPECT_TRUE(j["variants"][1]["top1"].is_null());
  EXPECT_EQ(j["variants"][2]["kl_mean"].get<double>(), 0.0123);
  EXPECT_EQ(j["variants"][2]["kl_p99"].get<double>(), 0.25);
  EXPECT_EQ(j["variants"][2]["top1"].get<double>(), 0.875);
  EXPECT_TRUE(j["variants"][2].contains("ppl_runtime"));  // the earlier keys stay
  auto md = ReadFileToString(dir + "/results.md");
  ASSERT_TRUE(md.ok());
  EXPECT_NE(md->find("| KL vs FP | 99% KL | top-1 vs FP |"), std::string::npos) << *md;
  EXPECT_NE(md->find("| 0.01230 | 0.25000 | 87.5% |"), std::string::npos) << *md;
  std::system(("rm -rf " + dir).c_str());
}

// --qat-init gptq: ptq-gptq-x is a row of its own, measured against the
// round-to-nearest ptq-x like QAT, and QAT names its perplexity.
TEST(CompareReportTest, GptqBaselineIsMeasuredAgainstRoundToNearest) {
  char tmpl[] = "/tmp/qatk_compare_report_XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  ReportOptions o;
  o.out_dir = dir;
  o.bootstrap = 50;
  ASSERT_TRUE(WriteCompareReport(o, {Flat("fp", "fp", 100), Flat("ptq-x", "ptq", 110),
                                     Flat("ptq-gptq-x", "ptq", 106), Flat("qat-x", "qat", 102)}).ok());
  auto text = ReadFileToString(dir + "/results.json");
  ASSERT_TRUE(text.ok());
  const json j = json::parse(*text);
  ASSERT_EQ(j["variants"].size(), 4u);
  EXPECT_TRUE(j["variants"][1]["recovered"].is_null());  // ptq-x itself
  const json& g = j["variants"][2];
  EXPECT_EQ(g["name"], "ptq-gptq-x");
  EXPECT_NEAR(g["recovered"].get<double>(), 0.4, 1e-12);
  const json& q = j["variants"][3];
  EXPECT_NEAR(q["recovered"].get<double>(), 0.8, 1e-12);  // still against ptq-x
  EXPECT_NEAR(q["ppl_ptq_gptq"].get<double>(), 106, 1e-12);
  auto md = ReadFileToString(dir + "/results.md");
  ASSERT_TRUE(md.ok());
  EXPECT_NE(md->find("40.0% [40.0%, 40.0%] (GPTQ alone)"), std::string::npos) << *md;
  EXPECT_NE(md->find("(from GPTQ, PTQ 106.000)"), std::string::npos) << *md;
  // The rows name what ran before GPTQ's rounding and after it.
  auto md_with = [&](const json& settings) {
    o.settings = settings;
    EXPECT_TRUE(WriteCompareReport(o, {Flat("fp", "fp", 100), Flat("ptq-x", "ptq", 110),
                                       Flat("ptq-gptq-x", "ptq", 106), Flat("qat-x", "qat", 102)}).ok());
    auto text = ReadFileToString(dir + "/results.md");
    return text.ok() ? *text : std::string();
  };
  const std::string awq = md_with({{"gptq_awq", true}});  // compare --awq
  EXPECT_NE(awq.find("(AWQ+GPTQ alone)"), std::string::npos) << awq;
  EXPECT_NE(awq.find("(from AWQ+GPTQ, PTQ 106.000)"), std::string::npos) << awq;
  const std::string recon = md_with({{"gptq_awq", false}, {"gptq_recon_steps", 600}});  // compare --recon-steps 600
  EXPECT_NE(recon.find("(GPTQ+recon alone)"), std::string::npos) << recon;
  EXPECT_NE(recon.find("(from GPTQ+recon, PTQ 106.000)"), std::string::npos) << recon;
  const std::string off = md_with({{"gptq_awq", false}, {"gptq_recon_steps", 0}});
  EXPECT_NE(off.find("(from GPTQ, PTQ 106.000)"), std::string::npos) << off;
  std::system(("rm -rf " + dir).c_str());
}

}  // namespace
}  // namespace qatk::cli
