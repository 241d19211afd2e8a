// Static activation calibration (PTQ and the start of QAT): run a few batches
// with the quantizers in calibrate mode, then switch to fake quant.
#ifndef QATK_QAT_TRAIN_CALIBRATE_H_
#define QATK_QAT_TRAIN_CALIBRATE_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "formats/quant/recipe.h"
#include "qat/model/transformer.h"

namespace qatk::qat {

// True when some input / cache slot of the model has a calibrated static scale.
bool RecipeNeedsCalibration(CausalLM& model, const Recipe& recipe);

// `batches` batches of [batch, seq] windows drawn from `tokens` (seeded),
// observed in QuantMode::kCalibrate; leaves the model in kQuant.
void CalibrateModel(CausalLM& model, const std::vector<int32_t>& tokens, int64_t seq, int64_t batch,
                    int64_t batches, uint64_t seed, int32_t bos_id);

// GPTQ's layer Hessians H = 2/N X^T X ([in, in] f64, on the model's device)
// of the named QLinear modules, X [N, in] being each module's input in the
// FP model (QuantMode::kOff: weights and activations unquantized), over the
// same batches CalibrateModel draws. Leaves the model in kQuant.
std::map<std::string, torch::Tensor> CollectInputHessians(CausalLM& model, const std::vector<std::string>& modules,
                                                          const std::vector<int32_t>& tokens, int64_t seq,
                                                          int64_t batch, int64_t batches, uint64_t seed,
                                                          int32_t bos_id);

}  // namespace qatk::qat

#endif  // QATK_QAT_TRAIN_CALIBRATE_H_
