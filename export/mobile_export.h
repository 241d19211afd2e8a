// Checkpoint directory -> mobile (QMOB) file, docs/formats/mobile.md.
//
// What each tensor becomes (the recipe decides; no recipe = "fp" export):
//   norms (1-D)                  F32, Hugging Face values (Gemma: w, not 1+w;
//                                the runtime adds 1)
//   weights with an int_channel  INT8/INT4/INT2_CHANNEL codes + per-row scales
//   weight rule (bits 8/4/2)     from the shared codec (QuantizeMatrix), so
//                                codes*scales == the fake-quantized weight.
//                                Scale rules mse/learned take the stored
//                                `<module>.weight_scale` [rows, 1] (required);
//                                absmax derives it from the weight. Scales are
//                                stored as the spec's scale type (f16/f32);
//                                a learned scale trained below zero is kept
//                                signed (code * scale is what the model used).
//   other weights                F16 (no weight rule); a block scheme (q4_0,
//                                q8_0, q2_0) is an error: GGUF stores those
//   linear input rule int_tensor act_* fields: act_scale =
//                                Store(`<module>.input_scale`), bits, narrow,
//                                rounding of the spec; method calibrated /
//                                learned. Dynamic input schemes (int_token,
//                                q8_0_act) are an error (the format has no
//                                field for them).
//   k/v cache rule int_tensor    `model.layers.N.self_attn.{k,v}_scale` as an
//                                F32 [1] entry holding Store(scale), with the
//                                same act_* description of the int8 codes.
// Tied embeddings are stored once (model.embed_tokens.weight, no lm_head);
// the LibTorch model applies no input quantizer to a tied head, so neither
// does the file.
//
// Every shape and every quantizer-state tensor is checked before a byte is
// written; quantizer state that the recipe does not use is an error (it
// would mean the file and the trained model disagree). Errors name the
// tensor; on error no output file is left behind.
#ifndef QATK_EXPORT_MOBILE_EXPORT_H_
#define QATK_EXPORT_MOBILE_EXPORT_H_

#include <string>

#include "absl/status/status.h"

namespace qatk::exporter {

struct MobileExportOptions {
  std::string model_dir;  // checkpoint directory
  std::string out;        // FILE.qmob
};

absl::Status ExportMobile(const MobileExportOptions& options);

}  // namespace qatk::exporter

#endif  // QATK_EXPORT_MOBILE_EXPORT_H_
