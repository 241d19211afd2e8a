// qat-run bench: prefill and decode tokens/s (median of --reps) and peak RSS.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <random>

#include "absl/strings/str_format.h"
#include "formats/util/status_macros.h"
#include "inference/cli/commands.h"
#include "inference/cli/run_common.h"
#include "nlohmann/json.hpp"

namespace qatk::cli {
namespace {

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

}  // namespace

absl::Status BenchCommand(int argc, char** argv) {
  cxxopts::Options opts("bench", "prefill / decode speed and peak memory");
  AddModelFlags(opts, 4096);
  opts.add_options()("prompt-tokens", "prefill tokens", cxxopts::value<int>()->default_value("512"))(
      "gen-tokens", "decode tokens", cxxopts::value<int>()->default_value("128"))(
      "reps", "repetitions (median reported)", cxxopts::value<int>()->default_value("3"))(
      "json", "one JSON object on stdout");
  ASSIGN_OR_RETURN(cxxopts::ParseResult r, ParseRunFlags(opts, argc, argv));
  RETURN_IF_ERROR(RequireFlag(r, "model", "bench"));
  ASSIGN_OR_RETURN(Loaded l, LoadFromFlags(r));
  const int np = r["prompt-tokens"].as<int>(), ng = r["gen-tokens"].as<int>();
  const int reps = r["reps"].as<int>();
  if (np < 1 || ng < 0 || reps < 1) return absl::InvalidArgumentError("bad --prompt-tokens/--gen-tokens/--reps");
  if (np + ng > l.n_ctx) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--prompt-tokens + --gen-tokens = %d exceed the context %d", np + ng, l.n_ctx));
  }
  ASSIGN_OR_RETURN(auto s, inference::Session::Create(*l.model, np + ng, l.kv_type, *l.pool, np));
  std::mt19937 rng(1);
  std::vector<int32_t> prompt(np);
  for (int32_t& t : prompt) t = static_cast<int32_t>(rng() % l.model->config.n_vocab);
  using Clock = std::chrono::steady_clock;
  std::vector<double> pre, dec;
  for (int rep = 0; rep < reps; ++rep) {
    s->Reset();
    auto t0 = Clock::now();
    RETURN_IF_ERROR(s->Eval(prompt.data(), np, false));
    auto t1 = Clock::now();
    pre.push_back(np / std::chrono::duration<double>(t1 - t0).count());
    int32_t next = prompt.back();
    for (int i = 0; i < ng; ++i) RETURN_IF_ERROR(s->Eval(&next, 1, false));
    auto t2 = Clock::now();
    if (ng > 0) dec.push_back(ng / std::chrono::duration<double>(t2 - t1).count());
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  const double pre_tps = Median(pre), dec_tps = dec.empty() ? 0.0 : Median(dec);
  const uint64_t rss = static_cast<uint64_t>(ru.ru_maxrss) * 1024;
  std::cerr << absl::StrFormat(
      "prefill %d tok: %.2f tok/s | decode %d tok: %.2f tok/s | peak RSS %.1f MiB | "
      "weights %.1f MiB | threads %d\n",
      np, pre_tps, ng, dec_tps, rss / 1048576.0, l.model->file_bytes / 1048576.0, l.pool->size());
  if (r.count("json")) {
    std::cout << nlohmann::json{{"prefill_tps", pre_tps}, {"decode_tps", dec_tps},
                                {"peak_rss_bytes", rss}, {"prompt_tokens", np},
                                {"gen_tokens", ng}, {"threads", l.pool->size()}}
                     .dump()
              << std::endl;
  }
  return absl::OkStatus();
}

}  // namespace qatk::cli
