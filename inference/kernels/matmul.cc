#include "inference/kernels/matmul.h"

#include <algorithm>
#include <array>

#include "formats/util/status_macros.h"
#include "inference/kernels/internal.h"

namespace qatk::inference {
namespace {

using Table = std::array<std::vector<MatMulKernel>, kNumWTypes>;

Table& RawTable() {
  static Table table;
  return table;
}

// The registry: every kernel of every file, registered once on first use
// (a function-local static, so thread-safe), before any lookup can see the
// table. Per type: the scalar oracle first, then the SIMD targets.
const Table& Kernels() {
  static const Table* const table = [] {
    internal::RegisterScalarBlockKernels();
    internal::RegisterScalarIntKernels();
    internal::RegisterScalarKQuantKernels();
#if defined(__x86_64__) || defined(__i386__)
    internal::RegisterAvx2BlockKernels();
    internal::RegisterAvx2IntKernels();
    internal::RegisterAvx2X16Kernels();
    internal::RegisterAvx2KQuantKernels();
    internal::RegisterAvx512BlockKernels();
    internal::RegisterAvx512IntKernels();
    internal::RegisterAvx512X16Kernels();
    internal::RegisterAvx512KQuantKernels();
#elif defined(__aarch64__)
    internal::RegisterNeonBlockKernels();
    internal::RegisterNeonIntKernels();
    internal::RegisterDotprodBlockKernels();
    internal::RegisterDotprodIntKernels();
    internal::RegisterI8mmBlockKernels();
    internal::RegisterI8mmIntKernels();
#endif
    return &RawTable();
  }();
  return *table;
}

bool Supported(const MatMulKernel& k) { return k.supported == nullptr || k.supported(); }

// Prepared activations: grows to the largest [n_tok, act_row_bytes] seen.
std::vector<uint8_t>& Scratch() {
  static thread_local std::vector<uint8_t> buf;
  return buf;
}

}  // namespace

namespace internal {

void RegisterMatMulKernel(WType type, const MatMulKernel& kernel) {
  QATK_CHECK(type != WType::kCount && kernel.rows != nullptr, "bad kernel registration");
  RawTable()[static_cast<int>(type)].push_back(kernel);
}

VecOps& ActiveVecOps() {
  static VecOps ops{};
  return ops;
}

}  // namespace internal

const char* WTypeName(WType t) {
  static const char* const kNames[kNumWTypes] = {"f32",  "f16",  "bf16",    "q8_0",   "q4_0",
                                                  "q2_0", "int8_channel", "int4_channel",
                                                  "int2_channel", "q4_0x16",      "int8x16",
                                                  "int4x16",      "int2x16",      "q4_K",
                                                  "q6_K"};
  const int i = static_cast<int>(t);
  return i >= 0 && i < kNumWTypes ? kNames[i] : "?";
}

bool WTypeFromGgml(GgmlType g, WType* out) {
  switch (g) {
    case GgmlType::kF32: *out = WType::kF32; return true;
    case GgmlType::kF16: *out = WType::kF16; return true;
    case GgmlType::kBF16: *out = WType::kBF16; return true;
    case GgmlType::kQ8_0: *out = WType::kQ8_0; return true;
    case GgmlType::kQ4_0: *out = WType::kQ4_0; return true;
    case GgmlType::kQ2_0: *out = WType::kQ2_0; return true;
    case GgmlType::kQ4_K: *out = WType::kQ4_K; return true;
    case GgmlType::kQ6_K: *out = WType::kQ6_K; return true;
  }
  return false;
}

QMatrix MakeGgufMatrix(GgmlType type, int64_t rows, int64_t cols, const void* data) {
  QMatrix m;
  QATK_CHECK(WTypeFromGgml(type, &m.type), "GGUF type has no runtime kernel");
  m.rows = rows;
  m.cols = cols;
  m.data = data;
  m.row_bytes = RowBytes(type, cols);
  return m;
}

std::vector<MatMulKernel> SupportedMatMulKernels(WType type) {
  std::vector<MatMulKernel> out;
  for (const MatMulKernel& k : Kernels()[static_cast<int>(type)]) {
    if (Supported(k)) out.push_back(k);
  }
  return out;
}

const MatMulKernel* BestMatMulKernel(WType type) {
  const std::vector<MatMulKernel>& ks = Kernels()[static_cast<int>(type)];
  for (auto it = ks.rbegin(); it != ks.rend(); ++it) {
    if (Supported(*it)) return &*it;
  }
  return nullptr;
}

void MatMulWith(const MatMulKernel& k, const QMatrix& w, const float* x, int n_tok, float* y,
                ThreadPool& pool) {
  const size_t ab = k.act_row_bytes ? k.act_row_bytes(w) : 0;
  const void* act = x;
  size_t stride = static_cast<size_t>(w.cols) * sizeof(float);
  if (ab != 0) {
    std::vector<uint8_t>& buf = Scratch();
    if (buf.size() < ab * n_tok) buf.resize(ab * n_tok);
    uint8_t* dst = buf.data();
    if (n_tok == 1) {
      k.prepare(w, x, dst);
    } else {
      pool.ParallelFor(n_tok, [&](int64_t b, int64_t e, int) {
        for (int64_t t = b; t < e; ++t) k.prepare(w, x + t * w.cols, dst + t * ab);
      });
    }
    act = dst;
    stride = ab;
  }
  pool.ParallelFor(
      w.rows,
      [&](int64_t r0, int64_t r1, int) { k.rows(w, act, stride, n_tok, y, w.rows, r0, r1); },
      /*align=*/16);  // whole x16 groups (and 4-row tiles) per range
}

void MatMul(const QMatrix& w, const float* x, int n_tok, float* y, ThreadPool& pool) {
  const MatMulKernel* k = BestMatMulKernel(w.type);
  QATK_CHECK(k != nullptr, "no matmul kernel registered for this weight type");
  MatMulWith(*k, w, x, n_tok, y, pool);
}

// The vector helpers run per attention row (millions of calls per prefill):
// the table is copied once, not looked up through Kernels() on every call.
const internal::VecOps& Vec() {
  static const internal::VecOps ops = (Kernels(), internal::ActiveVecOps());
  return ops;
}

float DotF32(const float* a, const float* b, int64_t n) { return Vec().dot_f32(a, b, n); }
void AxpyF32(float a, const float* x, float* y, int64_t n) { Vec().axpy_f32(a, x, y, n); }
void F16ToF32Row(const uint16_t* x, float* y, int64_t n) { Vec().f16_to_f32(x, y, n); }
void DotF32Rows(const float* rows, int64_t stride, int m, const float* x, int64_t n, float* out) {
  Vec().dot_f32_rows(rows, stride, m, x, n, out);
}
void AxpyF32Rows(const float* a, const float* x, float* y, int64_t stride, int m, int64_t n) {
  Vec().axpy_f32_rows(a, x, y, stride, m, n);
}

}  // namespace qatk::inference
