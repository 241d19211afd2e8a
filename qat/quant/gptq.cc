#include "qat/quant/gptq.h"

#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "formats/quant/codecs.h"
#include "formats/util/status_macros.h"
#include "qat/quant/fake_quant.h"
#include "qat/quant/qlinear.h"

namespace qatk::qat {
namespace {

using torch::Tensor;
namespace idx = torch::indexing;

constexpr int64_t kBlock = 32;  // Q4_0 elements per block (kQK4_0)

// d [R] f32 of the Q4_0 block x [R, 32] by the reference rule, rounded to
// fp16 (so it is stored exactly as weight_scale and in the GGUF).
Tensor BlockScaleFp16(const Tensor& x) {
  const Tensor d = Q4_0CodesTensor(x.to(torch::kFloat).contiguous()).second.reshape({-1});  // [R] m / -8
  return d.to(torch::kHalf).to(torch::kFloat);
}

// tr(E H E^T) for E = a - b ([R, C]) and h [C, C], all f64.
double OutputError(const Tensor& a, const Tensor& b, const Tensor& h) {
  const Tensor e = a - b;
  return (e.matmul(h) * e).sum().item<double>();
}

// The upper Cholesky factor of (damped H)^-1; dead inputs (H_jj = 0) get
// H_jj = 1 first.
absl::StatusOr<Tensor> InverseFactor(Tensor h /*[C, C] f64*/, double percdamp) {
  const int64_t c = h.size(0);
  const Tensor dead = h.diagonal() == 0;  // [C]
  h.diagonal().masked_fill_(dead, 1.0);
  h.diagonal().add_(percdamp * h.diagonal().mean().item<double>());
  auto [l, info] = torch::linalg_cholesky_ex(h);
  if (info.item<int64_t>() != 0) {
    return absl::InvalidArgumentError(absl::StrCat("the damped Hessian [", c, ", ", c,
                                                   "] is not positive definite (raise the damping)"));
  }
  auto [u, info2] = torch::linalg_cholesky_ex(torch::cholesky_inverse(l), /*upper=*/true);
  if (info2.item<int64_t>() != 0) return absl::InvalidArgumentError("the inverse Hessian is not positive definite");
  return u;
}

// The column sweep over wd [R, C] f64 (updated in place) with the upper
// inverse-Hessian factor u [C, C], both in sweep order: sweep column j is
// column order[j] of the weight (order: [C] int64, or undefined for the
// identity). Fills r's dequantized, codes and scales in the weight's order.
void Sweep(Tensor wd, const Tensor& u, int64_t block_size, const Tensor& order, GptqResult* r) {
  const int64_t rows = wd.size(0), cols = wd.size(1);
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat).device(wd.device());
  Tensor q = torch::empty({rows, cols}, f32);      // dequantized
  Tensor codes = torch::empty({rows, cols}, f32);  // 0..15
  Tensor scales = torch::empty({rows, cols / kBlock}, f32);
  std::vector<int64_t> col_of(cols), pos_of(cols);  // sweep position -> weight column, and back
  std::vector<bool> has_scale(cols / kBlock, false);
  const Tensor order_cpu = order.defined() ? order.to(torch::kCPU, torch::kLong).contiguous() : Tensor();
  for (int64_t j = 0; j < cols; ++j) col_of[j] = order.defined() ? order_cpu.data_ptr<int64_t>()[j] : j;
  for (int64_t j = 0; j < cols; ++j) pos_of[col_of[j]] = j;
  const auto i64 = torch::TensorOptions().dtype(torch::kLong).device(wd.device());
  for (int64_t i1 = 0; i1 < cols; i1 += block_size) {
    const int64_t i2 = std::min(i1 + block_size, cols), n = i2 - i1;
    Tensor w1 = wd.narrow(1, i1, n);  // a view: updates land in wd
    Tensor err1 = torch::zeros({rows, n}, wd.options());
    const Tensor u1 = u.index({idx::Slice(i1, i2), idx::Slice(i1, i2)});
    for (int64_t i = 0; i < n; ++i) {
      const int64_t col = col_of[i1 + i], blk = col / kBlock;
      if (!has_scale[blk]) {  // the sweep reaches a Q4_0 block: d from its current values
        std::vector<int64_t> at(kBlock);
        for (int64_t k = 0; k < kBlock; ++k) at[k] = pos_of[blk * kBlock + k];
        scales.select(1, blk).copy_(BlockScaleFp16(wd.index_select(1, torch::tensor(at, i64))));
        has_scale[blk] = true;
      }
      const Tensor d = scales.select(1, blk);
      const Tensor x = w1.select(1, i);                             // [R] f64
      const Tensor t = Q4_0CodesWithScale(x.to(torch::kFloat), d);  // [R] codes, the fake quant's rule
      const Tensor xq = (t - 8.0) * d;                              // [R] f32
      codes.select(1, col).copy_(t);
      q.select(1, col).copy_(xq);
      const Tensor e = (x - xq.to(torch::kDouble)) / u1[i][i];  // [R]
      w1.narrow(1, i, n - i).sub_(e.unsqueeze(1) * u1[i].narrow(0, i, n - i).unsqueeze(0));
      err1.select(1, i).copy_(e);
    }
    if (i2 < cols) {  // the lazy update of the columns after this block
      wd.narrow(1, i2, cols - i2).sub_(err1.matmul(u.index({idx::Slice(i1, i2), idx::Slice(i2, idx::None)})));
    }
  }
  r->dequantized = q;
  r->codes = codes.to(torch::kUInt8);
  r->scales = scales;
}

absl::Status CheckArguments(const Tensor& w, const Tensor& h, const GptqOptions& o) {
  if (w.dim() != 2 || w.size(1) % kBlock != 0) {
    return absl::InvalidArgumentError("GPTQ Q4_0 needs a [R, C] weight with C a multiple of 32");
  }
  const int64_t cols = w.size(1);
  if (h.dim() != 2 || h.size(0) != cols || h.size(1) != cols) {
    return absl::InvalidArgumentError(absl::StrCat("the Hessian must be [", cols, ", ", cols, "]"));
  }
  if (o.block_size <= 0 || o.block_size % kBlock != 0) {
    return absl::InvalidArgumentError(absl::StrCat("GPTQ block size must be a positive multiple of 32, got ", o.block_size));
  }
  if (!(o.percdamp >= 0)) return absl::InvalidArgumentError("GPTQ damping must be >= 0");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<GptqResult> GptqQ4_0(const Tensor& w, const Tensor& h, const GptqOptions& o) {
  torch::NoGradGuard no_grad;
  RETURN_IF_ERROR(CheckArguments(w, h, o));
  const auto f64 = torch::TensorOptions().dtype(torch::kDouble).device(w.device());
  Tensor hd = h.detach().to(f64).clone();  // [C, C]
  if (!torch::isfinite(hd).all().item<bool>()) {
    return absl::InvalidArgumentError("the Hessian has non-finite values (NaN/inf activations in the calibration run)");
  }
  const Tensor h_raw = hd.clone();
  Tensor wd = w.detach().to(f64).clone();  // [R, C], updated in place by the sweep
  if (!torch::isfinite(wd).all().item<bool>()) return absl::InvalidArgumentError("the weight has non-finite values");
  const Tensor dead = hd.diagonal() == 0;
  GptqResult r;
  r.dead_columns = dead.sum().item<int64_t>();
  wd.masked_fill_(dead.unsqueeze(0), 0.0);
  Tensor order;  // act order: columns by decreasing H_jj
  int64_t block_size = o.block_size;
  if (o.act_order) {
    order = std::get<1>(hd.diagonal().sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
    hd = hd.index_select(0, order).index_select(1, order);
    wd = wd.index_select(1, order);
    // A Q4_0 block's columns now lie anywhere in the sweep; its d is taken
    // when the first of them is reached, from values that must already hold
    // every earlier error update, so no update is deferred.
    block_size = wd.size(1);
  }
  ASSIGN_OR_RETURN(const Tensor u, InverseFactor(hd, o.percdamp));
  Sweep(wd, u, block_size, order, &r);
  const Tensor w64 = w.detach().to(f64);
  r.error = OutputError(w64, r.dequantized.to(torch::kDouble), h_raw);
  r.rtn_error = OutputError(w64, Q4_0Dequantized(w.detach().to(torch::kFloat).contiguous()).to(torch::kDouble), h_raw);
  return r;
}

std::vector<std::string> GptqModuleNames(torch::nn::Module& model) {
  std::vector<std::string> out;
  for (const auto& item : model.named_modules("", /*include_self=*/false)) {
    auto* l = item.value()->as<QLinearImpl>();
    if (l != nullptr && l->quant().weight.scheme == QuantScheme::kQ4_0) out.push_back(item.key());
  }
  return out;
}

absl::Status ApplyGptq(torch::nn::Module& model, const std::map<std::string, Tensor>& hessians,
                       const GptqOptions& o, std::map<std::string, GptqResult>* results,
                       const std::vector<std::string>* only) {
  torch::NoGradGuard no_grad;
  for (const auto& item : model.named_modules("", /*include_self=*/false)) {
    auto* l = item.value()->as<QLinearImpl>();
    if (l == nullptr || l->quant().weight.scheme != QuantScheme::kQ4_0) continue;
    const std::string& name = item.key();
    if (only != nullptr && std::find(only->begin(), only->end(), name) == only->end()) continue;
    const Tensor& scale = l->weight_quantizer().scale();
    if (!scale.defined()) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": GPTQ needs stored q4_0 block scales (WithLearnedQ4_0Scales)"));
    }
    auto it = hessians.find(name);
    if (it == hessians.end()) return absl::NotFoundError(absl::StrCat(name, ": no Hessian (not reached by the calibration run)"));
    absl::StatusOr<GptqResult> g = GptqQ4_0(l->weight, it->second, o);
    if (!g.ok()) return absl::InvalidArgumentError(absl::StrCat(name, ": ", g.status().message()));
    l->weight.copy_(g->dequantized);
    scale.copy_(g->scales.reshape(scale.sizes()));
    if (o.verbose) {
      std::fprintf(stderr, "[gptq] %-32s %4lldx%-4lld output error %.4g (round-to-nearest %.4g, %.1f%% less)%s\n",
                   name.c_str(), static_cast<long long>(l->out_features), static_cast<long long>(l->in_features),
                   g->error, g->rtn_error, g->rtn_error > 0 ? 100.0 * (1.0 - g->error / g->rtn_error) : 0.0,
                   g->dead_columns ? absl::StrCat(", ", g->dead_columns, " dead columns").c_str() : "");
    }
    if (results) results->emplace(name, *std::move(g));
  }
  return absl::OkStatus();
}

}  // namespace qatk::qat
