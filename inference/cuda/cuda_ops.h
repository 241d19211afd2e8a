// The CUDA backend of the runtime: Ops on one GPU.
//
// Weights: each QMatrix (and norm vector) is copied to device memory once;
// a model's copies are made when its first session starts, live with the
// model (Model::device_weights) and are shared by its sessions. Q8_0, Q4_0
// and Q2_0 blocks are split into codes and fp16 scales on the way (aligned
// vector loads; same values); other types keep the file's layout. The KV cache and
// the activations stay on the device; per token only the embedding rows go
// up and the logits come down.
//
// Kernels, each tested against the CPU runtime (tests/inference/cuda_ops_test.cc):
//   MatMul   Q8_0 / Q4_0 / Q2_0 weights take Q8_0 activations quantized on
//            the device exactly as the CPU does (QuantizeBlockQ8_0Act) and
//            sum codes with dp4a, int32 per 32-element block, fp32 across;
//            mobile int8 / int4 / int2 per-channel weights with a static
//            activation scale take the reference codec's int8 codes and sum
//            the whole row in int32 (the CPU's int32, bit for bit); F32 /
//            F16 / BF16 and weight-only int channels read fp32 activations.
//            n <= 8 tokens: one warp per row and token group (decode);
//            more: 64x64 tiles through shared memory (prefill).
//   RmsNorm, Rope (angles in double, as the CPU; optional frequency
//   factors), GatedAct, Add, AddBias, Softcap,
//   Attention over an f32 / f16 / int8 / q8_0 KV cache (one block per
//   token and query head; softmax in fp32).
// Built only with -DQATK_CUDA=ON; otherwise every entry point reports
// kUnimplemented and tests skip.
#ifndef QATK_INFERENCE_CUDA_CUDA_OPS_H_
#define QATK_INFERENCE_CUDA_CUDA_OPS_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "inference/forward.h"
#include "inference/model.h"

namespace qatk::inference {

// OK when this build has the CUDA backend and a device answers; else
// kUnimplemented (built without QATK_CUDA) or kUnavailable (no device or
// driver), with the reason.
absl::Status CudaAvailable();

// "NVIDIA H200, 132 SMs, 139.8 GiB" (empty when unavailable).
std::string CudaDeviceDescription();

// The backend for one session: `kv` gives the cache's type, shape, n_ctx
// and int8 scales; `max_batch` the most tokens per Eval batch. `model` may
// be null (tests): weights are then uploaded on first use per Ops instead of
// up front per model. kInvalidArgument for a weight type the GPU kernels do
// not read (a model repacked for the CPU: load it with
// LoadOptions::repack = false).
absl::StatusOr<std::unique_ptr<Ops>> MakeCudaOps(const Model* model, const ModelConfig& config,
                                                 const KvCache& kv, int max_batch);

// Output rows per warp of the single-token int MatMul kernels (1, 2 or 4;
// default 1, or QATK_CUDA_ROWS_PER_WARP): a tuning knob for benchmarks and
// tests. Call before recording steps (recorded graphs keep their kernels).
void SetCudaDecodeRowsPerWarp(int rows);
int CudaDecodeRowsPerWarp();

}  // namespace qatk::inference

#endif  // QATK_INFERENCE_CUDA_CUDA_OPS_H_
