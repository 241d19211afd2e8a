// Prepare / calibrate / freeze / convert a model for a recipe.
//
//   ApplyRecipe(model, recipe)   walks model.named_modules(); validates the
//                                recipe against the QLinear / QEmbedding /
//                                KvQuant modules found (names, shapes), then
//                                configures each with recipe.Resolve(name).
//   SetQuantMode(model, mode)    kCalibrate: observers run, outputs float;
//                                kQuant: fake quant; kOff: plain float.
//   FreezeQuantizers(model)      scales fixed from now on.
//   ConvertWeights(model)        integer codes + scales of every quantized
//                                weight via the reference codec (what the
//                                exporter writes), keyed by module name.
// Typical PTQ: ApplyRecipe; SetQuantMode(kCalibrate); run a few batches;
// SetQuantMode(kQuant); FreezeQuantizers. QAT: the same, then train.
#ifndef QATK_QAT_QUANT_PREPARE_H_
#define QATK_QAT_QUANT_PREPARE_H_

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "formats/quant/recipe.h"
#include "formats/quant/spec.h"
#include "qat/quant/quantizer.h"

namespace qatk::qat {

// The quantizable modules of `model` with their names and shapes (the input
// of Recipe::Validate). Cache modules report cols = 0 (head_dim unknown to
// the module) unless `head_dim` > 0.
std::vector<ModuleShape> QuantizableModules(torch::nn::Module& model, int64_t head_dim = 0);

// Validates then configures. kInvalidArgument naming the recipe rule on a
// mismatch; the model is left untouched on error.
absl::Status ApplyRecipe(torch::nn::Module& model, const Recipe& recipe, int64_t head_dim = 0);

void SetQuantMode(torch::nn::Module& model, QuantMode mode);
void FreezeQuantizers(torch::nn::Module& model);

// Weight of one module converted by the reference codec (block rows, or
// int8 codes + per-row scales), using the module's stored weight_scale when
// it has one. kInvalidArgument for non-finite weights.
absl::StatusOr<QuantizedMatrix> ConvertWeight(const torch::Tensor& weight /*[R, C]*/,
                                              const QuantSpec& spec,
                                              const torch::Tensor& weight_scale /*[R,1], [R,C/32] or undef*/);
absl::StatusOr<std::map<std::string, QuantizedMatrix>> ConvertWeights(torch::nn::Module& model);

// `recipe` with every q4_0 weight spec on stored ("learned") block scales, so
// a checkpoint keeps the d it was given (GPTQ's, or one that training with
// frozen codes moves) instead of re-deriving it by the max rule. The GGUF is
// the same Q4_0 format either way. Sets *converted (optional) to the number
// of rules changed. kInvalidArgument when the recipe has no q4_0 weight rule.
absl::StatusOr<Recipe> WithLearnedQ4_0Scales(const Recipe& recipe, int* converted = nullptr);

}  // namespace qatk::qat

#endif  // QATK_QAT_QUANT_PREPARE_H_
