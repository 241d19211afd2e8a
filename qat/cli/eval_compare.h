// qat eval --compare FILE: fidelity of an exported file against the LibTorch
// fake-quant model of the checkpoint it came from.
//
// Both run over the same chunks of the same token ids (llama.cpp's
// perplexity chunking: BOS replaces the first token of each chunk, the
// second half of every chunk is scored). Reported: both perplexities, the
// relative difference (runtime - torch) / torch, and top-1 next-token
// agreement (argmax of the two logit rows equal) over the scored positions.
//
// Numerics the LibTorch side simulates:
//   mobile file  the checkpoint's recipe as trained (static int8 activations,
//                per-channel weights, static KV scales) — the same codes the
//                runtime's integer kernels use. The runtime KV cache is int8
//                when the file has k/v scales (--kv-type overrides).
//   GGUF file    the recipe's block weights (q4_0 / q8_0 / q2_0) plus
//                llama.cpp's Q8_0 activation path: every linear whose weight
//                is block-quantized and whose recipe names no input quantizer
//                gets a q8_0_act input (a rule appended to the recipe; the
//                weights and quantizer state are then reloaded). A tied head
//                keeps float inputs on the LibTorch side (its matmul is not a
//                QLinear), while llama.cpp quantizes them: a known, small gap.
#ifndef QATK_QAT_CLI_EVAL_COMPARE_H_
#define QATK_QAT_CLI_EVAL_COMPARE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace qatk::cli {

struct EvalCompareOptions {
  std::string model;    // checkpoint directory
  std::string compare;  // exported GGUF or mobile file
  std::string file;     // text
  int64_t ctx = 0;      // 0: DefaultEvalContext
  int64_t chunks = 0;   // 0: all
  std::string kv_type = "auto";  // auto | f32 | f16 | int8 | q8_0
  int threads = 0;      // runtime threads (0: hardware concurrency)
  bool json = false;
};

struct CompareResult {
  std::string format;          // "gguf" | "mobile"
  double ppl_torch = 0, ppl_runtime = 0;
  double rel_diff = 0;         // (ppl_runtime - ppl_torch) / ppl_torch
  double top1_agreement = 0;   // in [0, 1]
  double max_abs_logit_diff = 0;
  int64_t tokens = 0, ctx = 0, chunks = 0;  // scored predictions, chunk size, chunks
  int q8_0_act_emulated = 0;   // linears given a q8_0_act input (GGUF)
  std::string kv_type;         // runtime KV cache used
};

absl::StatusOr<CompareResult> CompareExported(const EvalCompareOptions& o);
// CompareExported, then the report (stderr; --json: one object on stdout).
absl::Status RunEvalCompare(const EvalCompareOptions& o);

}  // namespace qatk::cli

#endif  // QATK_QAT_CLI_EVAL_COMPARE_H_
