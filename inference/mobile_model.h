// Loads a mobile (QMOB, docs/formats/mobile.md) file into the runtime's Model:
// the tensors of the config's architecture table (formats/model_arch.h) by
// their Hugging Face names, plus the cache points' static scales.
//
// Zero-copy: every weight QMatrix points at the codes inside the mapping;
// per-row scales stored as f32 are used in place, f16 scales are widened once
// into storage owned by the Model. The model config comes from the embedded
// Hugging Face config.json (formats/model_config.h), the vocabulary from the
// embedded tokenizer. HF layouts are kept as they are: q/k are not permuted,
// so both architectures use NEOX rope (pairs (i, i + D/2)); Gemma 3 norms are
// stored as w and become 1 + w here (the forward multiplies by the stored
// value). Static KV-cache scales (model.layers.N.self_attn.{k,v}_scale) fill
// LayerWeights::k_scale / v_scale for the int8 KV cache. Embeddings must be
// F32, F16 or INT8_CHANNEL (the looked-up row is dequantized); with tied
// embeddings the output head reuses them, and the embed_tokens entry's act_*
// fields are the head's input quantizer.
#ifndef QATK_INFERENCE_MOBILE_MODEL_H_
#define QATK_INFERENCE_MOBILE_MODEL_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "formats/mobile/mobile_format.h"
#include "inference/model.h"
#include "inference/model_loader.h"

namespace qatk::inference {

// kNotFound for a missing tensor, kInvalidArgument for a shape mismatch or
// config/tokenizer disagreement, kUnimplemented for an unsupported dtype in
// a slot (e.g. INT4 embeddings); errors name the path and tensor.
absl::StatusOr<std::unique_ptr<Model>> LoadMobileModel(const std::string& path,
                                                       const LoadOptions& options = {});
absl::StatusOr<Vocab> LoadMobileVocab(const std::string& path);

// The weight view of one mobile tensor [rows, cols] (exposed for tests and
// tools). `scales` receives widened f16 scales when needed and must outlive
// the QMatrix.
absl::StatusOr<QMatrix> MobileMatrix(const mobile::MobileFile& f, const mobile::TensorInfo& t,
                                     std::vector<float>* scales);

}  // namespace qatk::inference

#endif  // QATK_INFERENCE_MOBILE_MODEL_H_
