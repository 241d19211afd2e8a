// Fake-quant ops. Every forward is a sequence of separately materialised
// elementwise ATen ops (mul, add, trunc, ...), so no op is fused into an FMA
// and the results match the reference codecs (compiled -ffp-contract=off).
#include "qat/quant/fake_quant.h"

#include <cmath>
#include <vector>

#include <ATen/Parallel.h>
#include <immintrin.h>

#include "formats/quant/codecs.h"
#include "formats/quant/fp16.h"
#include "formats/util/cpu_features.h"
#include "formats/util/status_macros.h"

namespace qatk::qat {
namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

bool g_cpu_kernels = true;

bool UseCpuKernel(const Tensor& x) {
  return g_cpu_kernels && x.device().is_cpu() && x.scalar_type() == torch::kFloat;
}

// y (computed without grad) in the forward; dL/dx = dL/dy * mask, or
// dL/dy when the mask is empty (pure STE). Autograd inputs must be defined
// tensors, hence the empty tensor instead of an undefined one.
struct SteMaskFn : public torch::autograd::Function<SteMaskFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x, const Tensor& y, const Tensor& mask) {
    ctx->save_for_backward({mask});
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const Tensor mask = ctx->get_saved_variables()[0];
    Tensor g = grads[0];
    if (mask.numel() > 0) g = g * mask;
    return {g, Tensor(), Tensor()};
  }
};

struct StePassFn {
  static Tensor apply(const Tensor& x, const Tensor& y, const Tensor& mask) {
    return SteMaskFn::apply(x, y, mask.defined() ? mask : torch::empty({0}, x.options().dtype(torch::kBool)));
  }
};

Tensor SafeReciprocal(const Tensor& d) {
  return torch::where(d != 0, d.reciprocal(), torch::zeros_like(d));
}

// Rounded values are integers as the codecs store them: "+ 0.0" turns -0.0
// into +0.0, as the codecs' int8 cast does.
Tensor RoundHalfAway(const Tensor& v) {
  const Tensor t = v.trunc();
  const Tensor frac = (v - t).abs();
  return torch::where(frac >= 0.5, t + v.sign(), t) + 0.0;
}

Tensor ToFp16AndBack(const Tensor& d) { return d.to(torch::kHalf).to(torch::kFloat); }

// a / b, correctly rounded on every device like the codecs' x / b: CUDA
// turns a division by a CPU scalar (a number, or a 0-dim CPU tensor) into
// a * (1/b), which can differ in the last bit. A 0-dim divisor on a's own
// device keeps it a true division (CPU divides exactly either way).
Tensor DivExact(const Tensor& a, double b) { return a / torch::full({}, b, a.options()); }

// x [..., C] -> [N, C/block, block] (a view when x is contiguous).
Tensor Blocks(const Tensor& x, int block) {
  QATK_CHECK(x.dim() >= 1 && x.size(-1) % block == 0, "last dim is not a multiple of the block size");
  QATK_CHECK(x.scalar_type() == torch::kFloat, "fake quant expects float32 tensors");
  return x.contiguous().reshape({-1, x.size(-1) / block, block});
}

// Q4_0: codes t in 0..15 (float) and d ([N, B, 1]).
std::pair<Tensor, Tensor> Q4_0CodesFloat(const Tensor& xb) {
  const Tensor idx = xb.abs().argmax(-1, /*keepdim=*/true);  // first index on ties
  const Tensor mx = xb.gather(-1, idx);                      // signed extremum
  const Tensor d = mx / -8.0;  // exact on every device: 1/-8 is a power of two
  const Tensor id = SafeReciprocal(d);
  const Tensor t = ((xb * id) + 8.5).trunc().clamp_max(15.0);
  return {t, d};
}

// Q4_0 with given scales: v = x * id ([N, B, 32]), codes t in 0..15 (float).
// clamp(trunc(v + 8.5), 0, 15), 0 where not finite: the reference codec's
// two roundings (x*id, then + 8.5).
Tensor Q4_0CodesOf(const Tensor& v) {
  const Tensor u = v + 8.5;
  return torch::where(torch::isfinite(u), u.clamp(0.0, 15.0).trunc(), torch::zeros_like(u));
}

struct Q4_0Scaled {
  Tensor v, t, db;
};
Q4_0Scaled Q4_0WithScale(const Tensor& x, const Tensor& d) {
  const Tensor xb = Blocks(x, kQK4_0);
  QATK_CHECK(d.scalar_type() == torch::kFloat && d.numel() == xb.size(0) * xb.size(1),
             "q4_0 scales must be float32 with one element per block of 32");
  const Tensor db = d.reshape({xb.size(0), xb.size(1), 1});
  const Tensor v = xb * SafeReciprocal(db);
  return {v, Q4_0CodesOf(v), db};
}

// q4_0 with learned scales; see FakeQuantQ4_0Lsq in the header.
struct Q4_0LsqFn : public torch::autograd::Function<Q4_0LsqFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x, const Tensor& d, double g) {
    ctx->save_for_backward({x, d});
    ctx->saved_data["g"] = g;
    return Q4_0DequantizedWithScale(x, d);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const Tensor& x = saved[0];
    const Tensor& d = saved[1];
    const double g = ctx->saved_data["g"].toDouble();
    const Q4_0Scaled s = Q4_0WithScale(x, d);
    const Tensor q = s.t - 8.0;
    const Tensor inside = (s.v >= -8.0) & (s.v <= 7.0);
    const Tensor go = grads[0].contiguous().reshape(s.v.sizes());
    const Tensor gx = (go * inside).reshape(x.sizes());
    const Tensor gd = (go * torch::where(inside, q - s.v, q)).sum(-1).reshape(d.sizes()) * g;
    return {gx, gd, Tensor()};
  }
};

const bool g_has_avx2 = GetCpuFeatures().avx2;

// The intN codec's rounding of 8 values with AVX2, bit for bit with the
// scalar rules: half to even (round_ps), or half away from zero (trunc, then
// +-1 when |v - trunc(v)| >= 0.5, exactly roundf).
__attribute__((target("avx2"))) inline __m256 RoundAvx2(__m256 v, bool even) {
  if (even) return _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m256 up = _mm256_cmp_ps(_mm256_and_ps(_mm256_sub_ps(v, t), abs_mask), _mm256_set1_ps(0.5f), _CMP_GE_OQ);
  const __m256 sgn_one = _mm256_or_ps(_mm256_set1_ps(1.0f), _mm256_andnot_ps(abs_mask, v));
  return _mm256_add_ps(t, _mm256_and_ps(up, sgn_one));
}

// Elements [c, end) of one row of the LSQ backward with AVX2, 8 at a time:
// gx = inside ? g : 0 (bit for bit with the scalar loop) and *acc +=
// sum g * (inside ? q - v : q), each product and the sum in double (four
// lanes, added in a fixed order, so the result does not depend on threads;
// it may differ from the scalar loop's order in the last bits). Returns the
// first element not done.
__attribute__((target("avx2"))) int64_t LsqRowAvx2(const float* px, const float* pg, float* pgx, int64_t c,
                                                   int64_t end, float inv, float lo, float hi, bool even,
                                                   double* acc) {
  const __m256 vinv = _mm256_set1_ps(inv), vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
  __m256d sum_lo = _mm256_setzero_pd(), sum_hi = _mm256_setzero_pd();
  for (; c + 8 <= end; c += 8) {
    const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(px + c), vinv);
    const __m256 q = _mm256_min_ps(_mm256_max_ps(RoundAvx2(v, even), vlo), vhi);
    const __m256 inside = _mm256_and_ps(_mm256_cmp_ps(v, vlo, _CMP_GE_OQ), _mm256_cmp_ps(v, vhi, _CMP_LE_OQ));
    const __m256 g = _mm256_loadu_ps(pg + c);
    _mm256_storeu_ps(pgx + c, _mm256_and_ps(inside, g));
    const __m256 d = _mm256_blendv_ps(q, _mm256_sub_ps(q, v), inside);
    sum_lo = _mm256_add_pd(sum_lo, _mm256_mul_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(g)),
                                                 _mm256_cvtps_pd(_mm256_castps256_ps128(d))));
    sum_hi = _mm256_add_pd(sum_hi, _mm256_mul_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(g, 1)),
                                                 _mm256_cvtps_pd(_mm256_extractf128_ps(d, 1))));
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, _mm256_add_pd(sum_lo, sum_hi));
  *acc += (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
  return c;
}

// CPU LSQ backward in one pass: returns {dL/dx, dL/ds} (dL/ds before the
// factor g), or undefined tensors when shapes do not fit the fused loop.
std::pair<Tensor, Tensor> LsqBackwardCpu(const Tensor& x, const Tensor& s, const Tensor& go, double qn,
                                         double qp, bool even) {
  const int64_t cols = x.dim() ? x.size(-1) : 1;
  const int64_t rows = cols ? x.numel() / cols : 0;
  if (!UseCpuKernel(x) || !UseCpuKernel(go) || !s.device().is_cpu() || s.scalar_type() != torch::kFloat ||
      (s.numel() != 1 && s.numel() != rows)) {
    return {};
  }
  const Tensor xc = x.contiguous(), sc = s.contiguous(), gc = go.contiguous();
  Tensor gx = torch::empty_like(xc);
  std::vector<double> row_gs(rows, 0.0);
  const float* px = xc.data_ptr<float>();
  const float* ps = sc.data_ptr<float>();
  const float* pg = gc.data_ptr<float>();
  float* pgx = gx.data_ptr<float>();
  const float lo = static_cast<float>(-qn), hi = static_cast<float>(qp);
  const bool per_row = sc.numel() != 1;
  at::parallel_for(0, rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float sv = ps[per_row ? r : 0];
      const float inv = sv != 0.0f ? 1.0f / sv : 0.0f;
      double acc = 0.0;
      int64_t c = r * cols;
      if (g_has_avx2) c = LsqRowAvx2(px, pg, pgx, c, (r + 1) * cols, inv, lo, hi, even, &acc);
      for (; c < (r + 1) * cols; ++c) {
        const float v = px[c] * inv;
        const float q = std::min(std::max(even ? std::nearbyint(v) : std::round(v), lo), hi);
        const bool inside = v >= lo && v <= hi;
        pgx[c] = inside ? pg[c] : 0.0f;
        acc += static_cast<double>(pg[c]) * (inside ? q - v : q);
      }
      row_gs[r] = acc;
    }
  });
  Tensor gs = torch::empty({sc.numel()}, sc.options());
  float* pgs = gs.data_ptr<float>();
  if (per_row) {
    for (int64_t r = 0; r < rows; ++r) pgs[r] = static_cast<float>(row_gs[r]);
  } else {
    double total = 0.0;
    for (double v : row_gs) total += v;
    pgs[0] = static_cast<float>(total);
  }
  return {gx.reshape(x.sizes()), gs.reshape(s.sizes())};
}

// LSQ: y = clamp(Round(x/s), -Qn, Qp) * s with the LSQ gradients.
struct LsqFn : public torch::autograd::Function<LsqFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x, const Tensor& s, QuantSpec spec,
                        double g) {
    ctx->save_for_backward({x, s});
    ctx->saved_data["qn"] = static_cast<int64_t>(spec.Qn());
    ctx->saved_data["qp"] = static_cast<int64_t>(spec.Qp());
    ctx->saved_data["even"] = spec.rounding == Rounding::kHalfEven;
    ctx->saved_data["g"] = g;
    return IntDequantized(x, s, spec);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const Tensor& x = saved[0];
    const Tensor& s = saved[1];
    const double qn = static_cast<double>(ctx->saved_data["qn"].toInt());
    const double qp = static_cast<double>(ctx->saved_data["qp"].toInt());
    const double g = ctx->saved_data["g"].toDouble();
    {
      auto [gx, gs] = LsqBackwardCpu(x, s, grads[0], qn, qp, ctx->saved_data["even"].toBool());
      if (gx.defined()) return {gx, gs * g, Tensor(), Tensor()};
    }
    QuantSpec spec;
    spec.scheme = QuantScheme::kIntTensor;
    spec.rounding = ctx->saved_data["even"].toBool() ? Rounding::kHalfEven : Rounding::kHalfAwayFromZero;
    const Tensor v = x * SafeReciprocal(s);
    const Tensor q = RoundPerSpec(v, spec).clamp(-qn, qp);
    const Tensor inside = (v >= -qn) & (v <= qp);
    const Tensor& go = grads[0];
    const Tensor gx = go * inside;
    // inside: q - v; clipped: q (= -Qn or Qp).
    const Tensor ds = go * torch::where(inside, q - v, q);
    Tensor gs = ds.sum_to_size(s.sizes()) * g;
    return {gx, gs, Tensor(), Tensor()};
  }
};

// The block codecs a fused CPU pass can run (quantize then dequantize).
enum class BlockCodec { kQ4_0, kQ8_0, kQ2_0, kQ8_0Act };

// CPU: the reference block codec itself, block by block (x finite).
Tensor BlockDequantizedCpu(BlockCodec codec, const Tensor& x) {
  const Tensor xc = x.contiguous();
  Tensor y = torch::empty_like(xc);
  const int bs = codec == BlockCodec::kQ2_0 ? kQK2_0 : kQK4_0;
  const float* src = xc.data_ptr<float>();
  float* dst = y.data_ptr<float>();
  at::parallel_for(0, xc.numel() / bs, 256, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const float* in = src + b * bs;
      float* out = dst + b * bs;
      switch (codec) {
        case BlockCodec::kQ4_0: {
          BlockQ4_0 q;
          QuantizeBlockQ4_0(in, &q);
          DequantizeBlockQ4_0(q, out);
          break;
        }
        case BlockCodec::kQ8_0:
        case BlockCodec::kQ8_0Act: {
          BlockQ8_0 q;
          if (codec == BlockCodec::kQ8_0) {
            QuantizeBlockQ8_0(in, &q);
          } else {
            QuantizeRowQ8_0Act(in, &q, 1);  // the codec's AVX2 path when available
          }
          DequantizeBlockQ8_0(q, out);
          break;
        }
        case BlockCodec::kQ2_0: {
          BlockQ2_0 q;
          QuantizeBlockQ2_0(in, &q);
          DequantizeBlockQ2_0(q, out);
          break;
        }
      }
    }
  });
  return y;
}

// Elements [c, end) of one row of the intN codec with AVX2, 8 at a time, bit
// for bit with the scalar loop below (which finishes the tail): v = x*inv;
// RoundAvx2; clamp; through int32 (so code 0 is +0.0); times s. Returns the
// first element not done.
__attribute__((target("avx2"))) int64_t IntRowAvx2(const float* px, float* py, bool* pm, int64_t c,
                                                   int64_t end, float inv, float sv, float lo, float hi,
                                                   bool even) {
  const __m256 vinv = _mm256_set1_ps(inv), vs = _mm256_set1_ps(sv);
  const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
  for (; c + 8 <= end; c += 8) {
    const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(px + c), vinv);
    const __m256 q = _mm256_min_ps(_mm256_max_ps(RoundAvx2(v, even), vlo), vhi);
    _mm256_storeu_ps(py + c, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvttps_epi32(q)), vs));
    if (pm) {
      const int bits = _mm256_movemask_ps(
          _mm256_and_ps(_mm256_cmp_ps(v, vlo, _CMP_GE_OQ), _mm256_cmp_ps(v, vhi, _CMP_LE_OQ)));
      for (int j = 0; j < 8; ++j) pm[c + j] = (bits >> j) & 1;
    }
  }
  return c;
}

// CPU: one pass of the reference intN codec. s holds one scale (per tensor)
// or one per row of x viewed as [rows, C]. Returns undefined when the shapes
// do not fit (caller falls back to tensor ops). mask (optional): clip mask.
Tensor IntDequantizedCpu(const Tensor& x, const Tensor& s, const QuantSpec& spec, Tensor* mask) {
  const int64_t cols = x.dim() ? x.size(-1) : 1;
  const int64_t rows = cols ? x.numel() / cols : 0;
  if (s.scalar_type() != torch::kFloat || !s.device().is_cpu() || (s.numel() != 1 && s.numel() != rows)) {
    return Tensor();
  }
  const Tensor xc = x.contiguous(), sc = s.contiguous();
  Tensor y = torch::empty_like(xc);
  if (mask) *mask = torch::empty(xc.sizes(), xc.options().dtype(torch::kBool));
  const float* px = xc.data_ptr<float>();
  const float* ps = sc.data_ptr<float>();
  float* py = y.data_ptr<float>();
  bool* pm = mask ? mask->data_ptr<bool>() : nullptr;
  const float lo = static_cast<float>(-spec.Qn()), hi = static_cast<float>(spec.Qp());
  const bool per_row = sc.numel() != 1;
  const bool even = spec.rounding == Rounding::kHalfEven;
  at::parallel_for(0, rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float sv = ps[per_row ? r : 0];
      const float inv = sv != 0.0f ? 1.0f / sv : 0.0f;
      const int64_t end = (r + 1) * cols;
      int64_t c = r * cols;
      if (g_has_avx2) c = IntRowAvx2(px, py, pm, c, end, inv, sv, lo, hi, even);
      for (; c < end; ++c) {
        const float v = px[c] * inv;
        const float q = std::min(std::max(even ? std::nearbyint(v) : std::round(v), lo), hi);
        py[c] = static_cast<float>(static_cast<int>(q)) * sv;  // int cast: code 0 -> +0.0
        if (pm) pm[c] = v >= lo && v <= hi;
      }
    }
  });
  return y.reshape(x.sizes());
}

}  // namespace

void SetFakeQuantCpuKernels(bool enabled) { g_cpu_kernels = enabled; }

// ---- Block formats ---------------------------------------------------------

Tensor Q4_0Dequantized(const Tensor& x) {
  torch::NoGradGuard no_grad;
  if (UseCpuKernel(x)) return BlockDequantizedCpu(BlockCodec::kQ4_0, Blocks(x, kQK4_0)).reshape(x.sizes());
  const Tensor xb = Blocks(x, kQK4_0);
  auto [t, d] = Q4_0CodesFloat(xb);
  return ((t - 8.0) * ToFp16AndBack(d)).reshape(x.sizes());
}

std::pair<Tensor, Tensor> Q4_0CodesTensor(const Tensor& x) {
  torch::NoGradGuard no_grad;
  const Tensor xb = Blocks(x, kQK4_0);
  auto [t, d] = Q4_0CodesFloat(xb);
  std::vector<int64_t> dshape(x.sizes().begin(), x.sizes().end());
  dshape.back() /= kQK4_0;
  return {t.to(torch::kUInt8).reshape(x.sizes()), d.reshape(dshape)};
}

Tensor Q8_0Dequantized(const Tensor& x) {
  torch::NoGradGuard no_grad;
  if (UseCpuKernel(x)) return BlockDequantizedCpu(BlockCodec::kQ8_0, Blocks(x, kQK8_0)).reshape(x.sizes());
  const Tensor xb = Blocks(x, kQK8_0);
  const Tensor d = DivExact(xb.abs().amax(-1, /*keepdim=*/true), 127.0);
  const Tensor q = RoundHalfAway(xb * SafeReciprocal(d));
  return (q * ToFp16AndBack(d)).reshape(x.sizes());
}

// Torch's round() is half to even, like the x86 _mm256_round_ps llama.cpp uses.
Tensor Q8_0ActDequantized(const Tensor& x) {
  torch::NoGradGuard no_grad;
  if (UseCpuKernel(x)) return BlockDequantizedCpu(BlockCodec::kQ8_0Act, Blocks(x, kQK8_0)).reshape(x.sizes());
  const Tensor xb = Blocks(x, kQK8_0);
  const Tensor amax = xb.abs().amax(-1, /*keepdim=*/true);
  // fp32 division (Scalar / Tensor in ATen is reciprocal-then-multiply).
  const Tensor id = torch::where(amax != 0, torch::full_like(amax, 127.0) / amax, torch::zeros_like(amax));
  // Non-finite x*id (127/amax overflowed) saturates to -128, as on x86.
  const Tensor q = torch::nan_to_num((xb * id).round(), -128.0, -128.0, -128.0) + 0.0;
  return (q * ToFp16AndBack(DivExact(amax, 127.0))).reshape(x.sizes());
}

Tensor Q2_0Dequantized(const Tensor& x) {
  torch::NoGradGuard no_grad;
  if (UseCpuKernel(x)) return BlockDequantizedCpu(BlockCodec::kQ2_0, Blocks(x, kQK2_0)).reshape(x.sizes());
  const Tensor xb = Blocks(x, kQK2_0);
  const Tensor d = xb.abs().amax(-1, /*keepdim=*/true);
  const Tensor q = (RoundHalfAway(xb * SafeReciprocal(d)) + 1.0).clamp(0.0, 3.0);
  return ((q - 1.0) * ToFp16AndBack(d)).reshape(x.sizes());
}

Tensor Q4_0DequantizedWithScale(const Tensor& x, const Tensor& d) {
  torch::NoGradGuard no_grad;
  const Q4_0Scaled s = Q4_0WithScale(x, d);
  return ((s.t - 8.0) * ToFp16AndBack(s.db)).reshape(x.sizes());
}

Tensor Q4_0CodesWithScale(const Tensor& x, const Tensor& d) {
  torch::NoGradGuard no_grad;
  return Q4_0CodesOf(x * SafeReciprocal(d));
}

Tensor FakeQuantQ4_0Lsq(const Tensor& x, const Tensor& d, double grad_factor) {
  return Q4_0LsqFn::apply(x, d, grad_factor);
}

Tensor FakeQuantQ4_0FixedCodes(const Tensor& c, const Tensor& d) {
  QATK_CHECK(c.dim() == 2 && d.dim() == 2 && c.size(0) == d.size(0) && c.size(1) == d.size(1) * 32,
             "FakeQuantQ4_0FixedCodes expects codes [R, C] and scales [R, C/32]");
  const Tensor d16 = StePassFn::apply(d, ToFp16AndBack(d.detach()), Tensor());
  return (c.view({c.size(0), d.size(1), 32}) * d16.unsqueeze(-1)).view(c.sizes());
}

Tensor FakeQuantQ4_0(const Tensor& x) { return StePassFn::apply(x, Q4_0Dequantized(x), Tensor()); }
Tensor FakeQuantQ8_0(const Tensor& x) { return StePassFn::apply(x, Q8_0Dequantized(x), Tensor()); }
Tensor FakeQuantQ2_0(const Tensor& x) { return StePassFn::apply(x, Q2_0Dequantized(x), Tensor()); }
Tensor FakeQuantQ8_0Act(const Tensor& x) { return StePassFn::apply(x, Q8_0ActDequantized(x), Tensor()); }

// ---- intN ------------------------------------------------------------------

Tensor RoundPerSpec(const Tensor& v, const QuantSpec& spec) {
  QATK_CHECK(spec.rounding != Rounding::kGgml, "ggml rounding is only for block formats");
  return spec.rounding == Rounding::kHalfEven ? v.round() + 0.0 : RoundHalfAway(v);
}

Tensor StoreScaleTensor(const Tensor& s, const QuantSpec& spec) {
  torch::NoGradGuard no_grad;
  if (spec.scale_type == ScaleType::kF32) return s.detach();
  return ToFp16AndBack(s.clamp(-65504.0, 65504.0));
}

Tensor StoreScaleSte(const Tensor& s, const QuantSpec& spec) {
  return StePassFn::apply(s, StoreScaleTensor(s, spec), Tensor());
}

Tensor AbsmaxScales(const Tensor& x, const QuantSpec& spec) {
  torch::NoGradGuard no_grad;
  return StoreScaleTensor(DivExact(x.abs().amax(-1, /*keepdim=*/true), static_cast<double>(spec.Qp())), spec);
}

Tensor MseScales(const Tensor& w, const QuantSpec& spec) {
  torch::NoGradGuard no_grad;
  QATK_CHECK(w.dim() == 2, "MseScales expects a [R, C] weight");
  const Tensor wc = w.detach().to(torch::kCPU, torch::kFloat).contiguous();
  const int64_t rows = wc.size(0), cols = wc.size(1);
  Tensor s = torch::empty({rows, 1}, torch::kFloat);
  const float* src = wc.data_ptr<float>();
  float* dst = s.data_ptr<float>();
  for (int64_t r = 0; r < rows; ++r) dst[r] = ChooseScaleMse(spec, src + r * cols, cols);
  return s.to(w.device());
}

Tensor IntDequantized(const Tensor& x, const Tensor& s, const QuantSpec& spec) {
  torch::NoGradGuard no_grad;
  if (UseCpuKernel(x)) {
    Tensor y = IntDequantizedCpu(x, s, spec, nullptr);
    if (y.defined()) return y;
  }
  const Tensor q = RoundPerSpec(x * SafeReciprocal(s), spec).clamp(-spec.Qn(), spec.Qp());
  return q * s;
}

Tensor IntCodes(const Tensor& x, const Tensor& s, const QuantSpec& spec) {
  torch::NoGradGuard no_grad;
  return RoundPerSpec(x * SafeReciprocal(s), spec).clamp(-spec.Qn(), spec.Qp()).to(torch::kInt8);
}

Tensor FakeQuantFixedScale(const Tensor& x, const Tensor& s, const QuantSpec& spec) {
  Tensor mask;
  if (UseCpuKernel(x)) {
    Tensor y;
    {
      torch::NoGradGuard no_grad;
      y = IntDequantizedCpu(x.detach(), s.detach(), spec, &mask);
    }
    if (y.defined()) return StePassFn::apply(x, y, mask);
  }
  {
    torch::NoGradGuard no_grad;
    const Tensor v = x * SafeReciprocal(s);
    mask = (v >= -spec.Qn()) & (v <= spec.Qp());
  }
  return StePassFn::apply(x, IntDequantized(x, s.detach(), spec), mask);
}

Tensor FakeQuantSte(const Tensor& x, const Tensor& s, const QuantSpec& spec) {
  return StePassFn::apply(x, IntDequantized(x, s.detach(), spec), Tensor());
}

Tensor FakeQuantLsq(const Tensor& x, const Tensor& s, const QuantSpec& spec, double grad_factor) {
  return LsqFn::apply(x, s, spec, grad_factor);
}

// ---- Spec dispatch ---------------------------------------------------------

Tensor FakeQuantDynamic(const Tensor& x, const QuantSpec& spec) {
  switch (spec.scheme) {
    case QuantScheme::kQ8_0Act: return FakeQuantQ8_0Act(x);
    case QuantScheme::kIntToken: return FakeQuantSte(x, AbsmaxScales(x.detach(), spec), spec);
    default: break;
  }
  QATK_CHECK(false, "FakeQuantDynamic needs int_token or q8_0_act");
}

Tensor FakeQuantWeightNoState(const Tensor& w, const QuantSpec& spec) {
  switch (spec.scheme) {
    case QuantScheme::kQ4_0: return FakeQuantQ4_0(w);
    case QuantScheme::kQ8_0: return FakeQuantQ8_0(w);
    case QuantScheme::kQ2_0: return FakeQuantQ2_0(w);
    case QuantScheme::kIntChannel:
      QATK_CHECK(spec.scale_rule == ScaleRule::kAbsmax, "stateful int_channel rule without a scale");
      return FakeQuantSte(w, AbsmaxScales(w.detach(), spec), spec);
    default: break;
  }
  QATK_CHECK(false, "FakeQuantWeightNoState needs a weight scheme");
}

}  // namespace qatk::qat
