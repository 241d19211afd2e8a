#include "qat/eval/recovered.h"

#include <algorithm>
#include <random>

namespace qatk::qat {
namespace {

double Ppl(const std::vector<double>& nll, const std::vector<size_t>& idx) {
  double s = 0;
  for (size_t i : idx) s += nll[i];
  return std::exp(s / static_cast<double>(idx.size()));
}

// The 2.5% and 97.5% percentiles of the bootstrap samples (none with fewer
// than 10).
void SetInterval95(std::vector<double>& samples, Recovered* r) {
  if (samples.size() < 10) return;
  std::sort(samples.begin(), samples.end());
  r->lo = samples[static_cast<size_t>(0.025 * (samples.size() - 1))];
  r->hi = samples[static_cast<size_t>(0.975 * (samples.size() - 1))];
}

}  // namespace

Recovered ComputeRecovered(const EvalScores& fp, const EvalScores& ptq, const EvalScores& qat, int resamples,
                           uint64_t seed) {
  Recovered r;
  r.value = (ptq.ppl - qat.ppl) / (ptq.ppl - fp.ppl);
  const size_t n = fp.chunk_nll.size();
  if (n < 2 || ptq.chunk_nll.size() != n || qat.chunk_nll.size() != n || resamples < 10) return r;
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<size_t> pick(0, n - 1);
  std::vector<double> samples;
  std::vector<size_t> idx(n);
  for (int b = 0; b < resamples; ++b) {
    for (size_t& i : idx) i = pick(rng);
    const double f = Ppl(fp.chunk_nll, idx), p = Ppl(ptq.chunk_nll, idx), q = Ppl(qat.chunk_nll, idx);
    if (p - f != 0) samples.push_back((p - q) / (p - f));
  }
  SetInterval95(samples, &r);
  return r;
}

Recovered ComputeMeanRecovered(const EvalScores& fp, const EvalScores& ptq, const std::vector<EvalScores>& runs,
                               int resamples, uint64_t seed) {
  Recovered r;
  if (runs.empty()) return r;
  double sum = 0;
  for (const EvalScores& q : runs) sum += (ptq.ppl - q.ppl) / (ptq.ppl - fp.ppl);
  r.value = sum / static_cast<double>(runs.size());
  const size_t n = fp.chunk_nll.size();
  const bool paired = std::all_of(runs.begin(), runs.end(), [&](const EvalScores& q) {
    return q.chunk_nll.size() == n;
  });
  if (runs.size() < 2 || n < 2 || ptq.chunk_nll.size() != n || !paired || resamples < 10) return r;
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<size_t> pick_chunk(0, n - 1), pick_run(0, runs.size() - 1);
  std::vector<double> samples;
  std::vector<size_t> idx(n);
  for (int b = 0; b < resamples; ++b) {
    for (size_t& i : idx) i = pick_chunk(rng);
    const double f = Ppl(fp.chunk_nll, idx), p = Ppl(ptq.chunk_nll, idx);
    if (p - f == 0) continue;
    double mean = 0;
    for (size_t k = 0; k < runs.size(); ++k) mean += (p - Ppl(runs[pick_run(rng)].chunk_nll, idx)) / (p - f);
    samples.push_back(mean / static_cast<double>(runs.size()));
  }
  SetInterval95(samples, &r);
  return r;
}

SeedSpread ComputeSeedSpread(const std::vector<double>& recovered) {
  SeedSpread s;
  double sum = 0;
  for (double v : recovered) {
    if (!std::isfinite(v)) continue;
    s.min = s.n == 0 ? v : std::min(s.min, v);
    s.max = s.n == 0 ? v : std::max(s.max, v);
    sum += v;
    ++s.n;
  }
  if (s.n > 0) s.mean = sum / s.n;
  return s;
}

}  // namespace qatk::qat
