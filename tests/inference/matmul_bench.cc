// Not a test: Q4_0 matmul speed, file layout vs the x16 layout kQ4_0x16
// (kernels/x16.h), best kernel of each, one thread. Shapes of the 1B model's FFN
// (gate/up [5632, 2048], down [2048, 5632]); n_tok 1 = decode, 64 = prefill.
// FFN weights (6.5 MB) fit L3, so their decode is optimistic; the output
// head's (37 MB) do not.
#include <sys/mman.h>

#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "formats/quant/codecs.h"
#include "inference/kernels/matmul.h"
#include "inference/kernels/x16.h"

namespace qatk::inference {
namespace {

constexpr auto kRate = benchmark::Counter::kIsIterationInvariantRate;

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
  const size_t pbytes = (Q4x16Bytes(rows, cols) + (2 << 20) - 1) / (2 << 20) * (2 << 20);
  uint8_t* pb = static_cast<uint8_t*>(std::aligned_alloc(2 << 20, pbytes));
  madvise(pb, pbytes, MADV_HUGEPAGE);  // as RepackForKernels
  if (packed) w = PackQ4_0x16(w, pb);
  // Kernel: the best one, or with avx2=1 the AVX2 one (as on CPUs without AVX-512).
  MatMulKernel k = *BestMatMulKernel(w.type);
  for (const MatMulKernel& c : SupportedMatMulKernels(w.type)) {
    if (state.range(4) != 0 && std::string(c.target) == "avx2") k = c;
  }
  ThreadPool pool(1);
  for (auto _ : state) {
    MatMulWith(k, w, x.data(), n_tok, y.data(), pool);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["tok/s"] = benchmark::Counter(n_tok, kRate);
  state.counters["GB/s"] = benchmark::Counter(double(rb * rows), kRate);
  std::free(pb);
}
BENCHMARK(BM_Q4_0)
    ->ArgNames({"packed", "rows", "cols", "n_tok", "avx2"})
    ->ArgsProduct({{0, 1}, {5632}, {2048}, {1, 64}, {0, 1}})
    ->ArgsProduct({{0, 1}, {2048}, {5632}, {1, 64}, {0, 1}})
    ->ArgsProduct({{0, 1}, {32000}, {2048}, {1}, {0}})  // the output head: 37 MB
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace qatk::inference
namespace qatk::inference {
namespace {
// Streaming read of a buffer the size of the output head, as bench --read-bw.
void BM_Read(benchmark::State& state) {
  const size_t bytes = size_t(32000) * 2048 / 32 * 18;
  const size_t pbytes = (bytes + (2 << 20) - 1) / (2 << 20) * (2 << 20);
  uint64_t* buf = static_cast<uint64_t*>(std::aligned_alloc(2 << 20, pbytes));
  if (state.range(0)) madvise(buf, pbytes, MADV_HUGEPAGE);
  const size_t n = bytes / 8;
  for (size_t i = 0; i < n; ++i) buf[i] = i;
  uint64_t sink = 0;
  for (auto _ : state) {
    uint64_t acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (size_t i = 0; i < n / 8; ++i) {
      for (int j = 0; j < 8; ++j) acc[j] += buf[8 * i + j];
    }
    for (int j = 0; j < 8; ++j) sink += acc[j];
  }
  benchmark::DoNotOptimize(sink);
  state.counters["GB/s"] = benchmark::Counter(double(bytes), kRate);
  std::free(buf);
}
BENCHMARK(BM_Read)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);
}  // namespace
}  // namespace qatk::inference
