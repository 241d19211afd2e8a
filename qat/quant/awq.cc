#include "qat/quant/awq.h"

#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "formats/util/status_macros.h"
#include "qat/quant/fake_quant.h"
#include "qat/quant/qlinear.h"

namespace qatk::qat {
namespace {

using torch::Tensor;

// tr(E H E^T) for E = W - Q4_0(W diag(s)) diag(s)^-1, in fp64.
double ScaledRtnError(const Tensor& w, const Tensor& h, const Tensor& s) {
  const Tensor wd = w.to(torch::kDouble);
  const Tensor scaled = (wd * s).to(torch::kFloat);
  const Tensor e = wd - Q4_0Dequantized(scaled).to(torch::kDouble) / s;
  return (e.matmul(h) * e).sum().item<double>();
}

struct Group {
  std::string name;                // the first linear's name
  std::vector<QLinearImpl*> linears;
  std::vector<std::string> names;
  Tensor norm_weight;              // fold into this norm (undefined: into up_rows)
  bool gemma_norm = false;         // the norm scales by 1 + weight
  Tensor up_rows;                  // fold into these rows (down_proj's group)
};

// y = x * (1 + w) (Gemma) or x * w: multiplying the output by 1/s.
void FoldIntoNorm(Tensor& w, const Tensor& s, bool gemma) {
  const Tensor sf = s.to(w.scalar_type());
  if (gemma) {
    w.copy_((1.0 + w) / sf - 1.0);
  } else {
    w.copy_(w / sf);
  }
}

}  // namespace

Tensor AwqScales(const Tensor& h, double alpha) {
  const Tensor d = h.diagonal().to(torch::kDouble).clamp_min(0).sqrt();
  const double top = d.max().item<double>();
  const Tensor a = d.clamp_min(top > 0 ? 1e-6 * top : 1.0).pow(alpha);
  return a / std::sqrt(a.max().item<double>() * a.min().item<double>());
}

absl::StatusOr<std::vector<AwqGroup>> ApplyAwq(CausalLM& model, std::map<std::string, Tensor>& hessians,
                                               const AwqOptions& o) {
  torch::NoGradGuard no_grad;
  const bool gemma = model->config().is_gemma();
  std::vector<Group> groups;
  for (size_t i = 0; i < model->model->layers->size(); ++i) {
    auto* layer = model->model->layers[i]->as<DecoderLayerImpl>();
    const std::string p = absl::StrCat("model.layers.", i, ".");
    Attention& at = layer->self_attn;
    Mlp& mlp = layer->mlp;
    groups.push_back({p + "self_attn.q_proj", {at->q_proj.get(), at->k_proj.get(), at->v_proj.get()},
                      {p + "self_attn.q_proj", p + "self_attn.k_proj", p + "self_attn.v_proj"},
                      layer->input_layernorm->weight, gemma, Tensor()});
    RMSNorm& mlp_norm = gemma ? layer->pre_feedforward_layernorm : layer->post_attention_layernorm;
    groups.push_back({p + "mlp.gate_proj", {mlp->gate_proj.get(), mlp->up_proj.get()},
                      {p + "mlp.gate_proj", p + "mlp.up_proj"}, mlp_norm->weight, gemma, Tensor()});
    groups.push_back({p + "mlp.down_proj", {mlp->down_proj.get()}, {p + "mlp.down_proj"}, Tensor(), false,
                      mlp->up_proj->weight});
  }
  std::vector<AwqGroup> out;
  for (Group& g : groups) {
    bool usable = true;
    for (size_t k = 0; k < g.linears.size(); ++k) {
      usable = usable && g.linears[k]->quant().weight.scheme == QuantScheme::kQ4_0 && hessians.count(g.names[k]);
    }
    if (!usable) continue;
    const Tensor h = hessians.at(g.names[0]).to(torch::kDouble);
    const int64_t c = g.linears[0]->in_features;
    if (h.dim() != 2 || h.size(0) != c || h.size(1) != c) {
      return absl::InvalidArgumentError(absl::StrCat(g.name, ": Hessian is not [", c, ", ", c, "]"));
    }
    if (!torch::isfinite(h).all().item<bool>()) {
      return absl::InvalidArgumentError(absl::StrCat(g.name, ": Hessian is not finite"));
    }
    auto error_at = [&](const Tensor& s) {
      double e = 0;
      for (QLinearImpl* l : g.linears) e += ScaledRtnError(l->weight, h, s);
      return e;
    };
    AwqGroup r{g.name, 0.0, 0.0, 0.0};
    Tensor best = torch::ones({c}, h.options());
    r.rtn_error = r.error = error_at(best);
    for (int step = 1; step <= o.grid; ++step) {
      const double alpha = static_cast<double>(step) / o.grid;
      const Tensor s = AwqScales(h, alpha);
      const double e = error_at(s);
      if (e < r.error) {
        r.alpha = alpha;
        r.error = e;
        best = s;
      }
    }
    if (r.alpha > 0) {
      for (QLinearImpl* l : g.linears) {
        l->weight.copy_((l->weight.to(torch::kDouble) * best).to(l->weight.scalar_type()));
      }
      if (g.norm_weight.defined()) {
        FoldIntoNorm(g.norm_weight, best, g.gemma_norm);
      } else {
        g.up_rows.copy_((g.up_rows.to(torch::kDouble) / best.unsqueeze(1)).to(g.up_rows.scalar_type()));
      }
      const Tensor inv = 1.0 / best;
      for (const std::string& n : g.names) {
        Tensor& hn = hessians.at(n);
        hn = (hn.to(torch::kDouble) * inv.unsqueeze(0) * inv.unsqueeze(1)).to(hn.scalar_type());
      }
    }
    if (o.verbose) {
      std::fprintf(stderr, "[awq] %-32s alpha %.2f  round-to-nearest error %.4g -> %.4g (%.1f%% less)\n",
                   g.name.c_str(), r.alpha, r.rtn_error, r.error,
                   r.rtn_error > 0 ? 100.0 * (1.0 - r.error / r.rtn_error) : 0.0);
    }
    out.push_back(r);
  }
  return out;
}

}  // namespace qatk::qat
