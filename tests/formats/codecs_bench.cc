// Throughput of the reference codecs (scalar, the oracle for SIMD kernels).
// Bytes/s counts fp32 bytes (4 per element) on both sides.
//   build-*/tests/qatk_codecs_bench --benchmark_min_time=0.5
#include <cmath>
#include <cstdint>
#include <vector>

#include "benchmark/benchmark.h"
#include "formats/quant/codecs.h"

namespace qatk {
namespace {

constexpr int64_t kElems = 1 << 20;  // 4 MiB of fp32: larger than L2

std::vector<float> Input() {
  std::vector<float> x(kElems);
  uint32_t s = 0x12345678u;
  for (float& v : x) {
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    v = (static_cast<float>(s >> 8) * std::ldexp(1.0f, -23) - 1.0f) * 0.05f;
  }
  return x;
}

void BM_Quantize(benchmark::State& state, GgmlType type) {
  const std::vector<float> x = Input();
  std::vector<uint8_t> q(RowBytes(type, kElems));
  for (auto _ : state) {
    const absl::Status s = QuantizeRow(type, x.data(), kElems, q.data());
    if (!s.ok()) state.SkipWithError(std::string(s.message()).c_str());
    benchmark::DoNotOptimize(q.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * kElems);
  state.SetBytesProcessed(state.iterations() * kElems * 4);
}

void BM_Dequantize(benchmark::State& state, GgmlType type) {
  const std::vector<float> x = Input();
  std::vector<uint8_t> q(RowBytes(type, kElems));
  if (!QuantizeRow(type, x.data(), kElems, q.data()).ok()) state.SkipWithError("quantize failed");
  std::vector<float> y(kElems);
  for (auto _ : state) {
    DequantizeRow(type, q.data(), y.data(), kElems);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * kElems);
  state.SetBytesProcessed(state.iterations() * kElems * 4);
}

BENCHMARK_CAPTURE(BM_Quantize, q4_0, GgmlType::kQ4_0)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Quantize, q8_0, GgmlType::kQ8_0)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Quantize, q2_0, GgmlType::kQ2_0)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Dequantize, q4_0, GgmlType::kQ4_0)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Dequantize, q8_0, GgmlType::kQ8_0)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Dequantize, q2_0, GgmlType::kQ2_0)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace qatk
