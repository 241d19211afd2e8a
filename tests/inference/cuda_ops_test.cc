// The CUDA backend against the CPU runtime: every Ops method on the same
// inputs, every weight type's MatMul against the scalar reference kernel
// (decode and prefill token counts, ragged shapes), and whole sessions.
// Without a GPU (or in a build without -DQATK_CUDA=ON) the GPU tests skip;
// the error paths are checked everywhere.
#include "inference/cuda/cuda_ops.h"

#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "formats/quant/codecs.h"
#include "formats/quant/fp16.h"
#include "gtest/gtest.h"
#include "inference/forward.h"
#include "inference/kernels/int.h"
#include "inference/kernels/matmul.h"
#include "inference/model_loader.h"
#include "tests/inference/tiny_gguf.h"

namespace qatk::inference {
namespace {

#define SKIP_WITHOUT_GPU()                                            \
  do {                                                                \
    if (absl::Status s_ = CudaAvailable(); !s_.ok()) GTEST_SKIP() << s_; \
  } while (0)

std::vector<float> RandomVector(std::mt19937& rng, size_t n, float sd = 1.0f) {
  std::normal_distribution<float> nd(0.0f, sd);
  std::vector<float> v(n);
  for (float& x : v) x = nd(rng);
  return v;
}

ModelConfig TinyConfig() {
  ModelConfig c;
  c.n_layer = 2;
  c.n_embd = 64;
  c.n_head = 4;
  c.n_head_kv = 2;
  c.head_dim = 32;
  c.n_ff = 96;
  c.n_vocab = 50;
  c.attn_scale = 1.0f / std::sqrt(32.0f);
  return c;
}

KvCache MakeKv(const ModelConfig& c, KvType type, int n_ctx) {
  KvCache kv;
  kv.type = type;
  kv.n_ctx = n_ctx;
  kv.row_elems = int64_t(c.n_head_kv) * c.head_dim;
  switch (type) {
    case KvType::kF32: kv.row_bytes = kv.row_elems * 4; break;
    case KvType::kF16: kv.row_bytes = kv.row_elems * 2; break;
    case KvType::kInt8: kv.row_bytes = kv.row_elems; break;
    case KvType::kQ8_0: kv.row_bytes = RowBytes(GgmlType::kQ8_0, kv.row_elems); break;
  }
  if (type == KvType::kInt8) {
    kv.int8_spec = DefaultKvSpec();
    for (int l = 0; l < c.n_layer; ++l) {
      kv.k_scale.push_back(0.03f + 0.01f * l);
      kv.v_scale.push_back(0.02f + 0.01f * l);
    }
  }
  return kv;
}

// Host-visible copy of n floats of an Ops buffer.
std::vector<float> Read(Ops& o, const float* buf, size_t n) {
  std::vector<float> staging(n);
  const float* p = o.ToHost(buf, n, staging.data());
  return std::vector<float>(p, p + n);
}

float* Put(Ops& o, const std::vector<float>& v) {
  float* d = o.Alloc(v.size());
  o.Upload(v.data(), v.size(), d);
  return d;
}

// Logits of two implementations that quantize activations to Q8_0 blocks
// (the GGUF types) can differ by one code where a value sits on a rounding
// boundary; one code moves a logit by up to max|w| * d (~1e-2 here). So:
// almost all elements within tol * (|b| + scale), none beyond 0.05 * scale,
// and the mean error below tol * scale. A wrong kernel fails all three.
void ExpectLogitsClose(const std::vector<float>& a, const std::vector<float>& b, double tol,
                       double scale, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  size_t loose = 0;
  double max_err = 0, sum_err = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double e = std::fabs(double(a[i]) - b[i]);
    max_err = std::max(max_err, e);
    sum_err += e;
    loose += !(e <= tol * (std::fabs(b[i]) + scale));
  }
  std::printf("%s: max |err| %.3g, mean %.3g, %zu of %zu beyond %.0e (scale %.3g)\n", what.c_str(),
              max_err, sum_err / a.size(), loose, a.size(), tol, scale);
  EXPECT_LE(loose, a.size() / 50) << what;
  EXPECT_LE(max_err, 0.05 * scale) << what;
  EXPECT_LE(sum_err / a.size(), tol * scale) << what;
}

// |a - b| <= tol * (|b| + scale) elementwise.
void ExpectClose(const std::vector<float>& a, const std::vector<float>& b, double tol, double scale,
                 const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  int bad = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!(std::fabs(a[i] - b[i]) <= tol * (std::fabs(b[i]) + scale)) && ++bad <= 5) {
      ADD_FAILURE() << what << " [" << i << "]: cuda " << a[i] << " cpu " << b[i];
    }
  }
}

// --- Error paths: checked with and without a GPU. -------------------------

TEST(CudaOpsTest, UnavailableBackendIsAClearError) {
  if (CudaAvailable().ok()) GTEST_SKIP() << "a GPU is present";
  const absl::Status s = CudaAvailable();
  EXPECT_TRUE(absl::IsUnimplemented(s) || absl::IsUnavailable(s)) << s;
  EXPECT_FALSE(s.message().empty());
  auto model = LoadModel(testing::WriteTinyModel("llama"), LoadOptions{false});
  ASSERT_TRUE(model.ok()) << model.status();
  ThreadPool pool(1);
  auto session = Session::Create(**model, 16, KvType::kF16, pool, 16, Backend::kCuda);
  ASSERT_FALSE(session.ok());
  EXPECT_EQ(session.status().code(), s.code()) << session.status();
}

TEST(CudaOpsTest, BackendNames) {
  EXPECT_EQ(*BackendFromName("cpu"), Backend::kCpu);
  EXPECT_EQ(*BackendFromName("cuda"), Backend::kCuda);
  EXPECT_FALSE(BackendFromName("gpu").ok());
  EXPECT_STREQ(BackendName(Backend::kCuda), "cuda");
}

TEST(CudaOpsTest, RepackedModelIsRejected) {
  SKIP_WITHOUT_GPU();
  auto model = LoadModel(testing::WriteTinyModel("llama"));  // repacked for the CPU
  ASSERT_TRUE(model.ok()) << model.status();
  bool repacked = false;
  for (const LayerWeights& l : (*model)->layers) repacked |= l.wq.type == WType::kQ4_0x16;
  if (!repacked) GTEST_SKIP() << "this CPU keeps Q4_0 in the file layout";
  ThreadPool pool(1);
  auto session = Session::Create(**model, 16, KvType::kF16, pool, 16, Backend::kCuda);
  ASSERT_FALSE(session.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(session.status())) << session.status();
  EXPECT_NE(session.status().message().find("repack"), std::string::npos) << session.status();
}

// --- MatMul per weight type. ----------------------------------------------

struct TestMatrix {
  QMatrix m;
  std::vector<uint8_t> bytes;
  std::vector<float> scales;
};

TestMatrix GgufMatrix(std::mt19937& rng, GgmlType type, int64_t rows, int64_t cols) {
  TestMatrix t;
  const std::vector<float> w = RandomVector(rng, rows * cols, 0.5f);
  t.bytes.resize(RowBytes(type, cols) * rows);
  EXPECT_TRUE(QuantizeRow(type, w.data(), rows * cols, t.bytes.data()).ok());
  t.m = MakeGgufMatrix(type, rows, cols, t.bytes.data());
  return t;
}

TestMatrix IntMatrix(std::mt19937& rng, WType type, int64_t rows, int64_t cols, float act_scale) {
  TestMatrix t;
  const int per = CodesPerByte(type);
  t.m.type = type;
  t.m.rows = rows;
  t.m.cols = cols;
  t.m.row_bytes = (cols + per - 1) / per;
  t.bytes.resize(t.m.row_bytes * rows);
  for (uint8_t& b : t.bytes) b = static_cast<uint8_t>(rng());
  std::uniform_real_distribution<float> ud(0.01f, 0.1f);
  t.scales.resize(rows);
  for (float& s : t.scales) s = ud(rng);
  t.m.data = t.bytes.data();
  t.m.row_scales = t.scales.data();
  t.m.act_scale = act_scale;
  t.m.act_bits = 8;
  return t;
}

// Row r of w as fp32 (int channel types: code * row scale).
std::vector<float> DequantRow(const QMatrix& w, int64_t r) {
  std::vector<float> out(w.cols);
  const int per = CodesPerByte(w.type);
  if (per > 0) {
    for (int64_t k = 0; k < w.cols; ++k) out[k] = CodeAt(w.type, w.Row(r), k) * w.row_scales[r];
  } else {
    DequantizeMatrixRow(w, r, out.data());
  }
  return out;
}

// y = x W^T by the CPU scalar reference kernel and by CUDA. tol == 0: equal
// bit for bit. Else |cuda - cpu| <= tol * sum_k |w_rk x_tk|: both sum the
// same products (the same int sums per block for quantized activations) in
// a different order, so they differ by a few ulps of the magnitude sum; a
// wrong element or block moves y by about |w x| per element.
void CompareMatMul(const QMatrix& w, int n, std::mt19937& rng, double tol, const std::string& what) {
  const std::vector<float> x = RandomVector(rng, size_t(n) * w.cols);
  ThreadPool pool(2);
  std::vector<float> ref(size_t(n) * w.rows);
  MatMulWith(SupportedMatMulKernels(w.type).front(), w, x.data(), n, ref.data(), pool);
  ModelConfig c = TinyConfig();
  auto ops = MakeCudaOps(nullptr, c, MakeKv(c, KvType::kF16, 8), n);
  ASSERT_TRUE(ops.ok()) << ops.status();
  float* dx = Put(**ops, x);
  float* dy = (*ops)->Alloc(size_t(n) * w.rows);
  (*ops)->MatMul(w, dx, n, dy);
  const std::vector<float> got = Read(**ops, dy, size_t(n) * w.rows);
  int bad = 0;
  for (int64_t r = 0; r < w.rows; ++r) {
    const std::vector<float> wr = DequantRow(w, r);
    for (int t = 0; t < n; ++t) {
      const size_t i = size_t(t) * w.rows + r;
      if (tol == 0) {
        ASSERT_EQ(got[i], ref[i]) << what << " n=" << n << " row " << r << " token " << t;
        continue;
      }
      double mag = 0;
      for (int64_t k = 0; k < w.cols; ++k) mag += std::fabs(double(wr[k]) * x[size_t(t) * w.cols + k]);
      if (!(std::fabs(double(got[i]) - ref[i]) <= tol * mag) && ++bad <= 5) {
        ADD_FAILURE() << what << " n=" << n << " row " << r << " token " << t << ": cuda " << got[i]
                      << " cpu " << ref[i] << " (sum |w x| " << mag << ")";
      }
    }
  }
}

constexpr int kTokenCounts[] = {1, 3, 8, 9, 77};

TEST(CudaOpsTest, GgufTypesMatchTheReferenceKernel) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(1);
  for (GgmlType type : {GgmlType::kF32, GgmlType::kF16, GgmlType::kBF16, GgmlType::kQ8_0,
                        GgmlType::kQ4_0, GgmlType::kQ2_0}) {
    // 70 rows: a partial 64-row tile; 192 columns: 6 blocks of 32 (3 of Q2_0's 64).
    TestMatrix t = GgufMatrix(rng, type, 70, 192);
    for (int n : kTokenCounts) {
      // Same Q8_0 activation codes, same int sums per block; only the fp32
      // summation order across blocks differs.
      CompareMatMul(t.m, n, rng, 4e-6, Traits(type).name);
    }
    for (int rows_per_warp : {2, 4}) {  // the single-token variants (70 rows: a partial group)
      SetCudaDecodeRowsPerWarp(rows_per_warp);
      CompareMatMul(t.m, 1, rng, 4e-6, absl::StrCat(Traits(type).name, " rows/warp ", rows_per_warp));
    }
    SetCudaDecodeRowsPerWarp(1);
  }
}

TEST(CudaOpsTest, IntChannelTypesMatchTheReferenceKernel) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(2);
  for (WType type : {WType::kInt8Channel, WType::kInt4Channel, WType::kInt2Channel}) {
    for (int64_t cols : {128, 100}) {  // 100: a partial 32-column block
      // With a static activation scale: the same int32 per row, bit for bit.
      TestMatrix a = IntMatrix(rng, type, 70, cols, 0.05f);
      for (int n : kTokenCounts) CompareMatMul(a.m, n, rng, 0, absl::StrCat(WTypeName(type), " act"));
      for (int rows_per_warp : {2, 4}) {
        SetCudaDecodeRowsPerWarp(rows_per_warp);
        CompareMatMul(a.m, 1, rng, 0, absl::StrCat(WTypeName(type), " act rows/warp ", rows_per_warp));
      }
      SetCudaDecodeRowsPerWarp(1);
      TestMatrix b = IntMatrix(rng, type, 70, cols, 0.0f);  // weight-only: fp32 activations
      for (int n : kTokenCounts) CompareMatMul(b.m, n, rng, 4e-6, WTypeName(type));
    }
  }
}

TEST(CudaOpsTest, HalfEvenActivationRoundingIsKept) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(3);
  TestMatrix t = IntMatrix(rng, WType::kInt8Channel, 40, 64, 0.5f);
  t.m.act_rounding = Rounding::kHalfEven;
  t.m.act_narrow = true;
  // Activations on exact ties of the 0.5 scale: x / s = k + 0.5.
  const int n = 3;
  std::vector<float> x(n * 64);
  for (size_t i = 0; i < x.size(); ++i) x[i] = 0.25f + 0.5f * float(int(i % 9) - 4);
  ThreadPool pool(1);
  std::vector<float> ref(n * 40);
  MatMulWith(SupportedMatMulKernels(t.m.type).front(), t.m, x.data(), n, ref.data(), pool);
  ModelConfig c = TinyConfig();
  auto ops = MakeCudaOps(nullptr, c, MakeKv(c, KvType::kF16, 8), n);
  ASSERT_TRUE(ops.ok()) << ops.status();
  float* dy = (*ops)->Alloc(n * 40);
  (*ops)->MatMul(t.m, Put(**ops, x), n, dy);
  const std::vector<float> got = Read(**ops, dy, n * 40);
  for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], ref[i]) << i;
}

// --- The other Ops against CpuOps. -----------------------------------------

struct OpsPair {
  std::unique_ptr<Ops> cpu, gpu;
  KvCache cpu_kv, gpu_kv;
};

OpsPair MakePair(const ModelConfig& c, KvType kv_type, int n_ctx, ThreadPool& pool) {
  OpsPair p;
  p.cpu_kv = MakeKv(c, kv_type, n_ctx);
  p.cpu_kv.k.assign(c.n_layer, std::vector<uint8_t>(p.cpu_kv.row_bytes * n_ctx));
  p.cpu_kv.v.assign(c.n_layer, std::vector<uint8_t>(p.cpu_kv.row_bytes * n_ctx));
  p.gpu_kv = MakeKv(c, kv_type, n_ctx);
  p.cpu = MakeCpuOps(c, n_ctx, pool);
  auto g = MakeCudaOps(nullptr, c, p.gpu_kv, n_ctx);
  EXPECT_TRUE(g.ok()) << g.status();
  if (g.ok()) p.gpu = std::move(*g);
  return p;
}

TEST(CudaOpsTest, NormsActivationsAndRopeMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  const ModelConfig c = TinyConfig();
  ThreadPool pool(2);
  OpsPair p = MakePair(c, KvType::kF16, 16, pool);
  ASSERT_NE(p.gpu, nullptr);
  std::mt19937 rng(4);
  const int n = 5, dim = 96;
  const std::vector<float> x = RandomVector(rng, n * dim, 3.0f), w = RandomVector(rng, dim);
  {
    std::vector<float> y(n * dim);
    p.cpu->RmsNorm(x.data(), w.data(), n, dim, 1e-6f, y.data());
    float* dy = p.gpu->Alloc(n * dim);
    p.gpu->RmsNorm(Put(*p.gpu, x), w.data(), n, dim, 1e-6f, dy);
    ExpectClose(Read(*p.gpu, dy, n * dim), y, 1e-5, 1e-3, "rmsnorm");
  }
  for (bool gelu : {false, true}) {
    std::vector<float> g = x;
    const std::vector<float> u = RandomVector(rng, n * dim);
    float* dg = Put(*p.gpu, g);
    p.cpu->GatedAct(g.data(), u.data(), n * dim, gelu);
    p.gpu->GatedAct(dg, Put(*p.gpu, u), n * dim, gelu);
    ExpectClose(Read(*p.gpu, dg, n * dim), g, 1e-5, 1e-3, gelu ? "geglu" : "swiglu");
  }
  {
    std::vector<float> a = x;
    const std::vector<float> b = RandomVector(rng, n * dim);
    float* da = Put(*p.gpu, a);
    p.cpu->Add(a.data(), b.data(), n * dim);
    p.gpu->Add(da, Put(*p.gpu, b), n * dim);
    ExpectClose(Read(*p.gpu, da, n * dim), a, 0, 0, "add");
    std::vector<float> s = a;
    p.cpu->Softcap(s.data(), n * dim, 2.5f);
    p.gpu->Softcap(da, n * dim, 2.5f);
    ExpectClose(Read(*p.gpu, da, n * dim), s, 1e-5, 1e-3, "softcap");
  }
  {
    std::vector<float> a = x;
    const std::vector<float> bias = RandomVector(rng, dim);  // a model vector: host memory
    float* da = Put(*p.gpu, a);
    p.cpu->AddBias(a.data(), bias.data(), n, dim);
    p.gpu->AddBias(da, bias.data(), n, dim);
    ExpectClose(Read(*p.gpu, da, n * dim), a, 0, 0, "add bias");
  }
  std::vector<float> factors(16);
  for (size_t i = 0; i < factors.size(); ++i) factors[i] = 1.0f + 0.5f * i;
  const float* ffs[] = {nullptr, factors.data()};
  for (bool neox : {false, true}) {
    for (const float* ff : ffs) {
      const int heads = 3, D = 32, pos0 = 11;
      std::vector<float> r = RandomVector(rng, n * heads * D);
      float* dr = Put(*p.gpu, r);
      p.cpu->Rope(r.data(), n, heads, D, pos0, 10000.0f, neox, ff);
      p.gpu->Rope(dr, n, heads, D, pos0, 10000.0f, neox, ff);
      ExpectClose(Read(*p.gpu, dr, r.size()), r, 1e-5, 1e-3,
                  ff != nullptr ? "rope factors" : neox ? "rope neox" : "rope");
    }
  }
}

TEST(CudaOpsTest, AttentionMatchesTheCpuForEveryKvType) {
  SKIP_WITHOUT_GPU();
  const ModelConfig c = TinyConfig();
  ThreadPool pool(2);
  const int H = c.n_head, D = c.head_dim, kvw = c.n_head_kv * D;
  for (KvType kv : {KvType::kF32, KvType::kF16, KvType::kInt8, KvType::kQ8_0}) {
    for (int window : {0, 4}) {
      OpsPair p = MakePair(c, kv, 128, pool);  // up to 8 position splits, some empty
      ASSERT_NE(p.gpu, nullptr);
      std::mt19937 rng(5);
      // A 9-token prefill, then 3 single-token steps, in layer 1.
      int pos = 0;
      for (int T : {9, 1, 1, 1}) {
        const std::vector<float> q = RandomVector(rng, T * H * D), k = RandomVector(rng, T * kvw),
                                 v = RandomVector(rng, T * kvw);
        std::vector<float> out(T * H * D);
        p.cpu->Attention(q.data(), k.data(), v.data(), T, pos, 1, window, p.cpu_kv, out.data());
        float* dout = p.gpu->Alloc(T * H * D);
        p.gpu->Attention(Put(*p.gpu, q), Put(*p.gpu, k), Put(*p.gpu, v), T, pos, 1, window,
                         p.gpu_kv, dout);
        ExpectClose(Read(*p.gpu, dout, out.size()), out, 1e-4, 1e-2,
                    absl::StrCat("attention kv ", int(kv), " window ", window, " pos ", pos));
        pos += T;
      }
    }
  }
}

// --- Whole sessions. -------------------------------------------------------

// Graphs on: the first single-token step is recorded, later ones replayed
// with a new position each time. Off: every step issues its kernels.
class CudaSessionTest : public ::testing::TestWithParam<const char*> {};

TEST_P(CudaSessionTest, SessionLogitsMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  setenv("QATK_CUDA_GRAPHS", GetParam(), 1);
  // "llama_extras": llama with q/k/v biases (qwen2) and rope frequency
  // factors (Llama 3 rope scaling) set on both models.
  for (const std::string arch : {"llama", "gemma3", "llama_extras"}) {
    const std::string path = testing::WriteTinyModel(arch == "llama_extras" ? "llama" : arch);
    auto cpu_model = LoadModel(path);
    auto gpu_model = LoadModel(path, LoadOptions{false});
    ASSERT_TRUE(cpu_model.ok() && gpu_model.ok());
    if (arch == "llama_extras") {
      std::mt19937 rng(5);
      const ModelConfig& c = (*cpu_model)->config;
      const int qd = c.n_head * c.head_dim, kvd = c.n_head_kv * c.head_dim;
      for (Model* m : {cpu_model->get(), gpu_model->get()}) {
        rng.seed(5);
        for (LayerWeights& l : m->layers) {
          l.bq = RandomVector(rng, qd);
          l.bk = RandomVector(rng, kvd);
          l.bv = RandomVector(rng, kvd);
        }
        m->rope_freqs.resize(c.head_dim / 2);
        for (size_t i = 0; i < m->rope_freqs.size(); ++i) m->rope_freqs[i] = 1.0f + 2.0f * i;
      }
    }
    ThreadPool pool(2);
    const std::vector<int32_t> prompt = {1, 17, 250, 3, 99, 42, 7, 123, 5, 77, 8, 9};
    for (KvType kv : {KvType::kF32, KvType::kF16, KvType::kQ8_0}) {
      auto a = Session::Create(**cpu_model, 64, kv, pool, 16);
      auto b = Session::Create(**gpu_model, 64, kv, pool, 16, Backend::kCuda);
      ASSERT_TRUE(a.ok()) << a.status();
      ASSERT_TRUE(b.ok()) << b.status();
      const int V = testing::kTinyV;
      // Prefill with every position's logits, then decode a few tokens.
      ASSERT_TRUE((*a)->Eval(prompt.data(), prompt.size(), true).ok());
      ASSERT_TRUE((*b)->Eval(prompt.data(), prompt.size(), true).ok());
      const size_t nl = prompt.size() * V;
      std::vector<float> la((*a)->logits(), (*a)->logits() + nl), lb((*b)->logits(), (*b)->logits() + nl);
      double scale = 0;
      for (float v : la) scale = std::max(scale, double(std::fabs(v)));
      ASSERT_GT(scale, 1e-3);
      ExpectLogitsClose(lb, la, 1e-3, scale, absl::StrCat(arch, " prefill kv ", int(kv)));
      for (int32_t t : {4, 200, 31, 7, 150}) {
        ASSERT_TRUE((*a)->Eval(&t, 1, false).ok());
        ASSERT_TRUE((*b)->Eval(&t, 1, false).ok());
        ExpectLogitsClose(std::vector<float>((*b)->logits(), (*b)->logits() + V),
                          std::vector<float>((*a)->logits(), (*a)->logits() + V), 1e-3, scale,
                          absl::StrCat(arch, " decode kv ", int(kv), " token ", t));
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Graphs, CudaSessionTest, ::testing::Values("1", "0"));

}  // namespace
}  // namespace qatk::inference
