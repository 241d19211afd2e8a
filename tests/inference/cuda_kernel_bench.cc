// Not a test: GB/s of the CUDA MatMul kernels on a ~1B model's shapes
// (configs/models/1b.json), against the device's measured copy bandwidth.
// Each (type, shape) is timed over a set of distinct matrices of >= 256 MiB
// so that weights stream from HBM, not the L2 cache, replayed as one CUDA
// graph. Decode: n = 1 token, GB/s of weights read by the product kernel
// alone (at 1, 2 and 4 rows per warp; the best is also used for the decode
// step), and with each product's activation quantization kernel too;
// prefill: n = 512 tokens (tera-ops/s, 2 per multiply-add).
// Prints a markdown table; --json FILE also writes the rows as JSON.
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "formats/quant/fp16.h"
#include "formats/quant/types.h"
#include "inference/cuda/bench.h"
#include "inference/cuda/cuda_ops.h"
#include "inference/kernels/int.h"
#include "inference/weights.h"
#include "nlohmann/json.hpp"

namespace qatk::inference {
namespace {

struct Shape {
  const char* role;
  int64_t rows, cols;
  int per_step;  // matrices of this shape in one decode step of the 1B model (22 layers)
};

size_t RowBytesOf(WType t, int64_t cols) {
  switch (t) {
    case WType::kF16: return cols * 2;
    case WType::kQ8_0: return RowBytes(GgmlType::kQ8_0, cols);
    case WType::kQ4_0: return RowBytes(GgmlType::kQ4_0, cols);
    case WType::kQ2_0: return RowBytes(GgmlType::kQ2_0, cols);
    default: return (cols + CodesPerByte(t) - 1) / CodesPerByte(t);
  }
}

int Main(int argc, char** argv) {
  std::string json_path;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--json") json_path = argv[i + 1];
  }
  if (absl::Status s = CudaAvailable(); !s.ok()) {
    std::fprintf(stderr, "cuda_kernel_bench: %s\n", std::string(s.message()).c_str());
    return 77;
  }
  auto bw = CudaCopyBandwidth(size_t(1) << 30);
  if (!bw.ok()) {
    std::fprintf(stderr, "cuda_kernel_bench: %s\n", std::string(bw.status().message()).c_str());
    return 1;
  }
  std::printf("device: %s\ndevice-to-device copy: %.0f GB/s (bytes read + written)\n\n",
              CudaDeviceDescription().c_str(), *bw / 1e9);
  const Shape shapes[] = {{"attn_q/attn_output", 2048, 2048, 44}, {"attn_k/attn_v", 256, 2048, 44},
                          {"ffn_gate/ffn_up", 5632, 2048, 44},    {"ffn_down", 2048, 5632, 22},
                          {"output", 32000, 2048, 1}};
  const WType types[] = {WType::kQ4_0, WType::kQ8_0, WType::kQ2_0, WType::kInt8Channel,
                         WType::kInt4Channel, WType::kInt2Channel, WType::kF16};
  const size_t kSetBytes = size_t(256) << 20;
  // One pool of random bytes; matrices are windows into it (scales fixed).
  std::vector<uint8_t> pool(kSetBytes + (size_t(160) << 20));
  std::mt19937_64 rng(3);
  for (size_t i = 0; i + 8 <= pool.size(); i += 8) {
    const uint64_t v = rng();
    std::memcpy(&pool[i], &v, 8);
  }
  std::vector<float> ones(32000, 0.01f);
  nlohmann::json rows = nlohmann::json::array();
  const int default_rows = CudaDecodeRowsPerWarp();
  std::printf(
      "| type | shape (rows x cols) | role | decode kernel GB/s, 1 / 2 / 4 rows per warp | best "
      "(rows) | of copy bw | decode incl. activation quantization GB/s (best rows) | prefill "
      "512 TOPS |\n");
  std::printf("|---|---|---|---:|---:|---:|---:|---:|\n");
  nlohmann::json steps = nlohmann::json::array();
  std::vector<std::string> step_lines;
  for (WType t : types) {
    double step_bytes = 0, step_s = 0, step_s_op = 0;
    double step_s_rows[3] = {0, 0, 0};  // one rows-per-warp setting for every shape
    for (const Shape& s : shapes) {
      const size_t rb = RowBytesOf(t, s.cols), mb = rb * s.rows;
      const size_t count = std::max<size_t>(1, std::min<size_t>(kSetBytes / mb, (pool.size() / mb)));
      std::vector<QMatrix> ws(count);
      for (size_t i = 0; i < count; ++i) {
        QMatrix& m = ws[i];
        m.type = t;
        m.rows = s.rows;
        m.cols = s.cols;
        m.row_bytes = rb;
        m.data = pool.data() + i * mb;
        if (CodesPerByte(t) > 0) {
          m.row_scales = ones.data();
          m.act_scale = 0.05f;
        }
      }
      // Scales of the quantized GGUF types: keep them finite (fp16 0.002)
      // in every matrix window (same bytes for all, so set once per window).
      if (t == WType::kQ4_0 || t == WType::kQ8_0 || t == WType::kQ2_0) {
        const size_t bs = t == WType::kQ8_0 ? sizeof(BlockQ8_0) : 18;
        const uint16_t d = Fp32ToFp16(0.002f);
        for (size_t i = 0; i < count * mb; i += bs) std::memcpy(&pool[i], &d, 2);
      }
      // The single-token kernel at 1, 2 and 4 rows per warp (int paths;
      // the float path has one variant); the best counts.
      std::vector<double> by_rows;
      absl::StatusOr<CudaMatMulTiming> dec = absl::UnknownError("unset");
      int best_rows = 1;
      for (int rpw : {1, 2, 4}) {
        SetCudaDecodeRowsPerWarp(rpw);
        auto d = CudaTimeMatMul(ws, 1, 20, false);
        if (!d.ok()) {
          std::fprintf(stderr, "cuda_kernel_bench: %s\n", std::string(d.status().message()).c_str());
          return 1;
        }
        by_rows.push_back(d->weight_bytes / d->seconds / 1e9);
        if (!dec.ok() || d->seconds < dec->seconds) dec = d, best_rows = rpw;
      }
      SetCudaDecodeRowsPerWarp(best_rows);
      auto dec_op = CudaTimeMatMul(ws, 1, 20, true);
      SetCudaDecodeRowsPerWarp(default_rows);
      auto pre = CudaTimeMatMul(ws, 512, 3, true);
      for (const auto* r : {&dec_op, &pre}) {
        if (!r->ok()) {
          std::fprintf(stderr, "cuda_kernel_bench: %s\n", std::string(r->status().message()).c_str());
          return 1;
        }
      }
      const double gbs = dec->weight_bytes / dec->seconds / 1e9;
      const double gbs_op = dec_op->weight_bytes / dec_op->seconds / 1e9;
      const double tops = 2.0 * s.rows * s.cols * 512 / pre->seconds / 1e12;
      std::printf("| %s | %lld x %lld | %s | %.0f / %.0f / %.0f | %.0f (%d) | %.0f%% | %.0f | %.1f |\n",
                  WTypeName(t), static_cast<long long>(s.rows), static_cast<long long>(s.cols), s.role,
                  by_rows[0], by_rows[1], by_rows[2], gbs, best_rows, 100 * gbs * 1e9 / *bw, gbs_op,
                  tops);
      std::fflush(stdout);
      step_bytes += s.per_step * dec->weight_bytes;
      step_s += s.per_step * dec->seconds;
      for (int i = 0; i < 3; ++i) step_s_rows[i] += s.per_step * dec->weight_bytes / (by_rows[i] * 1e9);
      step_s_op += s.per_step * dec_op->seconds;
      rows.push_back({{"type", WTypeName(t)}, {"rows", s.rows}, {"cols", s.cols}, {"role", s.role},
                      {"decode_gbps", gbs}, {"copy_fraction", gbs * 1e9 / *bw},
                      {"decode_gbps_by_rows_per_warp", by_rows}, {"best_rows_per_warp", best_rows},
                      {"decode_with_quant_gbps", gbs_op}, {"prefill_tops", tops},
                      {"matrices", count}});
    }
    const double g = step_bytes / step_s / 1e9, g_op = step_bytes / step_s_op / 1e9;
    double g_rows[3];
    for (int i = 0; i < 3; ++i) g_rows[i] = step_bytes / step_s_rows[i] / 1e9;
    step_lines.push_back(absl::StrFormat("| %s | %.0f | %.0f / %.0f / %.0f | %.0f | %.0f%% | %.0f | %.0f%% |",
                                         WTypeName(t), step_bytes / 1e6, g_rows[0], g_rows[1], g_rows[2],
                                         g, 100 * g * 1e9 / *bw, g_op, 100 * g_op * 1e9 / *bw));
    steps.push_back({{"type", WTypeName(t)}, {"bytes", step_bytes}, {"kernel_gbps", g},
                     {"kernel_gbps_by_rows_per_warp", {g_rows[0], g_rows[1], g_rows[2]}},
                     {"with_quant_gbps", g_op}});
  }
  std::printf(
      "\nOne decode step's products (22 layers x q, k, v, o, gate, up, down + output head, "
      "all of one type):\n\n| type | MB | kernel GB/s, 1 / 2 / 4 rows per warp | kernel GB/s, best "
      "rows per shape | of copy bw | incl. activation quantization GB/s | of copy bw "
      "|\n|---|---:|---:|---:|---:|---:|---:|\n");
  for (const std::string& l : step_lines) std::printf("%s\n", l.c_str());
  if (!json_path.empty()) {
    nlohmann::json out{{"device", CudaDeviceDescription()}, {"copy_gbps", *bw / 1e9}, {"rows", rows},
                       {"decode_step", steps}};
    if (FILE* f = std::fopen(json_path.c_str(), "w")) {
      std::fputs(out.dump(1).c_str(), f);
      std::fclose(f);
    }
  }
  return 0;
}

}  // namespace
}  // namespace qatk::inference

int main(int argc, char** argv) { return qatk::inference::Main(argc, argv); }
