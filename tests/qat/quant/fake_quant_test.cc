// Fake-quant ops: zero-tolerance agreement with the reference codecs, STE /
// clip masks, LSQ gradients (formula and finite differences) and LibTorch's
// built-in fake quant where the semantics coincide.
#include "qat/quant/fake_quant.h"

#include <cstring>
#include <functional>
#include <random>

#include "formats/quant/codecs.h"
#include "formats/quant/fp16.h"
#include "formats/quant/spec.h"
#include "gtest/gtest.h"

namespace qatk::qat {
namespace {

class FakeQuantTest : public ::testing::Test {
 protected:
  void SetUp() override { torch::set_num_threads(1); }
  void TearDown() override { SetFakeQuantCpuKernels(true); }
};

// Runs `body` with the fused CPU kernels and with the ATen-op composition
// (the CUDA path), which must both equal the reference.
template <typename Fn>
void BothPaths(Fn&& body) {
  for (bool cpu : {true, false}) {
    SetFakeQuantCpuKernels(cpu);
    SCOPED_TRACE(cpu ? "fused CPU kernel" : "ATen ops");
    body();
  }
  SetFakeQuantCpuKernels(true);
}

// Index of the first element whose bits differ, or -1.
int64_t FirstBitMismatch(const torch::Tensor& a, const torch::Tensor& b) {
  const torch::Tensor ac = a.detach().contiguous().to(torch::kCPU);
  const torch::Tensor bc = b.detach().contiguous().to(torch::kCPU);
  EXPECT_EQ(ac.sizes(), bc.sizes());
  const uint32_t* pa = static_cast<const uint32_t*>(ac.data_ptr());
  const uint32_t* pb = static_cast<const uint32_t*>(bc.data_ptr());
  for (int64_t i = 0; i < ac.numel(); ++i) {
    if (pa[i] != pb[i]) return i;
  }
  return -1;
}

#define EXPECT_BITWISE_EQ(a, b)                                                                   \
  do {                                                                                            \
    const int64_t i_ = FirstBitMismatch(a, b);                                                    \
    EXPECT_EQ(i_, -1) << "first mismatch at " << i_ << ": " << (a).reshape(-1)[i_ < 0 ? 0 : i_].item<float>() \
                      << " vs " << (b).reshape(-1)[i_ < 0 ? 0 : i_].item<float>();                 \
  } while (0)

// dequantize(quantize(x)) of the reference codec, row by row.
torch::Tensor ReferenceBlock(GgmlType type, const torch::Tensor& x) {
  const torch::Tensor xc = x.contiguous();
  const int64_t rows = xc.size(0), cols = xc.size(1);
  torch::Tensor y = torch::empty_like(xc);
  std::vector<uint8_t> buf(RowBytes(type, cols));
  for (int64_t r = 0; r < rows; ++r) {
    EXPECT_TRUE(QuantizeRow(type, xc.data_ptr<float>() + r * cols, cols, buf.data()).ok());
    DequantizeRow(type, buf.data(), y.data_ptr<float>() + r * cols, cols);
  }
  return y;
}

// dequantize(QuantizeBlockQ8_0Act(x)), block by block (x [rows, C]).
torch::Tensor ReferenceQ8_0Act(const torch::Tensor& x) {
  const torch::Tensor xc = x.contiguous();
  torch::Tensor y = torch::empty_like(xc);
  for (int64_t b = 0; b < xc.numel() / 32; ++b) {
    BlockQ8_0 q;
    QuantizeBlockQ8_0Act(xc.data_ptr<float>() + 32 * b, &q);
    DequantizeBlockQ8_0(q, y.data_ptr<float>() + 32 * b);
  }
  return y;
}

// Weights with every edge case: random magnitudes from 1e-30 to 1e6 (fp16
// subnormal and overflowing d), zero blocks, tied extrema of both signs,
// exact half-way values and small integers.
torch::Tensor EdgeCaseWeights(int seed, int64_t rows, int64_t cols) {
  torch::manual_seed(seed);
  std::mt19937 rng(seed);
  torch::Tensor x = torch::randn({rows, cols});
  const int kind = seed % 6;
  if (kind == 0) x = x * std::pow(10.0, std::uniform_real_distribution<double>(-30, 6)(rng));
  if (kind == 1) x = torch::randint(-8, 9, {rows, cols}).to(torch::kFloat) * 0.5;  // ties, halves
  if (kind == 2) x = torch::randint(-3, 4, {rows, cols}).to(torch::kFloat) / 7.0;
  if (kind == 3) {
    x.narrow(1, 0, 32).zero_();                    // a zero block
    x.select(1, 40).fill_(3.0);                    // +max ...
    x.select(1, 41).fill_(-3.0);                   // ... and -max tie
  }
  if (kind == 4) x = x * torch::pow(10.0, torch::randint(-6, 5, {rows, 1}).to(torch::kFloat));
  if (kind == 5) x = torch::rand({rows, cols}) * 1e-3 + 1.0;  // one sign, narrow range
  return x.contiguous();
}

TEST_F(FakeQuantTest, BlockFormatsMatchReferenceBitForBit) {
  BothPaths([&] {
  for (int seed = 0; seed < 60; ++seed) {
    const torch::Tensor x = EdgeCaseWeights(seed, 5, 128);
    SCOPED_TRACE(seed);
    EXPECT_BITWISE_EQ(Q4_0Dequantized(x), ReferenceBlock(GgmlType::kQ4_0, x));
    EXPECT_BITWISE_EQ(Q8_0Dequantized(x), ReferenceBlock(GgmlType::kQ8_0, x));
    EXPECT_BITWISE_EQ(Q2_0Dequantized(x), ReferenceBlock(GgmlType::kQ2_0, x));
    EXPECT_BITWISE_EQ(Q8_0ActDequantized(x), ReferenceQ8_0Act(x));
  }
  });
}

// The activation rule is its own quantizer: on exact ties it rounds to even
// where the weight rule (roundf) rounds away from zero.
TEST_F(FakeQuantTest, Q8_0ActRoundsTiesToEven) {
  BothPaths([&] {
  torch::Tensor x = torch::zeros({1, 32});
  x[0][0] = 127.0f;  // amax 127: id = 1, d = 1
  x[0][1] = 2.5f;
  x[0][2] = -3.5f;
  const torch::Tensor act = Q8_0ActDequantized(x);
  const torch::Tensor w = Q8_0Dequantized(x);
  EXPECT_EQ(act[0][1].item<float>(), 2.0f);
  EXPECT_EQ(act[0][2].item<float>(), -4.0f);
  EXPECT_EQ(w[0][1].item<float>(), 3.0f);
  EXPECT_EQ(w[0][2].item<float>(), -4.0f);
  // A block whose 127/amax overflows (the SIMD pass leaves it to the codec),
  // and a negative value that rounds to code 0 (must come out +0).
  torch::Tensor y = torch::zeros({2, 32});
  y[0].fill_(1e-40f);
  y[1][0] = 127.0f;
  y[1][1] = -0.25f;
  EXPECT_BITWISE_EQ(Q8_0ActDequantized(y), ReferenceQ8_0Act(y));
  });
}

TEST_F(FakeQuantTest, Q4_0CodesMatchReference) {
  BothPaths([&] {
  for (int seed = 0; seed < 12; ++seed) {
    const torch::Tensor x = EdgeCaseWeights(seed, 3, 64);
    auto [codes, d] = Q4_0CodesTensor(x);
    for (int64_t r = 0; r < 3; ++r) {
      for (int64_t b = 0; b < 2; ++b) {
        uint8_t q[32];
        float dref;
        Q4_0Codes(x.data_ptr<float>() + r * 64 + b * 32, q, &dref);
        EXPECT_EQ(std::memcmp(q, codes.data_ptr<uint8_t>() + r * 64 + b * 32, 32), 0) << seed;
        EXPECT_EQ(FloatBits(dref), FloatBits(d[r][b].item<float>())) << seed;
      }
    }
  }
  });
}

TEST_F(FakeQuantTest, AutogradBlockOpsAreSteAndExact) {
  torch::Tensor x = EdgeCaseWeights(4, 4, 64).requires_grad_(true);
  for (auto fn : {&FakeQuantQ4_0, &FakeQuantQ8_0, &FakeQuantQ2_0}) {
    x.mutable_grad() = torch::Tensor();
    const torch::Tensor y = fn(x);
    const torch::Tensor r = torch::randn_like(y);
    (y * r).sum().backward();
    EXPECT_TRUE(torch::equal(x.grad(), r));  // straight through
  }
  EXPECT_BITWISE_EQ(FakeQuantQ4_0(x), ReferenceBlock(GgmlType::kQ4_0, x.detach()));
}

// Learned q4_0 scales: the forward is the reference codec with the given d
// (QuantizeMatrix with block scales) bit for bit, and with the reference's
// own d it is FakeQuantQ4_0; the gradients are LSQ's with Qn = 8, Qp = 7.
TEST_F(FakeQuantTest, Q4_0LearnedScalesMatchReferenceAndLsq) {
  QuantSpec q4;
  q4.scheme = QuantScheme::kQ4_0;
  q4.bits = 4;
  for (int seed = 0; seed < 12; ++seed) {
    SCOPED_TRACE(seed);
    const torch::Tensor x = EdgeCaseWeights(seed, 3, 64);
    const torch::Tensor d_ref = Q4_0CodesTensor(x).second;  // [3, 2]
    EXPECT_BITWISE_EQ(Q4_0DequantizedWithScale(x, d_ref), ReferenceBlock(GgmlType::kQ4_0, x));
    // Other scales: shrunk (clipping), grown, negated, zero.
    torch::Tensor d = d_ref * torch::tensor({0.6f, 1.7f}).reshape({1, 2});
    d[1][0] = -d[1][0];
    d[2][1] = 0.0f;
    std::vector<float> dv(d.data_ptr<float>(), d.data_ptr<float>() + d.numel());
    auto m = QuantizeMatrix(q4, x.data_ptr<float>(), 3, 64, dv);
    ASSERT_TRUE(m.ok()) << m.status();
    std::vector<float> want = DequantizeMatrix(*m);
    EXPECT_BITWISE_EQ(Q4_0DequantizedWithScale(x, d), torch::from_blob(want.data(), {3, 64}, torch::kFloat));
  }
  torch::manual_seed(5);
  const torch::Tensor x0 = torch::randn({4, 64});
  const torch::Tensor d0 = Q4_0CodesTensor(x0).second * 0.7f;  // the extremes clip
  const torch::Tensor r = torch::randn({4, 64});
  torch::Tensor x = x0.clone().requires_grad_(true);
  torch::Tensor d = d0.clone().requires_grad_(true);
  const torch::Tensor y = FakeQuantQ4_0Lsq(x, d, 0.5);
  EXPECT_BITWISE_EQ(y, Q4_0DequantizedWithScale(x0, d0));
  (y * r).sum().backward();
  const torch::Tensor v = x0.reshape({4, 2, 32}) / d0.reshape({4, 2, 1});
  const torch::Tensor q = (v + 8.5).clamp(0, 15).trunc() - 8;
  const torch::Tensor inside = (v >= -8) & (v <= 7);
  ASSERT_GT((~inside).sum().item<int64_t>(), 0);  // the test covers clipping
  const torch::Tensor rb = r.reshape({4, 2, 32});
  EXPECT_TRUE(torch::equal(x.grad(), (rb * inside).reshape({4, 64})));
  const torch::Tensor want_d = (rb * torch::where(inside, q - v, q)).sum(-1) * 0.5;
  EXPECT_TRUE(torch::allclose(d.grad(), want_d, 1e-5, 1e-6)) << d.grad() << want_d;
}

QuantSpec IntSpec(int bits, bool narrow, Rounding rounding, ScaleType st, ScaleRule rule = ScaleRule::kAbsmax) {
  QuantSpec s;
  s.scheme = QuantScheme::kIntChannel;
  s.bits = bits;
  s.narrow_range = narrow;
  s.rounding = rounding;
  s.scale_type = st;
  s.scale_rule = rule;
  return s;
}

// The codec's dequantize(quantize(w)) for per-row scales.
torch::Tensor ReferenceInt(const QuantSpec& spec, const torch::Tensor& w, std::vector<float> scales = {}) {
  auto m = QuantizeMatrix(spec, w.data_ptr<float>(), w.size(0), w.size(1), scales);
  EXPECT_TRUE(m.ok()) << m.status();
  std::vector<float> y = DequantizeMatrix(*m);
  return torch::from_blob(y.data(), w.sizes(), torch::kFloat).clone();
}

// Every int per-channel spec (bits, range, rounding, scale type; absmax,
// mse and learned scales) on the weights as `to_device` places them, against
// the reference codec on the CPU copy.
void CheckIntPerChannel(const std::function<torch::Tensor(const torch::Tensor&)>& to_device) {
  int seed = 100;
  for (int bits : {2, 3, 4, 8}) {
    for (bool narrow : {false, true}) {
      for (Rounding rd : {Rounding::kHalfAwayFromZero, Rounding::kHalfEven}) {
        for (ScaleType st : {ScaleType::kF16, ScaleType::kF32}) {
          const QuantSpec spec = IntSpec(bits, narrow, rd, st);
          const torch::Tensor w = EdgeCaseWeights(seed++, 6, 96), wd = to_device(w);
          SCOPED_TRACE(DescribeQuantSpec(spec) + " seed " + std::to_string(seed));
          EXPECT_BITWISE_EQ(FakeQuantWeightNoState(wd, spec), ReferenceInt(spec, w));
          if (wd.is_cuda()) EXPECT_BITWISE_EQ(AbsmaxScales(wd, spec), AbsmaxScales(w, spec));
          // mse: scales searched by the codec, applied by torch.
          const QuantSpec mse = IntSpec(bits, narrow, rd, st, ScaleRule::kMse);
          const torch::Tensor s = MseScales(wd, mse);
          EXPECT_EQ(s.device(), wd.device());
          EXPECT_BITWISE_EQ(FakeQuantFixedScale(wd, s, mse), ReferenceInt(mse, w));
          // learned: forward is the codec with the stored scale.
          const QuantSpec lsq = IntSpec(bits, narrow, rd, st, ScaleRule::kLearned);
          const torch::Tensor sl = (s * 1.37).requires_grad_(true);
          const torch::Tensor sv = sl.detach().cpu().reshape(-1).contiguous();
          EXPECT_BITWISE_EQ(FakeQuantLsq(wd, StoreScaleSte(sl, lsq), lsq, 0.1),
                            ReferenceInt(lsq, w, std::vector<float>(sv.data_ptr<float>(),
                                                                    sv.data_ptr<float>() + sv.numel())));
        }
      }
    }
  }
}

// Fixed codes: with the codes of x under d, the forward is the learned-scale
// forward (fp16 d included); dL/dd is exactly sum(dL/dy * (code - 8)) per
// block, and nothing flows anywhere else.
TEST_F(FakeQuantTest, Q4_0FixedCodesForwardAndExactScaleGradient) {
  torch::manual_seed(21);
  const torch::Tensor x = torch::randn({3, 64}) * 0.05;
  const torch::Tensor d0 = Q4_0CodesTensor(x).second.reshape({3, 2}) * 1.0001;  // not an fp16 value
  const torch::Tensor c = (Q4_0CodesWithScale(x.view({3, 2, 32}), d0.unsqueeze(-1)) - 8.0).view({3, 64});
  const torch::Tensor d = d0.clone().requires_grad_(true);
  const torch::Tensor y = FakeQuantQ4_0FixedCodes(c, d);
  EXPECT_TRUE(torch::equal(y, Q4_0DequantizedWithScale(x, d0)));
  const torch::Tensor go = torch::randn({3, 64});
  y.backward(go);
  const torch::Tensor want = (go * c).view({3, 2, 32}).sum(-1);
  EXPECT_TRUE(torch::allclose(d.grad(), want, 1e-6, 1e-7)) << d.grad() << want;
  EXPECT_GT(d.grad().abs().sum().item<double>(), 0);
}

TEST_F(FakeQuantTest, IntPerChannelMatchesReferenceBitForBit) {
  BothPaths([&] { CheckIntPerChannel([](const torch::Tensor& w) { return w; }); });
}

// Per-token int8 and Q8_0 activations on the inputs as `to_device` places
// them, against the reference codecs on the CPU copy.
void CheckDynamicActivations(const std::function<torch::Tensor(const torch::Tensor&)>& to_device) {
  QuantSpec tok;
  tok.scheme = QuantScheme::kIntToken;
  tok.bits = 8;
  tok.scale_type = ScaleType::kF32;
  QuantSpec act;
  act.scheme = QuantScheme::kQ8_0Act;
  for (int seed = 0; seed < 12; ++seed) {
    const torch::Tensor x = EdgeCaseWeights(seed, 6, 64), xd = to_device(x);
    EXPECT_BITWISE_EQ(FakeQuantDynamic(xd.reshape({2, 3, 64}), tok).reshape({6, 64}),
                      ReferenceInt(IntSpec(8, false, Rounding::kHalfAwayFromZero, ScaleType::kF32), x));
    EXPECT_BITWISE_EQ(FakeQuantDynamic(xd, act), ReferenceQ8_0Act(x));
  }
}

TEST_F(FakeQuantTest, DynamicActivationsMatchReference) {
  BothPaths([&] { CheckDynamicActivations([](const torch::Tensor& x) { return x; }); });
}

TEST_F(FakeQuantTest, FixedScaleClipMask) {
  BothPaths([&] {
  const QuantSpec spec = IntSpec(4, false, Rounding::kHalfAwayFromZero, ScaleType::kF32);
  torch::Tensor x = torch::tensor({-9.0f, -8.0f, -8.4f, 0.3f, 7.0f, 7.2f, 7.6f, 100.0f}).requires_grad_(true);
  const torch::Tensor s = torch::ones({1});
  const torch::Tensor y = FakeQuantFixedScale(x, s, spec);
  EXPECT_TRUE(torch::equal(y.detach(), torch::tensor({-8.0f, -8.0f, -8.0f, 0.0f, 7.0f, 7.0f, 7.0f, 7.0f})));
  y.sum().backward();
  // inside iff -Qn <= x/s <= Qp (before rounding)
  EXPECT_TRUE(torch::equal(x.grad(), torch::tensor({0.0f, 1.0f, 0.0f, 1.0f, 1.0f, 0.0f, 0.0f, 0.0f})));
  });
}

// L = sum r * y_sur(x, s), y_sur = s * (clamp(x/s, -Qn, Qp) + c) with c the
// rounding residual frozen at (x0, s0): the function whose exact gradient
// LSQ's STE defines. Double precision.
double SurrogateLoss(const torch::Tensor& x, const torch::Tensor& s, const torch::Tensor& c,
                     const torch::Tensor& r, const QuantSpec& spec) {
  const torch::Tensor v = (x / s).clamp(-spec.Qn(), spec.Qp());
  return (r * s * (v + c)).sum().item<double>();
}

TEST_F(FakeQuantTest, LsqGradientsMatchFiniteDifferencesAndFormula) {
  for (Rounding rd : {Rounding::kHalfAwayFromZero, Rounding::kHalfEven}) {
    const QuantSpec spec = IntSpec(3, false, rd, ScaleType::kF32, ScaleRule::kLearned);
    torch::manual_seed(3);
    const torch::Tensor x0 = torch::randn({4, 16}, torch::kDouble);
    const torch::Tensor s0 = x0.abs().amax(1, true) / spec.Qp() * 0.6;  // some clipping
    const torch::Tensor r = torch::randn({4, 16}, torch::kDouble);
    const double g = 0.25;
    torch::Tensor x = x0.clone().requires_grad_(true);
    torch::Tensor s = s0.clone().requires_grad_(true);
    (FakeQuantLsq(x, s, spec, g) * r).sum().backward();
    // The formula.
    const torch::Tensor v = x0 / s0;
    const torch::Tensor q = RoundPerSpec(v, spec).clamp(-spec.Qn(), spec.Qp());
    const torch::Tensor inside = ((v >= -spec.Qn()) & (v <= spec.Qp())).to(torch::kDouble);
    const torch::Tensor want_s = (r * (inside * (q - v) + (1 - inside) * q)).sum(1, true) * g;
    EXPECT_TRUE(torch::allclose(s.grad(), want_s, 1e-12, 1e-12));
    EXPECT_TRUE(torch::equal(x.grad(), r * inside));
    // Finite differences of the surrogate.
    const torch::Tensor c = q - v.clamp(-spec.Qn(), spec.Qp());
    const double eps = 1e-6;
    for (int64_t i = 0; i < 4; ++i) {
      torch::Tensor sp = s0.clone(), sm = s0.clone();
      sp[i][0] += eps;
      sm[i][0] -= eps;
      const double fd = (SurrogateLoss(x0, sp, c, r, spec) - SurrogateLoss(x0, sm, c, r, spec)) / (2 * eps);
      EXPECT_NEAR(fd * g, s.grad()[i][0].item<double>(), 1e-6 * (1 + std::fabs(fd)));
    }
    for (int64_t j = 0; j < 16; j += 5) {
      torch::Tensor xp = x0.clone(), xm = x0.clone();
      xp[1][j] += eps;
      xm[1][j] -= eps;
      const double fd = (SurrogateLoss(xp, s0, c, r, spec) - SurrogateLoss(xm, s0, c, r, spec)) / (2 * eps);
      EXPECT_NEAR(fd, x.grad()[1][j].item<double>(), 1e-6 * (1 + std::fabs(fd)));
    }
  }
}

// The fused CPU LSQ backward (AVX2 rows, scalar tail) against the ATen
// composition: the same dL/dx values, and dL/ds up to the order of the
// double-precision sum. Rows of 67 cover the 8-wide loop and its tail; the
// scales clip some values; ties land on exact halves.
TEST_F(FakeQuantTest, LsqBackwardCpuKernelMatchesAtenOps) {
  for (Rounding rd : {Rounding::kHalfAwayFromZero, Rounding::kHalfEven}) {
    for (bool per_row : {true, false}) {
      SCOPED_TRACE(::testing::Message() << "half_even " << (rd == Rounding::kHalfEven) << " per_row " << per_row);
      const QuantSpec spec = IntSpec(2, false, rd, ScaleType::kF32, ScaleRule::kLearned);
      torch::manual_seed(per_row ? 11 : 12);
      torch::Tensor x0 = torch::randn({5, 67});
      x0.index_put_({0, torch::indexing::Slice(0, 16)},
                    torch::arange(-8, 8, torch::kFloat) * 0.25f + 0.125f);  // halves of s = 0.25
      torch::Tensor s0 = per_row ? 0.25f + torch::rand({5, 1}) * 0.5f : torch::full({1}, 0.25f);
      s0.index_put_({0}, 0.25f);  // row 0's ties are exact
      const torch::Tensor r = torch::randn({5, 67});
      torch::Tensor gx[2], gs[2];
      for (int cpu = 0; cpu < 2; ++cpu) {
        SetFakeQuantCpuKernels(cpu == 1);
        torch::Tensor x = x0.clone().requires_grad_(true), s = s0.clone().requires_grad_(true);
        (FakeQuantLsq(x, s, spec, 0.5) * r).sum().backward();
        gx[cpu] = x.grad();
        gs[cpu] = s.grad();
      }
      EXPECT_TRUE(torch::equal(gx[1], gx[0]));  // equal values (the kernel writes +0 where ATen has -0)
      EXPECT_TRUE(torch::allclose(gs[1], gs[0], 1e-5, 1e-6)) << gs[1] << gs[0];
    }
  }
}

// Values whose x/s falls in a half-step band just outside the range, where
// LibTorch's mask (on the rounded value) and ours (before rounding) differ.
torch::Tensor AvoidClipBands(torch::Tensor x, const torch::Tensor& s, int qn, int qp) {
  const torch::Tensor v = x / s;
  const torch::Tensor band = ((v > qp) & (v <= qp + 0.5)) | ((v < -qn) & (v >= -qn - 0.5));
  return torch::where(band, x * 3, x);
}

TEST_F(FakeQuantTest, AgreesWithLibTorchPerChannelFakeQuant) {
  BothPaths([&] {
  for (int bits : {4, 8}) {
    const QuantSpec spec = IntSpec(bits, false, Rounding::kHalfEven, ScaleType::kF32, ScaleRule::kLearned);
    torch::manual_seed(bits);
    const torch::Tensor s0 = torch::rand({8}) * 0.05 + 0.01;  // fixed scales, F32
    torch::Tensor x0 = torch::randn({8, 64}) * s0.unsqueeze(1) * (spec.Qp() * 1.3);
    x0 = AvoidClipBands(x0, s0.unsqueeze(1), spec.Qn(), spec.Qp());
    const torch::Tensor zp = torch::zeros({8}, torch::kInt);
    const torch::Tensor r = torch::randn({8, 64});
    // Fixed scale: forward and dL/dx.
    torch::Tensor xa = x0.clone().requires_grad_(true), xb = x0.clone().requires_grad_(true);
    const torch::Tensor ya = FakeQuantFixedScale(xa, s0.unsqueeze(1), spec);
    const torch::Tensor yb = torch::fake_quantize_per_channel_affine(xb, s0, zp, 0, -spec.Qn(), spec.Qp());
    EXPECT_BITWISE_EQ(ya, yb);
    (ya * r).sum().backward();
    (yb * r).sum().backward();
    EXPECT_TRUE(torch::equal(xa.grad(), xb.grad()));
    // Learnable scale (LSQ) against _fake_quantize_learnable_per_channel_affine.
    const double g = 1.0 / std::sqrt(64.0 * spec.Qp());
    torch::Tensor xc = x0.clone().requires_grad_(true), xd = x0.clone().requires_grad_(true);
    torch::Tensor sc = s0.clone().unsqueeze(1).requires_grad_(true), sd = s0.clone().requires_grad_(true);
    const torch::Tensor yc = FakeQuantLsq(xc, sc, spec, g);
    const torch::Tensor yd = torch::_fake_quantize_learnable_per_channel_affine(
        xd, sd, torch::zeros({8}), 0, -spec.Qn(), spec.Qp(), g);
    EXPECT_BITWISE_EQ(yc, yd);
    (yc * r).sum().backward();
    (yd * r).sum().backward();
    EXPECT_TRUE(torch::equal(xc.grad(), xd.grad()));
    EXPECT_TRUE(torch::allclose(sc.grad().reshape(-1), sd.grad(), 1e-4, 1e-6))
        << sc.grad().reshape(-1) << sd.grad();
  }
  });
}

TEST_F(FakeQuantTest, StoreScaleSteRoundsForwardPassesGradient) {
  const QuantSpec spec = IntSpec(4, false, Rounding::kHalfEven, ScaleType::kF16);
  torch::Tensor s = torch::tensor({0.1f, 1e6f}).requires_grad_(true);
  const torch::Tensor y = StoreScaleSte(s, spec);
  EXPECT_EQ(y[0].item<float>(), RoundToFp16(0.1f));
  EXPECT_EQ(y[1].item<float>(), 65504.0f);
  (y * torch::tensor({2.0f, 3.0f})).sum().backward();
  EXPECT_TRUE(torch::equal(s.grad(), torch::tensor({2.0f, 3.0f})));
}

// ---- CUDA: the ATen composition on the GPU ---------------------------------
// Forwards equal the reference codecs bit for bit (the CUDA kernels do the
// same single-rounded float ops; divisions by constants are true divisions,
// see DivExact in fake_quant.cc). Gradients: dL/dx is a mask times dL/dy,
// exact; dL/ds sums over the elements sharing a scale, in an order that
// differs between devices (and the fused CPU kernel sums in double): within
// 1e-5 of the sum of the absolute terms, the scale of a float sum's rounding
// error. Skipped without a CUDA device.
class FakeQuantCudaTest : public FakeQuantTest {
 protected:
  void SetUp() override {
    FakeQuantTest::SetUp();
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device (LibTorch without CUDA, or no GPU)";
  }
};

// A CUDA copy, a leaf (t must not require grad, or the copy would not be one).
torch::Tensor Cuda(const torch::Tensor& t) { return t.detach().to(torch::kCUDA); }

// |got - want| <= 1e-5 * abs_terms + 1e-7 elementwise; abs_terms: the sum of
// the absolute terms behind each element (shape of want).
void ExpectCloseGrad(const torch::Tensor& got, const torch::Tensor& want, const torch::Tensor& abs_terms) {
  const torch::Tensor g = got.detach().to(torch::kCPU), w = want.detach().to(torch::kCPU);
  ASSERT_EQ(g.sizes(), w.sizes());
  const torch::Tensor excess = (g - w).abs() - (abs_terms.reshape(w.sizes()) * 1e-5 + 1e-7);
  EXPECT_LE(excess.max().item<double>(), 0.0) << "got\n" << g << "\nwant\n" << w;
}

TEST_F(FakeQuantCudaTest, BlockFormatsMatchReferenceBitForBit) {
  for (int seed = 0; seed < 60; ++seed) {
    const torch::Tensor x = EdgeCaseWeights(seed, 5, 128);
    const torch::Tensor xc = Cuda(x);
    SCOPED_TRACE(seed);
    EXPECT_TRUE(Q4_0Dequantized(xc).is_cuda());
    EXPECT_BITWISE_EQ(Q4_0Dequantized(xc), ReferenceBlock(GgmlType::kQ4_0, x));
    EXPECT_BITWISE_EQ(Q8_0Dequantized(xc), ReferenceBlock(GgmlType::kQ8_0, x));
    EXPECT_BITWISE_EQ(Q2_0Dequantized(xc), ReferenceBlock(GgmlType::kQ2_0, x));
    EXPECT_BITWISE_EQ(Q8_0ActDequantized(xc), ReferenceQ8_0Act(x));
    auto [codes, d] = Q4_0CodesTensor(xc);
    auto [codes_cpu, d_cpu] = Q4_0CodesTensor(x);
    EXPECT_TRUE(torch::equal(codes.cpu(), codes_cpu));
    EXPECT_BITWISE_EQ(d, d_cpu);
  }
  // Ties to even in the activation rule; a block whose 127/amax overflows;
  // a negative value rounding to code 0 (+0).
  torch::Tensor y = torch::zeros({3, 32});
  y[0].fill_(1e-40f);
  y[1][0] = 127.0f;
  y[1][1] = -0.25f;
  y[2][0] = 127.0f;
  y[2][1] = 2.5f;
  y[2][2] = -3.5f;
  EXPECT_BITWISE_EQ(Q8_0ActDequantized(Cuda(y)), ReferenceQ8_0Act(y));
}

TEST_F(FakeQuantCudaTest, BlockOpsAreSteOnCuda) {
  torch::Tensor x = Cuda(EdgeCaseWeights(4, 4, 64)).requires_grad_(true);
  for (auto fn : {&FakeQuantQ4_0, &FakeQuantQ8_0, &FakeQuantQ2_0, &FakeQuantQ8_0Act}) {
    x.mutable_grad() = torch::Tensor();
    const torch::Tensor y = fn(x);
    const torch::Tensor r = torch::randn_like(y);
    (y * r).sum().backward();
    EXPECT_TRUE(torch::equal(x.grad(), r));
  }
}

TEST_F(FakeQuantCudaTest, Q4_0LearnedScalesMatchCpu) {
  for (int seed = 0; seed < 12; ++seed) {
    SCOPED_TRACE(seed);
    const torch::Tensor x = EdgeCaseWeights(seed, 3, 64);
    torch::Tensor d = Q4_0CodesTensor(x).second * torch::tensor({0.6f, 1.7f}).reshape({1, 2});
    d[1][0] = -d[1][0];
    d[2][1] = 0.0f;
    EXPECT_BITWISE_EQ(Q4_0DequantizedWithScale(Cuda(x), Cuda(d)), Q4_0DequantizedWithScale(x, d));
  }
  torch::manual_seed(5);
  const torch::Tensor x0 = torch::randn({8, 128});
  const torch::Tensor d0 = Q4_0CodesTensor(x0).second * 0.7f;  // the extremes clip
  const torch::Tensor r = torch::randn({8, 128});
  torch::Tensor gx[2], gd[2], y[2];
  for (int cuda = 0; cuda < 2; ++cuda) {
    auto dev = [&](const torch::Tensor& t) { return cuda ? Cuda(t) : t.detach().clone(); };  // leaves
    torch::Tensor x = dev(x0).requires_grad_(true), d = dev(d0).requires_grad_(true);
    y[cuda] = FakeQuantQ4_0Lsq(x, d, 0.5);
    (y[cuda] * dev(r)).sum().backward();
    gx[cuda] = x.grad();
    gd[cuda] = d.grad();
  }
  EXPECT_BITWISE_EQ(y[1], y[0]);
  EXPECT_TRUE(torch::equal(gx[1].cpu(), gx[0]));
  ExpectCloseGrad(gd[1], gd[0], r.abs().reshape({8, 4, 32}).sum(-1) * (0.5 * 8.0));
}

TEST_F(FakeQuantCudaTest, IntPerChannelMatchesReferenceBitForBit) {
  CheckIntPerChannel(Cuda);
}

TEST_F(FakeQuantCudaTest, DynamicActivationsMatchReference) { CheckDynamicActivations(Cuda); }

// Static per-tensor activations (linear inputs, KV cache: int_tensor with a
// [1] scale), calibrated (fixed scale, clip mask) and learned (LSQ).
TEST_F(FakeQuantCudaTest, StaticActivationsMatchCpu) {
  for (int bits : {8, 4}) {
    for (Rounding rd : {Rounding::kHalfAwayFromZero, Rounding::kHalfEven}) {
      SCOPED_TRACE(::testing::Message() << bits << " bits, half_even " << (rd == Rounding::kHalfEven));
      QuantSpec spec = IntSpec(bits, false, rd, ScaleType::kF32, ScaleRule::kCalibrated);
      spec.scheme = QuantScheme::kIntTensor;
      torch::manual_seed(bits);
      const torch::Tensor x0 = torch::randn({2, 5, 64}) * 3;  // [B, T, C]
      const torch::Tensor s0 = torch::full({1}, 3.0f * 2.5f / static_cast<float>(spec.Qp()));  // clips the tails
      const torch::Tensor r = torch::randn({2, 5, 64});
      torch::Tensor y[2], gx[2], yl[2], gxl[2], gsl[2];
      for (int cuda = 0; cuda < 2; ++cuda) {
        auto dev = [&](const torch::Tensor& t) { return cuda ? Cuda(t) : t.detach().clone(); };  // leaves
        torch::Tensor x = dev(x0).requires_grad_(true);
        y[cuda] = FakeQuantFixedScale(x, dev(s0), spec);
        (y[cuda] * dev(r)).sum().backward();
        gx[cuda] = x.grad();
        QuantSpec learned = spec;
        learned.scale_rule = ScaleRule::kLearned;
        torch::Tensor xl = dev(x0).requires_grad_(true), sl = dev(s0).requires_grad_(true);
        yl[cuda] = FakeQuantLsq(xl, StoreScaleSte(sl, learned), learned, 1.0 / std::sqrt(64.0 * spec.Qp()));
        (yl[cuda] * dev(r)).sum().backward();
        gxl[cuda] = xl.grad();
        gsl[cuda] = sl.grad();
      }
      ASSERT_GT((gx[0] == 0).sum().item<int64_t>(), 0);  // the test covers clipping
      EXPECT_BITWISE_EQ(y[1], y[0]);
      EXPECT_TRUE(torch::equal(gx[1].cpu(), gx[0]));
      EXPECT_BITWISE_EQ(yl[1], yl[0]);
      EXPECT_TRUE(torch::equal(gxl[1].cpu(), gxl[0]));
      ExpectCloseGrad(gsl[1], gsl[0], r.abs().sum().reshape({1}) * (spec.Qn() / std::sqrt(64.0 * spec.Qp())));
    }
  }
}

// Per-channel LSQ (the mobile recipe's int4 / int2 weights) against the fused
// CPU backward: dL/dx exact, dL/ds up to summation order.
TEST_F(FakeQuantCudaTest, LsqGradientsMatchCpuKernel) {
  for (int bits : {2, 4, 8}) {
    for (Rounding rd : {Rounding::kHalfAwayFromZero, Rounding::kHalfEven}) {
      for (bool per_row : {true, false}) {
        SCOPED_TRACE(::testing::Message() << bits << " bits, half_even " << (rd == Rounding::kHalfEven)
                                          << " per_row " << per_row);
        const QuantSpec spec = IntSpec(bits, false, rd, ScaleType::kF16, ScaleRule::kLearned);
        torch::manual_seed(bits * 4 + per_row);
        const torch::Tensor x0 = torch::randn({16, 96});
        const torch::Tensor s0 = per_row ? MseScales(x0, spec) * 0.8f : torch::full({1}, 0.5f / spec.Qp());
        const torch::Tensor r = torch::randn({16, 96});
        const double g = 1.0 / std::sqrt(static_cast<double>(x0.numel()) * spec.Qp());
        torch::Tensor y[2], gx[2], gs[2];
        for (int cuda = 0; cuda < 2; ++cuda) {
          auto dev = [&](const torch::Tensor& t) { return cuda ? Cuda(t) : t.detach().clone(); };  // leaves
          torch::Tensor x = dev(x0).requires_grad_(true), s = dev(s0).requires_grad_(true);
          y[cuda] = FakeQuantLsq(x, StoreScaleSte(s, spec), spec, g);
          (y[cuda] * dev(r)).sum().backward();
          gx[cuda] = x.grad();
          gs[cuda] = s.grad();
        }
        EXPECT_BITWISE_EQ(y[1], y[0]);
        EXPECT_TRUE(torch::equal(gx[1].cpu(), gx[0]));
        ExpectCloseGrad(gs[1], gs[0], r.abs().sum_to_size(s0.sizes()) * (g * spec.Qn()));
      }
    }
  }
}

TEST_F(FakeQuantCudaTest, StoreScaleRoundsLikeCpu) {
  const QuantSpec spec = IntSpec(4, false, Rounding::kHalfEven, ScaleType::kF16);
  const torch::Tensor s = torch::tensor({0.1f, 1e6f, -1e6f, 3e-8f, 6.1e-5f, 65519.0f, 65520.0f});
  EXPECT_BITWISE_EQ(StoreScaleTensor(Cuda(s), spec), StoreScaleTensor(s, spec));
}

}  // namespace
}  // namespace qatk::qat
