// Static activation calibration (PTQ and the start of QAT): run a few batches
// with the quantizers in calibrate mode, then switch to fake quant.
#ifndef QATK_QAT_TRAIN_CALIBRATE_H_
#define QATK_QAT_TRAIN_CALIBRATE_H_

#include <cstdint>
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

}  // namespace qatk::qat

#endif  // QATK_QAT_TRAIN_CALIBRATE_H_
