// The forward pass shared by every architecture (model.h), over a KV cache.
//
// Backend seam: Session calls the model's math only through `Ops` (matmul,
// norms, rope, attention, gated activation, residual adds) on activation
// buffers the backend allocates. CpuOps runs them on the thread pool in host
// memory; CudaOps (inference/cuda/cuda_ops.h) runs them on a GPU with the
// weights and the KV cache resident in device memory. Only the embedding
// lookup (one row per token, read from the mapped file) and the logits copy
// cross between host and backend.
//
// Shapes (T tokens in a batch, P cached positions): x [T, E], q [T, H*D],
// k/v [T, Hk*D], attention out [T, H*D], ffn hidden [T, F], logits [T, V].
#ifndef QATK_INFERENCE_FORWARD_H_
#define QATK_INFERENCE_FORWARD_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "inference/kernels/matmul.h"
#include "inference/model.h"
#include "inference/thread_pool.h"

namespace qatk::inference {

// KV cache element type. kInt8 needs the model's static k/v scales.
enum class KvType { kF32, kF16, kInt8, kQ8_0 };
absl::StatusOr<KvType> KvTypeFromName(const std::string& name);  // f32|f16|int8|q8_0

// Where a Session computes.
enum class Backend { kCpu, kCuda };
absl::StatusOr<Backend> BackendFromName(const std::string& name);  // cpu|cuda
const char* BackendName(Backend b);

// Per layer: K and V as [n_ctx, Hk*D] rows of the chosen type. The CPU
// backend stores the rows in k / v; other backends keep their own storage
// and use only the shape, type and scales.
struct KvCache {
  KvType type = KvType::kF16;
  int n_ctx = 0;
  int64_t row_elems = 0;   // Hk*D
  size_t row_bytes = 0;
  std::vector<std::vector<uint8_t>> k, v;  // [L][n_ctx * row_bytes]
  std::vector<float> k_scale, v_scale;     // [L] (kInt8)
  QuantSpec int8_spec;                     // kInt8: the model's cache quantizer
};

class Ops {
 public:
  virtual ~Ops() = default;
  // Activation memory. Alloc returns n floats of backend memory that live as
  // long as the Ops. Upload copies n host floats into backend memory; ToHost
  // makes n backend floats readable on the host and returns where: `src`
  // itself when the backend computes in host memory, else `staging` after a
  // copy (which also waits for the queued work).
  virtual float* Alloc(size_t n) = 0;
  virtual void Upload(const float* host, size_t n, float* dst) = 0;
  virtual const float* ToHost(const float* src, size_t n, float* staging) = 0;
  virtual bool host_memory() const = 0;
  // x[n] += y[n].
  virtual void Add(float* x, const float* y, int64_t n) = 0;
  // x[n] = cap * tanh(x / cap).
  virtual void Softcap(float* x, int64_t n, float cap) = 0;
  // One Eval batch of n tokens at positions pos0.. (embeddings already
  // uploaded). A backend that recorded an earlier step of the same shape
  // may replay it and return true: the caller then skips to the logits.
  // Otherwise the caller issues the step's ops and then calls EndStep.
  virtual bool BeginStep(int pos0, int n) { return false; }
  virtual void EndStep() {}
  virtual void MatMul(const QMatrix& w, const float* x, int n, float* y) = 0;
  // y[n, dim] = x / sqrt(mean(x^2) + eps) * w (in place allowed).
  virtual void RmsNorm(const float* x, const float* w, int n, int dim, float eps, float* y) = 0;
  // x [n, dim] += b [dim] per row (b: a model vector, like RmsNorm's w).
  virtual void AddBias(float* x, const float* b, int n, int dim) = 0;
  // Rotates x [T, n_heads, D] in place for positions pos0 .. pos0+T-1:
  // pair i turns by pos * base^(-2i/D) / freq_factors[i] (a model vector of
  // D/2; null = no factors).
  virtual void Rope(float* x, int T, int n_heads, int D, int pos0, float base, bool neox,
                    const float* freq_factors) = 0;
  // Appends k/v [T, Hk*D] at positions pos0.., then out [T, H*D] =
  // softmax(scale q·K^T) V over positions <= own (and > own - window).
  virtual void Attention(const float* q, const float* k, const float* v, int T, int pos0,
                         int layer, int window, KvCache& cache, float* out) = 0;
  // g [n] = act(g) * u  (SiLU or tanh-GELU).
  virtual void GatedAct(float* g, const float* u, int64_t n, bool gelu) = 0;
};

std::unique_ptr<Ops> MakeCpuOps(const ModelConfig& config, int n_ctx, ThreadPool& pool);

// One sequence: KV cache + activation buffers sized once (no allocation
// per token). Eval runs tokens at positions n_past.. and writes logits.
// With Backend::kCuda the model must be loaded with LoadOptions::repack
// false (the GPU kernels read the file's layouts); the pool then only serves
// the host-side embedding lookup.
class Session {
 public:
  static absl::StatusOr<std::unique_ptr<Session>> Create(const Model& model, int n_ctx,
                                                         KvType kv_type, ThreadPool& pool,
                                                         int max_batch = 512,
                                                         Backend backend = Backend::kCpu);

  // tokens[n]; logits() then holds [n, V] if all_logits else [1, V] (last),
  // in host memory. kOutOfRange when the context would overflow.
  absl::Status Eval(const int32_t* tokens, int n, bool all_logits);
  const float* logits() const { return logits_host_; }
  int n_past() const { return n_past_; }
  int n_ctx() const { return cache_.n_ctx; }
  void Reset() { n_past_ = 0; }
  const Model& model() const { return model_; }
  Backend backend() const { return backend_; }

 private:
  Session(const Model& model, ThreadPool& pool) : model_(model), pool_(pool) {}
  void EvalBatch(const int32_t* tokens, int n, bool all_logits);
  void Layer(int il, int n);

  const Model& model_;
  ThreadPool& pool_;
  Backend backend_ = Backend::kCpu;
  std::unique_ptr<Ops> ops_;
  KvCache cache_;
  int max_batch_ = 0;
  int n_past_ = 0;
  // Backend memory (Ops::Alloc), freed with ops_.
  float *x_ = nullptr, *xn_ = nullptr, *q_ = nullptr, *k_ = nullptr, *v_ = nullptr;
  float *att_ = nullptr, *g_ = nullptr, *u_ = nullptr, *tmp_ = nullptr, *logits_ = nullptr;
  // Host memory: embedding rows before upload, logits after download.
  std::vector<float> embd_stage_, logits_stage_;
  const float* logits_host_ = nullptr;
};

}  // namespace qatk::inference

#endif  // QATK_INFERENCE_FORWARD_H_
