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
// tokenizer.model (when the checkpoint has one).
//
// --format hf (ExportHf) writes a Hugging Face folder as transformers'
// save_pretrained does: the same tensors in shards of at most
// max_shard_bytes (model-00001-of-0000N.safetensors + index, or one
// model.safetensors), config.json with every original key (torch_dtype set
// to the written dtype), and the tokenizer and generation files the source
// has (kHfSideFiles). A quantized checkpoint's recipe and quantizer state go
// to qatkit_quantization.json:
//   {"format": "qatkit-quantization", "version": 1,
//    "note": "...", "recipe": {recipe.json}, "tensors": {NAME: {"shape": [..],
//    "values": [..]}}}
// (every *.weight_scale / *.input_scale / *.k_scale / *.v_scale tensor, F32
// values exactly); the folder's weights are already fake-quantized, so it
// loads as a full-precision model. The folder is built in "<out>.tmp-<pid>"
// and replaces <out> only when complete; an existing <out> must hold nothing
// but files of such a folder. From an HF folder, import -> export -> import
// keeps every tensor bit for bit (BF16 -> --dtype bf16, or F32 values with
// --dtype f32).
#ifndef QATK_EXPORT_SAFETENSORS_EXPORT_H_
#define QATK_EXPORT_SAFETENSORS_EXPORT_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace qatk::exporter {

struct SafetensorsExportOptions {
  std::string model_dir;
  std::string out;
  std::string dtype = "f32";  // f32 | bf16
  uint64_t max_shard_bytes = 5000000000;  // ExportHf; transformers' default "5GB"
};

absl::Status ExportSafetensors(const SafetensorsExportOptions& options);
absl::Status ExportHf(const SafetensorsExportOptions& options);

// Files other than weights and config.json that a Hugging Face folder
// carries and ExportHf copies when present.
extern const char* const kHfSideFiles[];
extern const size_t kNumHfSideFiles;

// A random-weight Hugging Face folder with config_path's exact shapes (the
// architecture table), for benchmarks and tests: matrices uniform with the
// config's initializer_range (0.02 when absent) as standard deviation,
// RMSNorm weights 1 (0 for Gemma's 1+w), biases 0. Streamed row by row:
// memory stays at one row whatever the model size.
struct RandomHfOptions {
  std::string config_path;
  std::string out;
  std::string dtype = "bf16";  // f32 | bf16
  uint64_t max_shard_bytes = 5000000000;
  uint64_t seed = 1234;
  std::string tokenizer;  // optional tokenizer.model or tokenizer.json to copy
};
absl::Status WriteRandomHf(const RandomHfOptions& options);

}  // namespace qatk::exporter

#endif  // QATK_EXPORT_SAFETENSORS_EXPORT_H_
