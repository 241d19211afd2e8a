// CpuOps: the forward pass's math on the CPU thread pool.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <list>

#include "formats/quant/codecs.h"
#include "formats/quant/fp16.h"
#include "formats/quant/spec.h"
#include "inference/forward.h"

namespace qatk::inference {
namespace {

void StoreKvRow(const KvCache& c, float scale, const float* x, uint8_t* dst) {
  switch (c.type) {
    case KvType::kF32:
      std::memcpy(dst, x, c.row_elems * sizeof(float));
      return;
    case KvType::kF16: {
      uint16_t* h = reinterpret_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < c.row_elems; ++i) h[i] = Fp32ToFp16(x[i]);
      return;
    }
    case KvType::kQ8_0: {
      BlockQ8_0* b = reinterpret_cast<BlockQ8_0*>(dst);
      QuantizeRowQ8_0Act(x, b, c.row_elems / 32);  // the codec's AVX2 path when available
      return;
    }
    case KvType::kInt8:  // the shared codec: same rounding and range as the QAT graph
      QuantizeWithScale(c.int8_spec, x, c.row_elems, scale, reinterpret_cast<int8_t*>(dst));
      return;
  }
}

// Elements [off, off+n) of a stored row as fp32 (off, n multiples of 32 for Q8_0).
void LoadKvSlice(const KvCache& c, float scale, const uint8_t* row, int64_t off, int64_t n,
                 float* out) {
  switch (c.type) {
    case KvType::kF32:
      std::memcpy(out, reinterpret_cast<const float*>(row) + off, n * sizeof(float));
      return;
    case KvType::kF16:
      F16ToF32Row(reinterpret_cast<const uint16_t*>(row) + off, out, n);
      return;
    case KvType::kQ8_0:
      DequantizeRow(GgmlType::kQ8_0, row + off / 32 * sizeof(BlockQ8_0), out, n);
      return;
    case KvType::kInt8: {
      const int8_t* q = reinterpret_cast<const int8_t*>(row) + off;
      for (int64_t i = 0; i < n; ++i) out[i] = q[i] * scale;
      return;
    }
  }
}

class CpuOps final : public Ops {
 public:
  CpuOps(const ModelConfig& c, int n_ctx, ThreadPool& pool) : c_(c), pool_(pool) {
    group_ = c.n_head / c.n_head_kv;
    per_thread_ = static_cast<size_t>(group_) * n_ctx + c.head_dim + group_ * c.head_dim;
    scratch_.resize(per_thread_ * pool.size());
  }

  float* Alloc(size_t n) override {
    buffers_.emplace_back(n);
    return buffers_.back().data();
  }
  void Upload(const float* host, size_t n, float* dst) override {
    if (dst != host) std::memcpy(dst, host, n * sizeof(float));
  }
  const float* ToHost(const float* src, size_t, float*) override { return src; }
  bool host_memory() const override { return true; }

  void Add(float* x, const float* y, int64_t n) override {
    for (int64_t i = 0; i < n; ++i) x[i] += y[i];
  }

  void Softcap(float* x, int64_t n, float cap) override {
    for (int64_t i = 0; i < n; ++i) x[i] = cap * std::tanh(x[i] / cap);
  }

  void MatMul(const QMatrix& w, const float* x, int n, float* y) override {
    inference::MatMul(w, x, n, y, pool_);
  }

  void RmsNorm(const float* x, const float* w, int n, int dim, float eps, float* y) override {
    for (int t = 0; t < n; ++t) {
      const float* xr = x + static_cast<int64_t>(t) * dim;
      float* yr = y + static_cast<int64_t>(t) * dim;
      double ss = 0;
      for (int i = 0; i < dim; ++i) ss += double(xr[i]) * xr[i];
      const float s = 1.0f / std::sqrt(static_cast<float>(ss / dim) + eps);
      for (int i = 0; i < dim; ++i) yr[i] = xr[i] * s * w[i];
    }
  }

  void AddBias(float* x, const float* b, int n, int dim) override {
    for (int t = 0; t < n; ++t) {
      float* xr = x + static_cast<int64_t>(t) * dim;
      for (int i = 0; i < dim; ++i) xr[i] += b[i];
    }
  }

  void Rope(float* x, int T, int n_heads, int D, int pos0, float base, bool neox,
            const float* freq_factors) override {
    const int half = D / 2;
    for (int t = 0; t < T; ++t) {
      for (int i = 0; i < half; ++i) {
        double theta = (pos0 + t) * std::pow(double(base), -2.0 * i / D);
        if (freq_factors != nullptr) theta /= freq_factors[i];
        const float cs = static_cast<float>(std::cos(theta)), sn = static_cast<float>(std::sin(theta));
        for (int h = 0; h < n_heads; ++h) {
          float* hx = x + (static_cast<int64_t>(t) * n_heads + h) * D;
          const int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
          const float x0 = hx[a], x1 = hx[b];
          hx[a] = x0 * cs - x1 * sn;
          hx[b] = x0 * sn + x1 * cs;
        }
      }
    }
  }

  void Attention(const float* q, const float* k, const float* v, int T, int pos0, int layer,
                 int window, KvCache& c, float* out) override {
    const float ks = c.k_scale.empty() ? 0 : c.k_scale[layer];
    const float vs = c.v_scale.empty() ? 0 : c.v_scale[layer];
    for (int t = 0; t < T; ++t) {
      StoreKvRow(c, ks, k + t * c.row_elems, c.k[layer].data() + (pos0 + t) * c.row_bytes);
      StoreKvRow(c, vs, v + t * c.row_elems, c.v[layer].data() + (pos0 + t) * c.row_bytes);
    }
    const int hk = c_.n_head_kv;
    pool_.ParallelFor(static_cast<int64_t>(T) * hk, [&](int64_t b, int64_t e, int th) {
      for (int64_t u = b; u < e; ++u) {
        HeadGroup(q, static_cast<int>(u / hk), static_cast<int>(u % hk), pos0, layer, window, c,
                  ks, vs, scratch_.data() + th * per_thread_, out);
      }
    });
  }

  void GatedAct(float* g, const float* u, int64_t n, bool gelu) override {
    for (int64_t i = 0; i < n; ++i) {
      const float x = g[i];
      float a;
      if (gelu) {
        a = 0.5f * x * (1.0f + std::tanh(0.7978845608028654f * x * (1.0f + 0.044715f * x * x)));
      } else {
        a = x / (1.0f + std::exp(-x));
      }
      g[i] = a * u[i];
    }
  }

 private:
  // Query heads kvh*group .. +group of token t against cached positions.
  void HeadGroup(const float* q, int t, int kvh, int pos0, int layer, int window,
                 const KvCache& c, float ks, float vs, float* scratch, float* out) {
    const int D = c_.head_dim, H = c_.n_head;
    const int p = pos0 + t;
    const int lo = window > 0 ? std::max(0, p - window + 1) : 0;
    const int n = p - lo + 1;
    float* scores = scratch;            // [n, group]: position j's scores of the group's heads
    float* row = scores + static_cast<size_t>(group_) * n;  // [D]
    float* acc = row + D;               // [group, D]
    const float* qg = q + (static_cast<int64_t>(t) * H + kvh * group_) * D;  // [group, D]
    for (int j = 0; j < n; ++j) {
      LoadKvSlice(c, ks, c.k[layer].data() + (lo + j) * c.row_bytes, kvh * D, D, row);
      DotF32Rows(qg, D, group_, row, D, scores + j * group_);
    }
    for (int g = 0; g < group_; ++g) {
      float m = -INFINITY;
      for (int j = 0; j < n; ++j) m = std::max(m, scores[j * group_ + g] *= c_.attn_scale);
      float sum = 0;
      for (int j = 0; j < n; ++j) {
        float& sj = scores[j * group_ + g];
        sum += (sj = std::exp(sj - m));
      }
      for (int j = 0; j < n; ++j) scores[j * group_ + g] /= sum;
    }
    std::fill(acc, acc + group_ * D, 0.0f);
    for (int j = 0; j < n; ++j) {
      LoadKvSlice(c, vs, c.v[layer].data() + (lo + j) * c.row_bytes, kvh * D, D, row);
      AxpyF32Rows(scores + j * group_, row, acc, D, group_, D);
    }
    for (int g = 0; g < group_; ++g) {
      std::memcpy(out + (static_cast<int64_t>(t) * H + kvh * group_ + g) * D, acc + g * D,
                  D * sizeof(float));
    }
  }

  const ModelConfig c_;
  ThreadPool& pool_;
  int group_ = 1;
  size_t per_thread_ = 0;
  std::vector<float> scratch_;
  std::list<std::vector<float>> buffers_;  // Alloc'd activations (stable addresses)
};

}  // namespace

std::unique_ptr<Ops> MakeCpuOps(const ModelConfig& config, int n_ctx, ThreadPool& pool) {
  return std::make_unique<CpuOps>(config, n_ctx, pool);
}

}  // namespace qatk::inference
