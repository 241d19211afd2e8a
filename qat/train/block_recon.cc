#include "qat/train/block_recon.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "qat/data/token_stream.h"
#include "qat/quant/prepare.h"
#include "qat/train/progress.h"

namespace qatk::qat {
namespace {

// The same layers: one model type and the same dimensions.
bool SameShape(const ModelConfig& a, const ModelConfig& b) {
  return a.model_type == b.model_type && a.hidden_act == b.hidden_act && a.vocab_size == b.vocab_size &&
         a.hidden_size == b.hidden_size && a.intermediate_size == b.intermediate_size &&
         a.num_hidden_layers == b.num_hidden_layers &&
         a.num_attention_heads == b.num_attention_heads && a.num_key_value_heads == b.num_key_value_heads &&
         a.head_dim == b.head_dim;
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The mean of the layer's loss over every batch.
double MeanLoss(DecoderLayerImpl& layer, const std::vector<torch::Tensor>& x, const std::vector<torch::Tensor>& y) {
  torch::NoGradGuard no_grad;
  double sum = 0;
  for (size_t i = 0; i < x.size(); ++i) sum += torch::mse_loss(layer.forward(x[i]), y[i]).item<double>();
  return sum / static_cast<double>(x.size());
}

// One progress line per layer: layer, steps, the mean loss over the last
// pass through the batches, and the time the layer has left.
void Progress(ProgressLine& line, int64_t layer, int64_t layers, int64_t step, int64_t steps, double loss,
              double eta_s) {
  line.Update(step, absl::StrFormat("block recon: layer %lld/%lld %s %lld/%lld mse %.4g  ETA %s",
                                    static_cast<long long>(layer + 1), static_cast<long long>(layers),
                                    ProgressBar(step, steps), static_cast<long long>(step),
                                    static_cast<long long>(steps), loss, FormatDuration(eta_s)));
}

}  // namespace

int64_t BlockReconActivationBytes(const BlockReconOptions& o, int64_t hidden_size) {
  return 2 * o.batches * o.batch * o.seq * hidden_size * static_cast<int64_t>(sizeof(float));
}

absl::StatusOr<std::vector<BlockReconLayer>> BlockReconstruct(CausalLM& student, CausalLM& teacher,
                                                              const std::vector<int32_t>& tokens, int32_t bos_id,
                                                              const BlockReconOptions& o) {
  if (!SameShape(student->config(), teacher->config())) {
    return absl::InvalidArgumentError(
        "block reconstruction: the teacher's config differs in type or shape from the model's");
  }
  if (o.steps < 0 || o.batches <= 0 || o.batch <= 0 || o.seq <= 0 || !(o.lr >= 0) || !(o.scale_lr >= 0)) {
    return absl::InvalidArgumentError("block reconstruction: steps >= 0, positive batches, batch and seq, lr >= 0");
  }
  if (static_cast<int64_t>(tokens.size()) <= o.seq + 1) {
    return absl::InvalidArgumentError(absl::StrCat("block reconstruction: the text has ", tokens.size(),
                                                   " tokens, fewer than one window of ", o.seq + 1));
  }
  SetQuantMode(*student, QuantMode::kQuant);
  const torch::Device device = student->parameters().front().device();
  // x: the student's input to the current layer; t: the teacher's, which
  // each layer turns into its output in place (the target, then the next
  // layer's input): two activation sets in all.
  std::vector<torch::Tensor> x, t;
  {
    torch::NoGradGuard no_grad;
    data::BatchSampler sampler(&tokens, o.seq, o.seed, bos_id);
    std::vector<int64_t> in, tg;
    for (int64_t i = 0; i < o.batches; ++i) {
      sampler.Next(o.batch, &in, &tg);
      const torch::Tensor ids = torch::from_blob(in.data(), {o.batch, o.seq}, torch::kInt64).to(device);
      x.push_back(student->model->EmbedInput(ids));
      t.push_back(teacher->model->EmbedInput(ids));
    }
  }
  std::vector<BlockReconLayer> out;
  const int64_t num_layers = student->config().num_hidden_layers;
  for (int64_t l = 0; l < num_layers; ++l) {
    const auto start = std::chrono::steady_clock::now();
    auto& layer = *student->model->layers[l]->as<DecoderLayer>();
    auto& fp_layer = *teacher->model->layers[l]->as<DecoderLayer>();
    {
      torch::NoGradGuard no_grad;
      for (torch::Tensor& ti : t) ti = fp_layer.forward(ti);
    }
    const std::vector<torch::Tensor>& y = t;
    BlockReconLayer r;
    r.mse_before = MeanLoss(layer, x, y);
    // Latent weights and norms; learned block scales; static scales stay.
    std::vector<torch::Tensor> main, scales;
    for (const auto& p : layer.named_parameters()) {
      if (!p.value().requires_grad()) continue;
      if (EndsWith(p.key(), "weight_scale")) {
        scales.push_back(p.value());
      } else if (!EndsWith(p.key(), "_scale")) {
        main.push_back(p.value());
      }
    }
    std::vector<torch::optim::OptimizerParamGroup> groups;
    std::vector<double> peak;
    for (auto* g : {&main, &scales}) {
      if (g->empty()) continue;
      const double lr = g == &main ? o.lr : o.scale_lr;
      groups.emplace_back(*g, std::make_unique<torch::optim::AdamOptions>(lr));
      peak.push_back(lr);
    }
    torch::optim::Adam adam(groups, torch::optim::AdamOptions(o.lr));
    std::vector<double> losses(static_cast<size_t>(o.batches), 0.0);
    double recent = 0;  // the loss summed over the last `batches` steps (fewer at first)
    ProgressLine line(o.steps);
    for (int64_t s = 0; s < o.steps; ++s) {
      const double cosine = 0.5 * (1 + std::cos(M_PI * static_cast<double>(s) / static_cast<double>(o.steps)));
      for (size_t g = 0; g < peak.size(); ++g) {
        static_cast<torch::optim::AdamOptions&>(adam.param_groups()[g].options()).lr(peak[g] * cosine);
      }
      const size_t i = static_cast<size_t>(s % o.batches);
      adam.zero_grad();
      torch::Tensor loss = torch::mse_loss(layer.forward(x[i]), y[i]);
      const double value = loss.item<double>();
      if (!std::isfinite(value)) {
        return absl::InternalError(absl::StrCat("block reconstruction: layer ", l, ", step ", s, ": loss is ", value));
      }
      loss.backward();
      adam.step();
      recent += value - (s >= o.batches ? losses[static_cast<size_t>(s % o.batches)] : 0.0);
      losses[static_cast<size_t>(s % o.batches)] = value;
      if (o.progress && ((s + 1) % 10 == 0 || s + 1 == o.steps)) {
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        Progress(line, l, num_layers, s + 1, o.steps, recent / static_cast<double>(std::min(s + 1, o.batches)),
                 secs / static_cast<double>(s + 1) * static_cast<double>(o.steps - s - 1));
      }
    }
    line.Break();
    r.mse_after = MeanLoss(layer, x, y);
    {
      torch::NoGradGuard no_grad;
      for (size_t i = 0; i < x.size(); ++i) x[i] = layer.forward(x[i]);
    }
    out.push_back(r);
    if (o.verbose) {
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::fprintf(stderr, "block recon: layer %lld/%lld: mse %.4g -> %.4g (%lld steps, %.1f s)\n",
                   static_cast<long long>(l + 1), static_cast<long long>(num_layers), r.mse_before, r.mse_after,
                   static_cast<long long>(o.steps), secs);
    }
  }
  return out;
}

}  // namespace qatk::qat
