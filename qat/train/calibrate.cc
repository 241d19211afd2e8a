#include "qat/train/calibrate.h"

#include <algorithm>

#include "qat/data/token_stream.h"
#include "qat/quant/prepare.h"
#include "qat/quant/qlinear.h"

namespace qatk::qat {

bool RecipeNeedsCalibration(CausalLM& model, const Recipe& recipe) {
  for (const ModuleShape& m : QuantizableModules(*model)) {
    const LayerQuant lq = recipe.Resolve(m.name);
    for (const QuantSpec* s : {&lq.input, &lq.cache}) {
      if (s->enabled() && s->scale_rule == ScaleRule::kCalibrated) return true;
    }
  }
  return false;
}

namespace {

// Runs `batches` seeded [batch, seq] windows of `tokens` through the model.
void RunBatches(CausalLM& model, const std::vector<int32_t>& tokens, int64_t seq, int64_t batch, int64_t batches,
                uint64_t seed, int32_t bos_id) {
  torch::NoGradGuard no_grad;
  const torch::Device device = model->parameters().front().device();
  data::BatchSampler sampler(&tokens, seq, seed, bos_id);
  std::vector<int64_t> in, tg;
  for (int64_t i = 0; i < batches; ++i) {
    sampler.Next(batch, &in, &tg);
    model->forward(torch::from_blob(in.data(), {batch, seq}, torch::kInt64).to(device));
  }
}

}  // namespace

void CalibrateModel(CausalLM& model, const std::vector<int32_t>& tokens, int64_t seq, int64_t batch,
                    int64_t batches, uint64_t seed, int32_t bos_id) {
  SetQuantMode(*model, QuantMode::kCalibrate);
  RunBatches(model, tokens, seq, batch, batches, seed, bos_id);
  SetQuantMode(*model, QuantMode::kQuant);
}

std::map<std::string, torch::Tensor> CollectInputHessians(CausalLM& model, const std::vector<std::string>& modules,
                                                          const std::vector<int32_t>& tokens, int64_t seq,
                                                          int64_t batch, int64_t batches, uint64_t seed,
                                                          int32_t bos_id) {
  std::map<std::string, InputGram> grams;
  std::map<std::string, QLinearImpl*> linears;
  for (const auto& item : model->named_modules("", /*include_self=*/false)) {
    auto* l = item.value()->as<QLinearImpl>();
    if (l == nullptr || std::find(modules.begin(), modules.end(), item.key()) == modules.end()) continue;
    linears[item.key()] = l;
    l->SetInputCapture(&grams[item.key()]);
  }
  SetQuantMode(*model, QuantMode::kOff);
  RunBatches(model, tokens, seq, batch, batches, seed, bos_id);
  SetQuantMode(*model, QuantMode::kQuant);
  std::map<std::string, torch::Tensor> out;
  for (auto& [name, l] : linears) {
    l->SetInputCapture(nullptr);
    const InputGram& g = grams[name];
    if (g.rows > 0) out[name] = g.gram * (2.0 / static_cast<double>(g.rows));
  }
  return out;
}

}  // namespace qatk::qat
