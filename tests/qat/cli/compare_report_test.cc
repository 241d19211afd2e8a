// The compare report: the recovered fraction, its paired bootstrap interval,
// and the spread over extra QAT seeds (--qat-seeds) in results.json / .md.
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

TEST(CompareReportTest, RecoveredAndItsInterval) {
  const VariantResult fp = Flat("fp", "fp", 100), ptq = Flat("ptq-x", "ptq", 110), qat = Flat("qat-x", "qat", 102);
  const Recovered r = ComputeRecovered(fp, ptq, qat, 200, 1);
  EXPECT_NEAR(r.value, 0.8, 1e-12);
  EXPECT_NEAR(r.lo, 0.8, 1e-9);
  EXPECT_NEAR(r.hi, 0.8, 1e-9);
  VariantResult noisy = qat;
  for (size_t i = 0; i < noisy.chunk_nll.size(); ++i) noisy.chunk_nll[i] += (i % 2 ? 0.01 : -0.01);
  const Recovered n = ComputeRecovered(fp, ptq, noisy, 200, 1);
  EXPECT_LT(n.lo, n.hi);
  VariantResult short_nll = qat;
  short_nll.chunk_nll.pop_back();
  EXPECT_TRUE(std::isnan(ComputeRecovered(fp, ptq, short_nll, 200, 1).lo));
}

// The mean over QAT runs: its interval widens with the spread between the
// runs (flat chunks) and with the noise of the chunks (identical runs).
TEST(CompareReportTest, MeanOverRunsHasAnIntervalFromRunsAndChunks) {
  const VariantResult fp = Flat("fp", "fp", 100), ptq = Flat("ptq-x", "ptq", 110);
  const VariantResult a = Flat("qat-x", "qat", 102), b = Flat("qat-x-seed2", "qat", 104, 2),
                      c = Flat("qat-x-seed3", "qat", 101, 3);
  const Recovered m = ComputeMeanRecovered(fp, ptq, {&a, &b, &c}, 500, 1);
  EXPECT_NEAR(m.value, (0.8 + 0.6 + 0.9) / 3, 1e-12);
  EXPECT_GE(m.lo, 0.6 - 1e-9);
  EXPECT_LT(m.lo, m.value);
  EXPECT_GT(m.hi, m.value);
  EXPECT_LE(m.hi, 0.9 + 1e-9);

  VariantResult noisy = a;
  for (size_t i = 0; i < noisy.chunk_nll.size(); ++i) noisy.chunk_nll[i] += (i % 2 ? 0.01 : -0.01);
  const Recovered same = ComputeMeanRecovered(fp, ptq, {&noisy, &noisy}, 500, 1);
  const Recovered one = ComputeRecovered(fp, ptq, noisy, 500, 1);
  EXPECT_NEAR(same.value, one.value, 1e-12);
  EXPECT_LT(same.lo, same.hi);
  EXPECT_NEAR(same.hi - same.lo, one.hi - one.lo, 0.25 * (one.hi - one.lo));

  EXPECT_TRUE(std::isnan(ComputeMeanRecovered(fp, ptq, {&a}, 500, 1).lo));  // one run: no interval
  VariantResult short_nll = b;
  short_nll.chunk_nll.pop_back();
  const Recovered unpaired = ComputeMeanRecovered(fp, ptq, {&a, &short_nll}, 500, 1);
  EXPECT_NEAR(unpaired.value, 0.7, 1e-12);
  EXPECT_TRUE(std::isnan(unpaired.lo));
}

TEST(CompareReportTest, SeedSpreadSkipsNonFinite) {
  const SeedSpread s = ComputeSeedSpread({0.7, NAN, 0.9, 0.8});
  EXPECT_EQ(s.n, 3);
  EXPECT_NEAR(s.mean, 0.8, 1e-12);
  EXPECT_EQ(s.min, 0.7);
  EXPECT_EQ(s.max, 0.9);
  EXPECT_EQ(ComputeSeedSpread({}).n, 0);
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
