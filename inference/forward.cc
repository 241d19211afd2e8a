#include "inference/forward.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "formats/quant/types.h"
#include "formats/util/status_macros.h"
#include "inference/cuda/cuda_ops.h"

namespace qatk::inference {

absl::StatusOr<KvType> KvTypeFromName(const std::string& name) {
  if (name == "f32") return KvType::kF32;
  if (name == "f16") return KvType::kF16;
  if (name == "int8") return KvType::kInt8;
  if (name == "q8_0") return KvType::kQ8_0;
  return absl::InvalidArgumentError(
      absl::StrCat("--kv-type '", name, "': expected one of f32, f16, int8, q8_0"));
}

absl::StatusOr<Backend> BackendFromName(const std::string& name) {
  if (name == "cpu") return Backend::kCpu;
  if (name == "cuda") return Backend::kCuda;
  return absl::InvalidArgumentError(absl::StrCat("--device '", name, "': expected cpu or cuda"));
}

const char* BackendName(Backend b) { return b == Backend::kCuda ? "cuda" : "cpu"; }

absl::StatusOr<std::unique_ptr<Session>> Session::Create(const Model& model, int n_ctx,
                                                         KvType kv_type, ThreadPool& pool,
                                                         int max_batch, Backend backend) {
  const ModelConfig& c = model.config;
  if (n_ctx <= 0) return absl::InvalidArgumentError(absl::StrCat("context ", n_ctx, " must be > 0"));
  std::unique_ptr<Session> s(new Session(model, pool));
  s->backend_ = backend;
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
  const int B = s->max_batch_ = std::max(1, std::min(max_batch, n_ctx));
  if (backend == Backend::kCpu) {
    kv.k.assign(c.n_layer, std::vector<uint8_t>(kv.row_bytes * n_ctx));
    kv.v.assign(c.n_layer, std::vector<uint8_t>(kv.row_bytes * n_ctx));
    s->ops_ = MakeCpuOps(c, n_ctx, pool);
  } else {
    ASSIGN_OR_RETURN(s->ops_, MakeCudaOps(&model, c, kv, B));
  }
  Ops& o = *s->ops_;
  const size_t E = c.n_embd, qd = size_t(c.n_head) * c.head_dim;
  s->x_ = o.Alloc(B * E);
  s->xn_ = o.Alloc(B * E);
  s->tmp_ = o.Alloc(B * E);
  s->q_ = o.Alloc(B * qd);
  s->att_ = o.Alloc(B * qd);
  s->k_ = o.Alloc(B * kv.row_elems);
  s->v_ = o.Alloc(B * kv.row_elems);
  s->g_ = o.Alloc(size_t(B) * c.n_ff);
  s->u_ = o.Alloc(size_t(B) * c.n_ff);
  s->logits_ = o.Alloc(size_t(B) * c.n_vocab);
  if (!o.host_memory()) {
    s->embd_stage_.resize(B * E);
    s->logits_stage_.resize(size_t(B) * c.n_vocab);
  }
  s->logits_host_ = o.host_memory() ? s->logits_ : s->logits_stage_.data();
  return s;
}

void Session::Layer(int il, int n) {
  const ModelConfig& c = model_.config;
  const LayerWeights& L = model_.layers[il];
  Ops& o = *ops_;
  const int E = c.n_embd, D = c.head_dim, H = c.n_head, Hk = c.n_head_kv;
  o.RmsNorm(x_, L.attn_norm.data(), n, E, c.rms_eps, xn_);
  o.MatMul(L.wq, xn_, n, q_);
  o.MatMul(L.wk, xn_, n, k_);
  o.MatMul(L.wv, xn_, n, v_);
  if (!L.bq.empty()) o.AddBias(q_, L.bq.data(), n, H * D);
  if (!L.bk.empty()) o.AddBias(k_, L.bk.data(), n, Hk * D);
  if (!L.bv.empty()) o.AddBias(v_, L.bv.data(), n, Hk * D);
  if (c.qk_norm) {
    o.RmsNorm(q_, L.q_norm.data(), n * H, D, c.rms_eps, q_);
    o.RmsNorm(k_, L.k_norm.data(), n * Hk, D, c.rms_eps, k_);
  }
  const bool sliding = c.IsSlidingLayer(il);
  const float base = sliding ? c.rope_base_swa : c.rope_base;
  const float* factors = model_.rope_freqs.empty() ? nullptr : model_.rope_freqs.data();
  o.Rope(q_, n, H, D, n_past_, base, c.rope_neox, factors);
  o.Rope(k_, n, Hk, D, n_past_, base, c.rope_neox, factors);
  o.Attention(q_, k_, v_, n, n_past_, il, sliding ? c.sliding_window : 0, cache_, att_);
  o.MatMul(L.wo, att_, n, tmp_);
  if (c.post_norms) o.RmsNorm(tmp_, L.post_attn_norm.data(), n, E, c.rms_eps, tmp_);
  o.Add(x_, tmp_, int64_t(n) * E);
  o.RmsNorm(x_, L.ffn_norm.data(), n, E, c.rms_eps, xn_);
  o.MatMul(L.gate, xn_, n, g_);
  o.MatMul(L.up, xn_, n, u_);
  o.GatedAct(g_, u_, int64_t(n) * c.n_ff, c.gelu);
  o.MatMul(L.down, g_, n, tmp_);
  if (c.post_norms) o.RmsNorm(tmp_, L.post_ffw_norm.data(), n, E, c.rms_eps, tmp_);
  o.Add(x_, tmp_, int64_t(n) * E);
}

void Session::EvalBatch(const int32_t* tokens, int n, bool all_logits) {
  const ModelConfig& c = model_.config;
  const int E = c.n_embd;
  float* embd = ops_->host_memory() ? x_ : embd_stage_.data();
  for (int t = 0; t < n; ++t) {
    float* xr = embd + size_t(t) * E;
    DequantizeMatrixRow(model_.tok_embd, tokens[t], xr);
    if (c.embed_scale != 1.0f) {
      for (int i = 0; i < E; ++i) xr[i] *= c.embed_scale;
    }
  }
  if (embd != x_) ops_->Upload(embd, size_t(n) * E, x_);
  const int first = all_logits ? 0 : n - 1;
  const int m = n - first;
  const size_t nl = size_t(m) * c.n_vocab;
  if (!ops_->BeginStep(n_past_, n)) {
    for (int il = 0; il < c.n_layer; ++il) Layer(il, n);
    ops_->RmsNorm(x_ + size_t(first) * E, model_.output_norm.data(), m, E, c.rms_eps, xn_);
    ops_->MatMul(model_.output, xn_, m, logits_);
    if (c.final_softcap > 0) ops_->Softcap(logits_, int64_t(nl), c.final_softcap);
    ops_->EndStep();
  }
  logits_host_ = ops_->ToHost(logits_, nl, logits_stage_.data());
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
    EvalBatch(tokens + b, m, all_logits);
  }
  return absl::OkStatus();
}

}  // namespace qatk::inference
