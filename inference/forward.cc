#include "inference/forward.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "formats/quant/types.h"

namespace qatk::inference {

absl::StatusOr<KvType> KvTypeFromName(const std::string& name) {
  if (name == "f32") return KvType::kF32;
  if (name == "f16") return KvType::kF16;
  if (name == "int8") return KvType::kInt8;
  if (name == "q8_0") return KvType::kQ8_0;
  return absl::InvalidArgumentError(
      absl::StrCat("--kv-type '", name, "': expected one of f32, f16, int8, q8_0"));
}

absl::StatusOr<std::unique_ptr<Session>> Session::Create(const Model& model, int n_ctx,
                                                         KvType kv_type, ThreadPool& pool,
                                                         int max_batch) {
  const ModelConfig& c = model.config;
  if (n_ctx <= 0) return absl::InvalidArgumentError(absl::StrCat("context ", n_ctx, " must be > 0"));
  std::unique_ptr<Session> s(new Session(model, pool));
  KvCache& kv = s->cache_;
  kv.type = kv_type;
  kv.n_ctx = n_ctx;
  kv.row_elems = static_cast<int64_t>(c.n_head_kv) * c.head_dim;
  switch (kv_type) {
    case KvType::kF32: kv.row_bytes = kv.row_elems * 4; break;
    case KvType::kF16: kv.row_bytes = kv.row_elems * 2; break;
    case KvType::kInt8: kv.row_bytes = kv.row_elems; break;
    case KvType::kQ8_0:
      if (c.head_dim % 32 != 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("--kv-type q8_0 needs head_dim % 32 == 0 (head_dim ", c.head_dim, ")"));
      }
      kv.row_bytes = RowBytes(GgmlType::kQ8_0, kv.row_elems);
      break;
  }
  if (kv_type == KvType::kInt8) {
    for (const LayerWeights& l : model.layers) {
      if (!(l.k_scale > 0) || !(l.v_scale > 0)) {
        return absl::InvalidArgumentError(
            "--kv-type int8 needs static k/v cache scales, which this model file lacks");
      }
      kv.k_scale.push_back(l.k_scale);
      kv.v_scale.push_back(l.v_scale);
    }
    kv.int8_spec = model.layers.empty() ? DefaultKvSpec() : model.layers[0].kv_spec;
  }
  kv.k.assign(c.n_layer, std::vector<uint8_t>(kv.row_bytes * n_ctx));
  kv.v.assign(c.n_layer, std::vector<uint8_t>(kv.row_bytes * n_ctx));
  const int B = s->max_batch_ = std::max(1, std::min(max_batch, n_ctx));
  const size_t E = c.n_embd, qd = size_t(c.n_head) * c.head_dim;
  s->x_.resize(B * E);
  s->xn_.resize(B * E);
  s->tmp_.resize(B * E);
  s->q_.resize(B * qd);
  s->att_.resize(B * qd);
  s->k_.resize(B * kv.row_elems);
  s->v_.resize(B * kv.row_elems);
  s->g_.resize(size_t(B) * c.n_ff);
  s->u_.resize(size_t(B) * c.n_ff);
  s->logits_.resize(size_t(B) * c.n_vocab);
  s->ops_ = MakeCpuOps(c, n_ctx, pool);
  return s;
}

void Session::Layer(int il, int n) {
  const ModelConfig& c = model_.config;
  const LayerWeights& L = model_.layers[il];
  Ops& o = *ops_;
  const int E = c.n_embd, D = c.head_dim, H = c.n_head, Hk = c.n_head_kv;
  o.RmsNorm(x_.data(), L.attn_norm.data(), n, E, c.rms_eps, xn_.data());
  o.MatMul(L.wq, xn_.data(), n, q_.data());
  o.MatMul(L.wk, xn_.data(), n, k_.data());
  o.MatMul(L.wv, xn_.data(), n, v_.data());
  if (c.qk_norm) {
    o.RmsNorm(q_.data(), L.q_norm.data(), n * H, D, c.rms_eps, q_.data());
    o.RmsNorm(k_.data(), L.k_norm.data(), n * Hk, D, c.rms_eps, k_.data());
  }
  const bool sliding = c.IsSlidingLayer(il);
  const float base = sliding ? c.rope_base_swa : c.rope_base;
  o.Rope(q_.data(), n, H, D, n_past_, base, c.rope_neox);
  o.Rope(k_.data(), n, Hk, D, n_past_, base, c.rope_neox);
  o.Attention(q_.data(), k_.data(), v_.data(), n, n_past_, il, sliding ? c.sliding_window : 0,
              cache_, att_.data());
  o.MatMul(L.wo, att_.data(), n, tmp_.data());
  if (c.post_norms) o.RmsNorm(tmp_.data(), L.post_attn_norm.data(), n, E, c.rms_eps, tmp_.data());
  for (size_t i = 0; i < size_t(n) * E; ++i) x_[i] += tmp_[i];
  o.RmsNorm(x_.data(), L.ffn_norm.data(), n, E, c.rms_eps, xn_.data());
  o.MatMul(L.gate, xn_.data(), n, g_.data());
  o.MatMul(L.up, xn_.data(), n, u_.data());
  o.GatedAct(g_.data(), u_.data(), int64_t(n) * c.n_ff, c.gelu);
  o.MatMul(L.down, g_.data(), n, tmp_.data());
  if (c.post_norms) o.RmsNorm(tmp_.data(), L.post_ffw_norm.data(), n, E, c.rms_eps, tmp_.data());
  for (size_t i = 0; i < size_t(n) * E; ++i) x_[i] += tmp_[i];
}

void Session::EvalBatch(const int32_t* tokens, int n, bool all_logits, float* logits) {
  const ModelConfig& c = model_.config;
  const int E = c.n_embd;
  for (int t = 0; t < n; ++t) {
    float* xr = x_.data() + size_t(t) * E;
    DequantizeMatrixRow(model_.tok_embd, tokens[t], xr);
    if (c.embed_scale != 1.0f) {
      for (int i = 0; i < E; ++i) xr[i] *= c.embed_scale;
    }
  }
  for (int il = 0; il < c.n_layer; ++il) Layer(il, n);
  const int first = all_logits ? 0 : n - 1;
  const int m = n - first;
  ops_->RmsNorm(x_.data() + size_t(first) * E, model_.output_norm.data(), m, E, c.rms_eps,
                xn_.data());
  ops_->MatMul(model_.output, xn_.data(), m, logits);
  if (c.final_softcap > 0) {
    const float cap = c.final_softcap;
    for (size_t i = 0; i < size_t(m) * c.n_vocab; ++i) logits[i] = cap * std::tanh(logits[i] / cap);
  }
  n_past_ += n;
}

absl::Status Session::Eval(const int32_t* tokens, int n, bool all_logits) {
  if (n <= 0) return absl::InvalidArgumentError("Eval needs at least one token");
  if (n_past_ + n > cache_.n_ctx) {
    return absl::OutOfRangeError(absl::StrCat("context full: ", n_past_, " + ", n,
                                              " tokens > n_ctx ", cache_.n_ctx));
  }
  if (all_logits && n > max_batch_) {
    return absl::InvalidArgumentError(
        absl::StrCat("all logits of ", n, " tokens exceed the batch of ", max_batch_));
  }
  for (int i = 0; i < n; ++i) {
    if (tokens[i] < 0 || tokens[i] >= model_.config.n_vocab) {
      return absl::InvalidArgumentError(absl::StrCat("token id ", tokens[i], " out of range"));
    }
  }
  for (int b = 0; b < n; b += max_batch_) {
    const int m = std::min(max_batch_, n - b);
    EvalBatch(tokens + b, m, all_logits, logits_.data());
  }
  return absl::OkStatus();
}

}  // namespace qatk::inference
