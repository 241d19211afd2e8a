// qat-run bench: prefill and decode tokens/s (median of --reps) and peak RSS.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <random>
#include <vector>

#include "absl/strings/str_format.h"
#include "formats/util/status_macros.h"
#include "inference/cli/commands.h"
#include "inference/cli/run_common.h"
#include "inference/cuda/bench.h"
#include "inference/cuda/cuda_ops.h"
#include "nlohmann/json.hpp"

namespace qatk::cli {
namespace {

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

uint64_t MatrixBytes(const inference::QMatrix& m) {
  return static_cast<uint64_t>(m.rows) * (m.row_bytes + (m.row_scales ? sizeof(float) : 0));
}

// Bytes of weights one decoded token reads: every layer matrix, the output
// head and one embedding row (norm vectors are negligible and left out).
uint64_t WeightBytesPerToken(const inference::Model& m) {
  uint64_t b = MatrixBytes(m.output) + m.tok_embd.row_bytes;
  for (const inference::LayerWeights& l : m.layers) {
    for (const inference::QMatrix* w : {&l.wq, &l.wk, &l.wv, &l.wo, &l.gate, &l.up, &l.down}) {
      b += MatrixBytes(*w);
    }
  }
  return b;
}

// Streaming read bandwidth (bytes/s) over a 1 GiB buffer (far beyond the
// caches) with the pool's threads, each reading its own contiguous range;
// best of 5 passes.
double ReadBandwidth(inference::ThreadPool& pool) {
  const size_t n = (size_t(1) << 30) / sizeof(uint64_t);
  std::vector<uint64_t> buf(n);
  for (size_t i = 0; i < n; ++i) buf[i] = i;
  std::vector<uint64_t> sink(pool.size() * 8);
  double best = 0;
  for (int pass = 0; pass < 5; ++pass) {
    const auto t0 = std::chrono::steady_clock::now();
    pool.ParallelFor(static_cast<int64_t>(n / 8), [&](int64_t b, int64_t e, int th) {
      uint64_t acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      for (int64_t i = b; i < e; ++i) {
        for (int j = 0; j < 8; ++j) acc[j] += buf[8 * i + j];
      }
      for (int j = 0; j < 8; ++j) sink[th * 8 + j] += acc[j];
    });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, n * sizeof(uint64_t) / s);
  }
  volatile uint64_t keep = 0;
  for (uint64_t v : sink) keep = keep + v;
  return best;
}

}  // namespace

absl::Status BenchCommand(int argc, char** argv) {
  cxxopts::Options opts("bench", "prefill / decode speed and peak memory");
  AddModelFlags(opts, 4096);
  opts.add_options()("prompt-tokens", "prefill tokens", cxxopts::value<int>()->default_value("512"))(
      "gen-tokens", "decode tokens", cxxopts::value<int>()->default_value("128"))(
      "reps", "repetitions (median reported)", cxxopts::value<int>()->default_value("3"))(
      "read-bw",
      "also measure memory bandwidth and the decode bound it sets (CPU: streaming read of "
      "1 GiB with --threads; CUDA: device-to-device copy of 1 GiB)")(
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
  ASSIGN_OR_RETURN(auto s, inference::Session::Create(*l.model, np + ng, l.kv_type, *l.pool, np,
                                                      l.backend));
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
  nlohmann::json out{{"prefill_tps", pre_tps}, {"decode_tps", dec_tps},
                      {"peak_rss_bytes", rss}, {"prompt_tokens", np},
                      {"gen_tokens", ng}, {"threads", l.pool->size()}};
  const uint64_t wbytes = WeightBytesPerToken(*l.model);
  out["weight_bytes_per_token"] = wbytes;
  out["device"] = l.backend == inference::Backend::kCuda ? inference::CudaDeviceDescription() : "cpu";
  if (r.count("read-bw")) {
    // The GPU's bound: a device-to-device copy of 1 GiB (bytes read + written).
    double bw = 0;
    if (l.backend == inference::Backend::kCuda) {
      ASSIGN_OR_RETURN(bw, inference::CudaCopyBandwidth(size_t(1) << 30));
    } else {
      bw = ReadBandwidth(*l.pool);
    }
    const double limit = bw / wbytes;
    out["read_gbps"] = bw / 1e9;
    out["bw_limit_tps"] = limit;
    out["bw_fraction"] = dec_tps / limit;
    std::cerr << absl::StrFormat(
        "%s bandwidth %.2f GB/s | %.1f MB of weights per token -> bound %.2f tok/s | decode "
        "at %.0f%% of it\n",
        l.backend == inference::Backend::kCuda ? "device copy" : "read", bw / 1e9, wbytes / 1e6,
        limit, 100 * dec_tps / limit);
  }
  if (r.count("json")) std::cout << out.dump() << std::endl;
  return absl::OkStatus();
}

}  // namespace qatk::cli
