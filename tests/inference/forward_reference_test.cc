// Session's logits against an independent float reference written here with
// plain loops (no runtime code): every weight dequantized with the reference
// codec, RMSNorm, RoPE (llama NORM pairs (2i, 2i+1) on the file's permuted
// q/k, with or without rope_freqs.weight; qwen2 / qwen3 / gemma3 NEOX pairs
// (i, i + D/2)), qwen2's q/k/v biases, qwen3's and gemma3's per-head q/k
// norms, GQA attention with gemma3's sliding window, SwiGLU / tanh-GEGLU,
// the final softcap. Quantized weights take
// Q8_0-quantized activations in the runtime (like llama.cpp), so the
// reference rounds the input of every quantized matmul through Q8_0 too
// (llama.cpp's x86 activation rule, QuantizeBlockQ8_0Act).
#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "formats/gguf/gguf.h"
#include "formats/quant/codecs.h"
#include "gtest/gtest.h"
#include "tests/inference/tiny_gguf.h"
#include "inference/forward.h"
#include "inference/kernels/matmul.h"
#include "inference/model_loader.h"

namespace qatk::inference {
namespace {

constexpr int E = 64, H = 4, Hk = 2, D = 32, F = 128, L = 2, V = 96, kWindow = 3;

// A test model: "llama", "llama_rope_freqs" (llama + rope_freqs.weight),
// "qwen2", "qwen3" or "gemma3".
struct Variant {
  std::string arch;  // general.architecture
  bool gemma = false, qwen2 = false, qwen3 = false, rope_freqs = false;
  explicit Variant(const std::string& name)
      : arch(name == "llama_rope_freqs" ? "llama" : name),
        gemma(name == "gemma3"),
        qwen2(name == "qwen2"),
        qwen3(name == "qwen3"),
        rope_freqs(name == "llama_rope_freqs") {}
  bool neox() const { return gemma || qwen2 || qwen3; }
  bool qk_norm() const { return gemma || qwen3; }
};

struct RefTensor {
  GgmlType type;
  std::vector<float> w;  // [rows, cols] dequantized file values
};
using RefWeights = std::map<std::string, RefTensor>;

// Writes a random GGUF; matrices are `mat_type` (F32 vectors always) and
// their dequantized values are returned in `ref`.
std::string WriteModel(const std::string& name, GgmlType mat_type, RefWeights* ref) {
  const Variant var(name);
  const std::string& arch = var.arch;
  const std::string path =
      ::testing::TempDir() + "/ref_" + name + "_" + std::to_string(int(mat_type)) + ".gguf";
  auto w = gguf::GgufWriter::Create(path);
  EXPECT_TRUE(w.ok());
  testing::TinyDims dims;
  dims.E = E, dims.L = L, dims.F = F, dims.H = H, dims.Hk = Hk, dims.D = D;
  testing::AddModelKvs(*w, arch, dims, V);
  const std::string p = arch + ".";
  EXPECT_TRUE(
      w->AddKv(p + "rope.freq_base", gguf::Value::F32(arch == "gemma3" ? 1e6f : 500.0f)).ok());
  if (arch == "gemma3") {  // layer 0 slides (window 3, base 10000), layer 1 is global
    EXPECT_TRUE(w->AddKv(p + "attention.sliding_window", gguf::Value::U32(kWindow)).ok());
    EXPECT_TRUE(w->AddKv(p + "attention.sliding_window_pattern", gguf::Value::U32(2)).ok());
    EXPECT_TRUE(w->AddKv(p + "final_logit_softcapping", gguf::Value::F32(5.0f)).ok());
  }
  std::mt19937 rng(7);
  std::vector<std::vector<uint8_t>> data;
  auto add = [&](const std::string& name, int64_t rows, int64_t cols, float mean, float sd) {
    const GgmlType type = rows == 1 ? GgmlType::kF32 : mat_type;
    std::normal_distribution<float> dist(mean, sd);
    std::vector<float> x(rows * cols);
    for (float& v : x) v = dist(rng);
    if (name == "rope_freqs.weight") {
      for (float& v : x) v = std::clamp(v, 1.0f, 6.0f);
    }
    std::vector<uint8_t> q(RowBytes(type, cols) * rows);
    ASSERT_TRUE(QuantizeRow(type, x.data(), rows * cols, q.data()).ok());
    DequantizeRow(type, q.data(), x.data(), rows * cols);
    (*ref)[name] = RefTensor{type, x};
    std::vector<int64_t> ne =
        rows == 1 ? std::vector<int64_t>{cols} : std::vector<int64_t>{cols, rows};
    ASSERT_TRUE(w->AddTensorInfo(name, type, ne).ok()) << name;
    data.push_back(std::move(q));
  };
  if (var.rope_freqs) add("rope_freqs.weight", 1, D / 2, 3, 1.5f);
  add("token_embd.weight", V, E, 0, 0.5f);  // tied output
  add("output_norm.weight", 1, E, 1, 0.1f);
  const float s = 0.25f;
  for (int il = 0; il < L; ++il) {
    const std::string b = "blk." + std::to_string(il) + ".";
    add(b + "attn_norm.weight", 1, E, 1, 0.1f);
    add(b + "attn_q.weight", H * D, E, 0, s);
    add(b + "attn_k.weight", Hk * D, E, 0, s);
    add(b + "attn_v.weight", Hk * D, E, 0, s);
    if (var.qwen2) {
      add(b + "attn_q.bias", 1, H * D, 0, 0.5f);
      add(b + "attn_k.bias", 1, Hk * D, 0, 0.5f);
      add(b + "attn_v.bias", 1, Hk * D, 0, 0.5f);
    }
    if (var.qwen3) {
      add(b + "attn_q_norm.weight", 1, D, 1, 0.1f);
      add(b + "attn_k_norm.weight", 1, D, 1, 0.1f);
    }
    add(b + "attn_output.weight", E, H * D, 0, s / 2);
    add(b + "ffn_norm.weight", 1, E, 1, 0.1f);
    add(b + "ffn_gate.weight", F, E, 0, s);
    add(b + "ffn_up.weight", F, E, 0, s);
    add(b + "ffn_down.weight", E, F, 0, s / 2);
    if (arch == "gemma3") {
      add(b + "post_attention_norm.weight", 1, E, 1, 0.1f);
      add(b + "post_ffw_norm.weight", 1, E, 1, 0.1f);
      add(b + "attn_q_norm.weight", 1, D, 1, 0.1f);
      add(b + "attn_k_norm.weight", 1, D, 1, 0.1f);
    }
  }
  for (const auto& d : data) EXPECT_TRUE(w->WriteTensorData(d.data(), d.size()).ok());
  EXPECT_TRUE(w->Finish().ok());
  return path;
}

// ---- the reference: x is [T, n] row-major everywhere -----------------------

// y [T, rows] = x [T, cols] W^T; quantized W: x goes through Q8_0 first.
std::vector<float> Linear(const RefTensor& w, const std::vector<float>& x, int T) {
  const int64_t cols = static_cast<int64_t>(x.size()) / T;
  const int64_t rows = static_cast<int64_t>(w.w.size()) / cols;
  std::vector<float> xin = x;
  if (Traits(w.type).is_quantized) {
    std::vector<uint8_t> q(RowBytes(GgmlType::kQ8_0, cols));
    for (int t = 0; t < T; ++t) {
      for (int64_t i = 0; i < cols / 32; ++i) {
        QuantizeBlockQ8_0Act(&xin[t * cols + 32 * i], reinterpret_cast<BlockQ8_0*>(q.data()) + i);
      }
      DequantizeRow(GgmlType::kQ8_0, q.data(), &xin[t * cols], cols);
    }
  }
  std::vector<float> y(T * rows);
  for (int t = 0; t < T; ++t) {
    for (int64_t r = 0; r < rows; ++r) {
      double s = 0;
      for (int64_t i = 0; i < cols; ++i) s += double(w.w[r * cols + i]) * xin[t * cols + i];
      y[t * rows + r] = static_cast<float>(s);
    }
  }
  return y;
}

// RMSNorm over rows of `dim` with weight w [dim].
std::vector<float> Norm(const std::vector<float>& x, const std::vector<float>& w, int dim) {
  std::vector<float> y(x.size());
  for (size_t r = 0; r < x.size() / dim; ++r) {
    double ss = 0;
    for (int i = 0; i < dim; ++i) ss += double(x[r * dim + i]) * x[r * dim + i];
    const double inv = 1.0 / std::sqrt(ss / dim + 1e-6);
    for (int i = 0; i < dim; ++i) y[r * dim + i] = float(x[r * dim + i] * inv * w[i]);
  }
  return y;
}

// x [T, heads, D] rotated in place; position of token t is t; pair i's
// angle divided by factors[i] when given.
void Rope(std::vector<float>& x, int T, int heads, double base, bool neox,
          const std::vector<float>* factors) {
  for (int t = 0; t < T; ++t) {
    for (int h = 0; h < heads; ++h) {
      float* v = &x[(size_t(t) * heads + h) * D];
      for (int i = 0; i < D / 2; ++i) {
        const double th = t * std::pow(base, -2.0 * i / D) / (factors ? (*factors)[i] : 1.0);
        const int a = neox ? i : 2 * i, b = neox ? i + D / 2 : 2 * i + 1;
        const double x0 = v[a], x1 = v[b];
        v[a] = float(x0 * std::cos(th) - x1 * std::sin(th));
        v[b] = float(x0 * std::sin(th) + x1 * std::cos(th));
      }
    }
  }
}

// Causal GQA attention; window > 0 keeps positions > t - window.
std::vector<float> Attend(const std::vector<float>& q, const std::vector<float>& k,
                          const std::vector<float>& v, int T, int window) {
  std::vector<float> out(size_t(T) * H * D, 0.0f);
  for (int t = 0; t < T; ++t) {
    for (int h = 0; h < H; ++h) {
      const int kh = h / (H / Hk);
      const int lo = window > 0 ? std::max(0, t - window + 1) : 0;
      std::vector<double> sc;
      for (int j = lo; j <= t; ++j) {
        double s = 0;
        for (int i = 0; i < D; ++i) s += double(q[(t * H + h) * D + i]) * k[(j * Hk + kh) * D + i];
        sc.push_back(s / std::sqrt(double(D)));
      }
      const double m = *std::max_element(sc.begin(), sc.end());
      double sum = 0;
      for (double& s : sc) sum += (s = std::exp(s - m));
      for (int j = lo; j <= t; ++j) {
        for (int i = 0; i < D; ++i) {
          out[(t * H + h) * D + i] += float(sc[j - lo] / sum * v[(j * Hk + kh) * D + i]);
        }
      }
    }
  }
  return out;
}

// Logits [T, V] of tokens at positions 0..T-1.
std::vector<float> ReferenceLogits(const RefWeights& W, const Variant& var,
                                   const std::vector<int32_t>& tok) {
  const int T = static_cast<int>(tok.size());
  const bool gemma = var.gemma;
  const std::vector<float>* factors = var.rope_freqs ? &W.at("rope_freqs.weight").w : nullptr;
  auto add_bias = [](std::vector<float>& y, const std::vector<float>& b) {
    for (size_t i = 0; i < y.size(); ++i) y[i] += b[i % b.size()];
  };
  auto at = [&](const std::string& n) -> const RefTensor& { return W.at(n); };
  std::vector<float> x(size_t(T) * E);
  for (int t = 0; t < T; ++t) {
    for (int i = 0; i < E; ++i) {
      x[t * E + i] =
          at("token_embd.weight").w[tok[t] * E + i] * (gemma ? std::sqrt(float(E)) : 1.0f);
    }
  }
  for (int il = 0; il < L; ++il) {
    const std::string b = "blk." + std::to_string(il) + ".";
    const bool sliding = gemma && il == 0;
    std::vector<float> xn = Norm(x, at(b + "attn_norm.weight").w, E);
    std::vector<float> q = Linear(at(b + "attn_q.weight"), xn, T);
    std::vector<float> k = Linear(at(b + "attn_k.weight"), xn, T);
    std::vector<float> v = Linear(at(b + "attn_v.weight"), xn, T);
    if (var.qwen2) {
      add_bias(q, at(b + "attn_q.bias").w);
      add_bias(k, at(b + "attn_k.bias").w);
      add_bias(v, at(b + "attn_v.bias").w);
    }
    if (var.qk_norm()) {
      q = Norm(q, at(b + "attn_q_norm.weight").w, D);
      k = Norm(k, at(b + "attn_k_norm.weight").w, D);
    }
    const double base = gemma ? (sliding ? 10000.0 : 1e6) : 500.0;
    Rope(q, T, H, base, var.neox(), factors);
    Rope(k, T, Hk, base, var.neox(), factors);
    std::vector<float> o =
        Linear(at(b + "attn_output.weight"), Attend(q, k, v, T, sliding ? kWindow : 0), T);
    if (gemma) o = Norm(o, at(b + "post_attention_norm.weight").w, E);
    for (size_t i = 0; i < x.size(); ++i) x[i] += o[i];
    xn = Norm(x, at(b + "ffn_norm.weight").w, E);
    std::vector<float> g = Linear(at(b + "ffn_gate.weight"), xn, T);
    const std::vector<float> u = Linear(at(b + "ffn_up.weight"), xn, T);
    for (size_t i = 0; i < g.size(); ++i) {
      const double z = g[i];
      const double act =
          gemma ? 0.5 * z * (1 + std::tanh(std::sqrt(2 / M_PI) * (z + 0.044715 * z * z * z)))
                : z / (1 + std::exp(-z));
      g[i] = float(act * u[i]);
    }
    std::vector<float> d = Linear(at(b + "ffn_down.weight"), g, T);
    if (gemma) d = Norm(d, at(b + "post_ffw_norm.weight").w, E);
    for (size_t i = 0; i < x.size(); ++i) x[i] += d[i];
  }
  std::vector<float> logits =
      Linear(at("token_embd.weight"), Norm(x, at("output_norm.weight").w, E), T);
  if (gemma) {
    for (float& l : logits) l = float(5.0 * std::tanh(l / 5.0));
  }
  return logits;
}

void Compare(const std::string& arch, GgmlType mat_type, double rel_tol) {
  RefWeights ref;
  auto model = LoadModel(WriteModel(arch, mat_type, &ref));
  ASSERT_TRUE(model.ok()) << model.status();
  const MatMulKernel* packed = BestMatMulKernel(WType::kQ4_0x16);
  if (mat_type == GgmlType::kQ4_0 && std::string(packed->target) != "scalar") {
    // The loader repacked the layers and the (tied) output head; the token
    // embedding keeps the file layout for its row lookups.
    EXPECT_EQ((*model)->layers[0].wq.type, WType::kQ4_0x16);
    EXPECT_EQ((*model)->output.type, WType::kQ4_0x16);
    EXPECT_EQ((*model)->tok_embd.type, WType::kQ4_0);
  }
  const std::vector<int32_t> toks = {1, 17, 90, 3, 55, 42, 7, 81, 5, 60};
  const std::vector<float> want = ReferenceLogits(ref, Variant(arch), toks);
  ThreadPool pool(2);
  auto s = Session::Create(**model, 32, KvType::kF32, pool);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_TRUE((*s)->Eval(toks.data(), static_cast<int>(toks.size()), /*all_logits=*/true).ok());
  double max_abs = 0, max_err = 0;
  for (float w : want) max_abs = std::max(max_abs, double(std::fabs(w)));
  ASSERT_GT(max_abs, 0.5) << arch;  // the logits are not degenerate
  for (size_t i = 0; i < want.size(); ++i) {
    const double err = std::fabs(double((*s)->logits()[i]) - want[i]);
    max_err = std::max(max_err, err);
    ASSERT_LE(err, rel_tol * max_abs)
        << arch << " type " << int(mat_type) << " token " << i / V << " logit " << i % V;
  }
  ::testing::Test::RecordProperty(arch + "_" + std::to_string(int(mat_type)) + "_max_rel_err",
                                  std::to_string(max_err / max_abs));
}

TEST(ForwardReferenceTest, LlamaF32) { Compare("llama", GgmlType::kF32, 1e-4); }
TEST(ForwardReferenceTest, Gemma3F32) { Compare("gemma3", GgmlType::kF32, 1e-4); }
TEST(ForwardReferenceTest, LlamaQ4_0) { Compare("llama", GgmlType::kQ4_0, 5e-4); }
TEST(ForwardReferenceTest, Gemma3Q4_0) { Compare("gemma3", GgmlType::kQ4_0, 5e-4); }
TEST(ForwardReferenceTest, LlamaQ8_0) { Compare("llama", GgmlType::kQ8_0, 5e-4); }
TEST(ForwardReferenceTest, LlamaRopeFreqsF32) { Compare("llama_rope_freqs", GgmlType::kF32, 1e-4); }
TEST(ForwardReferenceTest, Qwen2F32) { Compare("qwen2", GgmlType::kF32, 1e-4); }
TEST(ForwardReferenceTest, Qwen3F32) { Compare("qwen3", GgmlType::kF32, 1e-4); }
TEST(ForwardReferenceTest, LlamaRopeFreqsQ4_0) { Compare("llama_rope_freqs", GgmlType::kQ4_0, 5e-4); }
TEST(ForwardReferenceTest, Qwen2Q4_0) { Compare("qwen2", GgmlType::kQ4_0, 5e-4); }
TEST(ForwardReferenceTest, Qwen3Q8_0) { Compare("qwen3", GgmlType::kQ8_0, 5e-4); }
TEST(ForwardReferenceTest, Gemma3Q8_0) { Compare("gemma3", GgmlType::kQ8_0, 5e-4); }

}  // namespace
}  // namespace qatk::inference
