// Not a test: Q4_0 matmul speed, file layout vs the packed kQ4_0x16
// (repack.h), best kernel of each, one thread. Shapes of the 1B model's FFN
// (gate/up [5632, 2048], down [2048, 5632]); n_tok 1 = decode, 64 = prefill.
// The weights (23 MB) exceed L2 but not L3, so decode here is optimistic.
#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "formats/quant/codecs.h"
#include "inference/matmul.h"
#include "inference/repack.h"

namespace qatk::inference {
namespace {

void BM_Q4_0(benchmark::State& state) {
  const bool packed = state.range(0) != 0;
  const int64_t rows = state.range(1), cols = state.range(2);
  const int n_tok = static_cast<int>(state.range(3));
  std::mt19937 rng(1);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> wf(rows * cols), x(n_tok * cols), y(n_tok * rows);
  for (float& v : wf) v = dist(rng);
  for (float& v : x) v = dist(rng);
  const uint64_t rb = RowBytes(GgmlType::kQ4_0, cols);
  std::vector<uint8_t> wb(rb * rows);
  for (int64_t r = 0; r < rows; ++r) {
    if (!QuantizeRow(GgmlType::kQ4_0, wf.data() + r * cols, cols, wb.data() + r * rb).ok()) return;
  }
  QMatrix w = MakeGgufMatrix(GgmlType::kQ4_0, rows, cols, wb.data());
  std::vector<uint8_t> pb(Q4x16Bytes(rows, cols) + 64);
  if (packed) {
    w = PackQ4_0x16(w, pb.data() + (64 - reinterpret_cast<uintptr_t>(pb.data()) % 64) % 64);
  }
  ThreadPool pool(1);
  for (auto _ : state) {
    MatMul(w, x.data(), n_tok, y.data(), pool);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["tok/s"] = benchmark::Counter(n_tok, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GB/s"] = benchmark::Counter(double(rb * rows), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Q4_0)
    ->ArgNames({"packed", "rows", "cols", "n_tok"})
    ->ArgsProduct({{0, 1}, {5632}, {2048}, {1, 64}})
    ->ArgsProduct({{0, 1}, {2048}, {5632}, {1, 64}})
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace qatk::inference
