#include "qat/train/calibrate.h"

#include "qat/data/token_stream.h"
#include "qat/quant/prepare.h"

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

void CalibrateModel(CausalLM& model, const std::vector<int32_t>& tokens, int64_t seq, int64_t batch,
                    int64_t batches, uint64_t seed, int32_t bos_id) {
  torch::NoGradGuard no_grad;
  const torch::Device device = model->parameters().front().device();
  SetQuantMode(*model, QuantMode::kCalibrate);
  data::BatchSampler sampler(&tokens, seq, seed, bos_id);
  std::vector<int64_t> in, tg;
  for (int64_t i = 0; i < batches; ++i) {
    sampler.Next(batch, &in, &tg);
    model->forward(torch::from_blob(in.data(), {batch, seq}, torch::kInt64).to(device));
  }
  SetQuantMode(*model, QuantMode::kQuant);
}

}  // namespace qatk::qat
