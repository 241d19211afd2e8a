// Checkpoint directory -> GGUF file that stock llama.cpp loads ("llama",
// "qwen2", "qwen3" or "gemma3" architecture; docs/formats/gguf.md lists each
// one's keys and tensors).
//
// Tensor types: 1-D norms and biases F32 (never quantized); each 2-D weight
// gets its recipe weight scheme (q4_0 -> Q4_0, q8_0 -> Q8_0, q2_0 -> Q2_0)
// encoded from the latent F32 weight by the shared reference codec, so
// dequantize(exported block) equals the fake-quantized weight the model
// trained with; weights no rule quantizes are F16. `outtype` overrides that for every 2-D weight (f32 /
// f16 / bf16, or q4_0 / q8_0 / q2_0: post-training quantization with the
// reference codec).
//
// Layout transforms: llama q/k rows are permuted from HF's rotate-half to
// llama.cpp's adjacent-pair rope (before quantization: blocks run along the
// input dim, so a row permutation moves whole rows of blocks); Gemma norms
// are stored as 1 + w. Llama 3 rope scaling becomes rope_freqs.weight
// (ModelConfig::RopeFreqFactors()).
//
// Tensors are read, encoded and written one at a time. Shapes are checked
// for every tensor before any byte is written; the file appears under its
// name only when complete.
#ifndef QATK_EXPORT_GGUF_EXPORT_H_
#define QATK_EXPORT_GGUF_EXPORT_H_

#include <string>

#include "absl/status/status.h"

namespace qatk::exporter {

struct GgufExportOptions {
  std::string model_dir;          // checkpoint directory
  std::string out;                // FILE.gguf
  std::string outtype = "auto";   // auto | f32 | f16 | bf16 | q4_0 | q8_0 | q2_0
  std::string name;               // general.name ("" = directory name)
};

absl::Status ExportGguf(const GgufExportOptions& options);

// llama_ftype value of general.file_type for the type most 2-D weights use.
uint32_t LlamaFileType(uint32_t ggml_type_id);

}  // namespace qatk::exporter

#endif  // QATK_EXPORT_GGUF_EXPORT_H_
