// Checkpoint directory -> plain Hugging Face checkpoint of the fake-quantized
// weights, for tools that quantize on their own.
//
// Each weight a recipe rule quantizes is replaced by dequantize(quantize(w))
// of the shared codec (learned per-channel scales from <module>.weight_scale
// are used when the spec stores its scale); other tensors are copied;
// quantizer state (*.weight_scale, *.input_scale, *.k_scale, *.v_scale) is
// dropped. Names and layouts stay Hugging Face's (no q/k permutation, no
// Gemma 1+w folding).
//
// Idempotence: the Q4_0/Q8_0/Q2_0 block rules map their own grid onto itself,
// so re-quantizing the F32 output with the reference codec (or llama.cpp's
// Q4_0 quantizer without an imatrix) reproduces the exported GGUF blocks
// byte for byte (tested). With --dtype bf16 that no longer holds in general:
// (q-8)*fp16(d) needs up to 15 significant bits and bf16 keeps 8.
//
// --out: a path ending in ".safetensors" writes that one file; any other path
// is a directory that receives model.safetensors, config.json and
// tokenizer.model.
#ifndef QATK_EXPORT_SAFETENSORS_EXPORT_H_
#define QATK_EXPORT_SAFETENSORS_EXPORT_H_

#include <string>

#include "absl/status/status.h"

namespace qatk::exporter {

struct SafetensorsExportOptions {
  std::string model_dir;
  std::string out;
  std::string dtype = "f32";  // f32 | bf16
};

absl::Status ExportSafetensors(const SafetensorsExportOptions& options);

}  // namespace qatk::exporter

#endif  // QATK_EXPORT_SAFETENSORS_EXPORT_H_
