// CudaOps: the forward pass's math on one GPU (see cuda_ops.h).
//
// Everything runs on the legacy default stream in issue order, so a host
// copy (ToHost) waits for the queued kernels and nothing else synchronizes.
//
// The kernels live in the cuda/*.cuh files included below, all compiled in
// this one translation unit (their definitions have internal linkage).
#include "inference/cuda/cuda_ops.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "formats/quant/types.h"
#include "inference/cuda/attention.cuh"
#include "inference/cuda/common.cuh"
#include "inference/cuda/elementwise.cuh"
#include "inference/cuda/matmul.cuh"
#include "inference/cuda/matvec.cuh"
#include "inference/cuda/weights.cuh"

namespace qatk::inference {
namespace {

// ---------------------------------------------------------------------------
// The Ops.

class CudaOps final : public Ops {
 public:
  CudaOps(const ModelConfig& c, const KvCache& kv, std::shared_ptr<DeviceWeights> weights)
      : c_(c), weights_(std::move(weights)) {
    kv_.type = kv.type;
    kv_.row_elems = kv.row_elems;
    kv_.row_bytes = kv.row_bytes;
    if (kv.type == KvType::kInt8) {
      kv_.lo = -kv.int8_spec.Qn();
      kv_.hi = kv.int8_spec.Qp();
      kv_.even = kv.int8_spec.rounding == Rounding::kHalfEven;
      k_scale_ = kv.k_scale;
      v_scale_ = kv.v_scale;
    }
    n_ctx_ = kv.n_ctx;
    const char* g = std::getenv("QATK_CUDA_GRAPHS");
    graphs_ = !(g != nullptr && std::string(g) == "0");
  }

  ~CudaOps() override {
    if (exec_ != nullptr) cudaGraphExecDestroy(exec_);
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
    cudaFreeHost(pos_host_);
    for (void* p : allocs_) cudaFree(p);
  }

  // max_cols: the widest activation row a MatMul will see (scratch is sized
  // once so that recorded steps keep valid addresses).
  absl::Status Init(int max_batch, int64_t max_cols) {
    QATK_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    QATK_CUDA_RETURN_IF_ERROR(cudaMallocHost(&pos_host_, sizeof(int)));
    void* p = nullptr;
    QATK_CUDA_RETURN_IF_ERROR(cudaMalloc(&p, sizeof(int)));
    allocs_.push_back(p);
    pos_dev_ = static_cast<int*>(p);
    QATK_CUDA_RETURN_IF_ERROR(cudaMemset(pos_dev_, 0, sizeof(int)));
    for (int il = 0; il < c_.n_layer; ++il) {
      for (auto* cache : {&kcache_, &vcache_}) {
        QATK_CUDA_RETURN_IF_ERROR(cudaMalloc(&p, kv_.row_bytes * n_ctx_));
        QATK_CUDA_RETURN_IF_ERROR(cudaMemset(p, 0, kv_.row_bytes * n_ctx_));
        allocs_.push_back(p);
        cache->push_back(static_cast<uint8_t*>(p));
      }
    }
    // Partial attention results: < 2 * kAttnTargetBlocks (token, head, split) triples.
    QATK_CUDA_RETURN_IF_ERROR(
        cudaMalloc(&p, size_t(2 * kAttnTargetBlocks) * (c_.head_dim + 2) * sizeof(float)));
    allocs_.push_back(p);
    attn_part_ = static_cast<float*>(p);
    if (max_cols > 0) {
      const int64_t padded = (max_cols + 31) / 32 * 32;
      scratch_.Reserve(size_t(max_batch) * padded, size_t(max_batch) * padded / 32);
    }
    return absl::OkStatus();
  }

  float* Alloc(size_t n) override {
    void* p = nullptr;
    QATK_CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(n, 1) * sizeof(float)));
    QATK_CUDA_CHECK(cudaMemset(p, 0, std::max<size_t>(n, 1) * sizeof(float)));
    allocs_.push_back(p);
    return static_cast<float*>(p);
  }
  void Upload(const float* host, size_t n, float* dst) override {
    prepared_ = {};  // may write a prepared input
    // Pageable source: returns once the bytes are staged, in stream order.
    QATK_CUDA_CHECK(cudaMemcpyAsync(dst, host, n * sizeof(float), cudaMemcpyHostToDevice, stream_));
  }
  const float* ToHost(const float* src, size_t n, float* staging) override {
    QATK_CUDA_CHECK(cudaMemcpyAsync(staging, src, n * sizeof(float), cudaMemcpyDeviceToHost, stream_));
    QATK_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return staging;
  }
  bool host_memory() const override { return false; }

  // Single-token steps are recorded once as a CUDA graph and replayed: one
  // launch per token instead of ~30 per layer. The position is the only
  // thing that changes between steps, and the kernels read it from device
  // memory (pos_dev_), written before the replay.
  bool BeginStep(int pos0, int n) override {
    prepared_ = {};
    SetPos(pos0);
    if (!graphs_ || n != 1) return false;
    if (exec_ != nullptr && graph_generation_ != scratch_.generation) {
      QATK_CUDA_CHECK(cudaGraphExecDestroy(exec_));
      exec_ = nullptr;
    }
    if (exec_ != nullptr) {
      QATK_CUDA_CHECK(cudaGraphLaunch(exec_, stream_));
      return true;
    }
    QATK_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    capturing_ = true;
    return false;
  }
  void EndStep() override {
    if (!capturing_) return;
    capturing_ = false;
    cudaGraph_t graph = nullptr;
    QATK_CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
    QATK_CUDA_CHECK(cudaGraphInstantiate(&exec_, graph, 0));
    graph_generation_ = scratch_.generation;
    QATK_CUDA_CHECK(cudaGraphDestroy(graph));
    QATK_CUDA_CHECK(cudaGraphLaunch(exec_, stream_));
  }

  void Add(float* x, const float* y, int64_t n) override {
    prepared_ = {};  // may write a prepared input
    AddKernel<<<Blocks(n, 256), 256, 0, stream_>>>(x, y, n);
    QATK_CUDA_LAUNCHED();
  }
  void Softcap(float* x, int64_t n, float cap) override {
    prepared_ = {};  // may write a prepared input
    SoftcapKernel<<<Blocks(n, 256), 256, 0, stream_>>>(x, n, cap);
    QATK_CUDA_LAUNCHED();
  }

  // Consecutive products of one input (q, k, v; gate, up) share its
  // prepared activations: the key says what the scratch holds.
  void MatMul(const QMatrix& w, const float* x, int n, float* y) override {
    auto d = weights_->Upload(w, "MatMul");
    if (!d.ok()) {
      std::fprintf(stderr, "CUDA backend: %s\n", std::string(d.status().message()).c_str());
      std::abort();
    }
    const DevMatrix& m = **d;
    const PreparedKey key = KeyOf(m, x, n);
    if (key.kind != 0 && !(key == prepared_)) {
      PrepareActivations(m, x, n, scratch_, stream_);
      prepared_ = key;
    }
    LaunchMatMul(m, x, n, y, scratch_, stream_);
    // The output may be the prepared input of a later product: forget it.
    if (y < prepared_.x + size_t(prepared_.n) * prepared_.cols && prepared_.x < y + size_t(n) * m.rows) {
      prepared_ = {};
    }
  }

  void RmsNorm(const float* x, const float* w, int n, int dim, float eps, float* y) override {
    prepared_ = {};  // may write a prepared input
    RmsNormKernel<<<n, 256, 0, stream_>>>(x, DeviceVector(w, dim), dim, eps, y);
    QATK_CUDA_LAUNCHED();
  }

  void AddBias(float* x, const float* b, int n, int dim) override {
    prepared_ = {};  // may write a prepared input
    AddBiasKernel<<<Blocks(int64_t(n) * dim, 256), 256, 0, stream_>>>(x, DeviceVector(b, dim), n,
                                                                       dim);
    QATK_CUDA_LAUNCHED();
  }

  void Rope(float* x, int T, int n_heads, int D, int pos0, float base, bool neox,
            const float* freq_factors) override {
    prepared_ = {};  // may write a prepared input
    SetPos(pos0);
    const float* factors = freq_factors != nullptr ? DeviceVector(freq_factors, D / 2) : nullptr;
    RopeKernel<<<Blocks(int64_t(T) * n_heads * (D / 2), 256), 256, 0, stream_>>>(
        x, T, n_heads, D, pos_dev_, base, neox, factors);
    QATK_CUDA_LAUNCHED();
  }

  void Attention(const float* q, const float* k, const float* v, int T, int pos0, int layer,
                 int window, KvCache&, float* out) override {
    prepared_ = {};  // may write a prepared input
    SetPos(pos0);
    KvLayout kc = kv_, vc = kv_;
    if (kv_.type == KvType::kInt8) {
      kc.scale = k_scale_[layer];
      kc.inv = kc.scale != 0.0f ? 1.0f / kc.scale : 0.0f;
      vc.scale = v_scale_[layer];
      vc.inv = vc.scale != 0.0f ? 1.0f / vc.scale : 0.0f;
    }
    const int64_t blocks = int64_t(T) * ((kv_.row_elems + 31) / 32);
    StoreKvKernel<<<Blocks(blocks * kWarp, 256), 256, 0, stream_>>>(k, T, pos_dev_, kc, kcache_[layer]);
    QATK_CUDA_LAUNCHED();
    StoreKvKernel<<<Blocks(blocks * kWarp, 256), 256, 0, stream_>>>(v, T, pos_dev_, vc, vcache_[layer]);
    QATK_CUDA_LAUNCHED();
    // Split the positions when there are too few (token, head) blocks to
    // fill the GPU (decode): by the most positions this cache can hold, so
    // a recorded step keeps enough splits as the context grows.
    const int th = T * c_.n_head;
    const int max_pos = window > 0 ? std::min(window, n_ctx_) : n_ctx_;
    int n_split = 1;
    if (th < kAttnTargetBlocks) {
      n_split = std::min((kAttnTargetBlocks + th - 1) / th,
                         std::max(1, max_pos / kAttnMinSplitLen));
    }
    AttentionKernel<<<dim3(th, n_split), kAttnWarps * kWarp, 0, stream_>>>(
        q, T, c_.n_head, c_.n_head / c_.n_head_kv, c_.head_dim, pos_dev_, window, c_.attn_scale,
        kc, vc, kcache_[layer], vcache_[layer], attn_part_, out);
    QATK_CUDA_LAUNCHED();
    if (n_split > 1) {
      AttentionCombineKernel<<<th, 128, 0, stream_>>>(attn_part_, n_split, c_.head_dim, out);
      QATK_CUDA_LAUNCHED();
    }
  }

  void GatedAct(float* g, const float* u, int64_t n, bool gelu) override {
    prepared_ = {};  // may write a prepared input
    GatedActKernel<<<Blocks(n, 256), 256, 0, stream_>>>(g, u, n, gelu);
    QATK_CUDA_LAUNCHED();
  }

 private:
  // The device copy of the position the kernels read. Outside a recording
  // only: the pinned source is rewritten after the stream has drained.
  void SetPos(int pos0) {
    if (pos0 == pos_) return;
    QATK_CUDA_CHECK(cudaStreamSynchronize(stream_));
    *pos_host_ = pos0;
    QATK_CUDA_CHECK(cudaMemcpyAsync(pos_dev_, pos_host_, sizeof(int), cudaMemcpyHostToDevice, stream_));
    pos_ = pos0;
  }

  const float* DeviceVector(const float* host, int n) {
    auto d = weights_->Vector(host, n);
    if (!d.ok()) {
      std::fprintf(stderr, "CUDA backend: %s\n", std::string(d.status().message()).c_str());
      std::abort();
    }
    return *d;
  }

  const ModelConfig c_;
  std::shared_ptr<DeviceWeights> weights_;
  KvLayout kv_;
  int n_ctx_ = 0;
  std::vector<float> k_scale_, v_scale_;
  std::vector<uint8_t*> kcache_, vcache_;
  std::vector<void*> allocs_;
  // What the activation scratch holds (kind 0: nothing).
  struct PreparedKey {
    int kind = 0;  // 1: Q8_0 blocks, 2: static int8 codes
    const float* x = nullptr;
    int n = 0;
    int64_t cols = 0;
    float act_scale = 0;
    int lo = 0, hi = 0;
    bool even = false;
    bool operator==(const PreparedKey& o) const {
      return kind == o.kind && x == o.x && n == o.n && cols == o.cols && act_scale == o.act_scale &&
             lo == o.lo && hi == o.hi && even == o.even;
    }
  };
  static PreparedKey KeyOf(const DevMatrix& m, const float* x, int n) {
    PreparedKey k;
    if (IsQ8ActType(m.type)) {
      k.kind = 1;
    } else if (IsIntChannel(m.type) && m.act_scale > 0.0f) {
      k.kind = 2;
      k.act_scale = m.act_scale, k.lo = m.act_lo, k.hi = m.act_hi, k.even = m.act_even;
    } else {
      return k;
    }
    k.x = x, k.n = n, k.cols = m.cols;
    return k;
  }
  PreparedKey prepared_;
  ActScratch scratch_;
  float* attn_part_ = nullptr;
  cudaStream_t stream_ = nullptr;
  int* pos_host_ = nullptr;  // pinned
  int* pos_dev_ = nullptr;
  int pos_ = 0;              // value last written to pos_dev_ (memset 0)
  bool graphs_ = true;
  bool capturing_ = false;
  cudaGraphExec_t exec_ = nullptr;
  int graph_generation_ = 0;
};

absl::Status UploadModel(const Model& m, DeviceWeights& dw) {
  auto up = [&](const QMatrix& w, const std::string& name) -> absl::Status {
    return dw.Upload(w, name.c_str()).status();
  };
  auto vec = [&](const std::vector<float>& v) -> absl::Status {
    if (v.empty()) return absl::OkStatus();
    return dw.Vector(v.data(), v.size()).status();
  };
  for (size_t il = 0; il < m.layers.size(); ++il) {
    const LayerWeights& L = m.layers[il];
    const std::string b = absl::StrCat("layer ", il, " ");
    const QMatrix* mats[] = {&L.wq, &L.wk, &L.wv, &L.wo, &L.gate, &L.up, &L.down};
    const char* names[] = {"wq", "wk", "wv", "wo", "gate", "up", "down"};
    for (int i = 0; i < 7; ++i) {
      if (auto s = up(*mats[i], b + names[i]); !s.ok()) return s;
    }
    const std::vector<float>* vecs[] = {&L.attn_norm, &L.ffn_norm, &L.post_attn_norm,
                                        &L.post_ffw_norm, &L.q_norm, &L.k_norm,
                                        &L.bq, &L.bk, &L.bv};
    for (const auto* v : vecs) {
      if (auto s = vec(*v); !s.ok()) return s;
    }
  }
  if (auto s = up(m.output, "output"); !s.ok()) return s;
  if (auto s = vec(m.rope_freqs); !s.ok()) return s;
  return vec(m.output_norm);
}

}  // namespace

void SetCudaDecodeRowsPerWarp(int rows) { g_rows_per_warp = rows == 2 || rows == 4 ? rows : 1; }
int CudaDecodeRowsPerWarp() { return g_rows_per_warp; }

absl::Status CudaAvailable() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    return absl::UnavailableError(absl::StrCat("no usable CUDA device: ", cudaGetErrorString(e)));
  }
  if (n == 0) return absl::UnavailableError("no CUDA device found");
  return absl::OkStatus();
}

std::string CudaDeviceDescription() {
  if (!CudaAvailable().ok()) return "";
  int dev = 0;
  cudaDeviceProp p{};
  if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&p, dev) != cudaSuccess) return "";
  return absl::StrFormat("%s, %d SMs, %.1f GiB, sm_%d%d", p.name, p.multiProcessorCount,
                         p.totalGlobalMem / 1073741824.0, p.major, p.minor);
}

absl::StatusOr<std::unique_ptr<Ops>> MakeCudaOps(const Model* model, const ModelConfig& config,
                                                 const KvCache& kv, int max_batch) {
  if (auto s = CudaAvailable(); !s.ok()) return s;
  if (config.head_dim > kMaxHeadDimPerLane * kWarp) {
    return absl::InvalidArgumentError(
        absl::StrCat("CUDA backend: head_dim ", config.head_dim, " > ", kMaxHeadDimPerLane * kWarp));
  }
  if (kv.type == KvType::kQ8_0 && kv.row_elems % 32 != 0) {
    return absl::InvalidArgumentError("CUDA backend: q8_0 KV cache needs Hk*D % 32 == 0");
  }
  std::shared_ptr<DeviceWeights> weights;
  if (model != nullptr) {
    weights = std::static_pointer_cast<DeviceWeights>(model->device_weights);
    if (!weights) {
      weights = std::make_shared<DeviceWeights>();
      if (auto s = UploadModel(*model, *weights); !s.ok()) return s;
      model->device_weights = weights;
    }
  } else {
    weights = std::make_shared<DeviceWeights>();
  }
  int64_t max_cols = 0;
  if (model != nullptr) {
    max_cols = std::max<int64_t>({config.n_embd, int64_t(config.n_head) * config.head_dim,
                                  config.n_ff});
  }
  auto ops = std::make_unique<CudaOps>(config, kv, std::move(weights));
  if (auto s = ops->Init(std::max(1, max_batch), max_cols); !s.ok()) return s;
  return std::unique_ptr<Ops>(std::move(ops));
}

}  // namespace qatk::inference

// The benchmark helpers (cuda/bench.h) share this translation unit.
#include "inference/cuda/bench.cuh"
