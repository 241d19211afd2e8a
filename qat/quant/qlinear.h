// Quantization-aware modules: QLinear (every *_proj and lm_head),
// QEmbedding (model.embed_tokens) and KvQuant (self_attn.k_cache / v_cache).
// Unconfigured they are plain float modules; ApplyRecipe (prepare.h) calls
// Configure with the recipe's specs.
//
// State-dict names (docs/ARCHITECTURE.md):
//   <linear>.weight [out, in], <linear>.bias [out] (bias=true only),
//   <linear>.weight_scale [out, 1]   int_channel with mse / learned rule,
//                        [out, in/32] q4_0 with learned block scales
//   <linear>.input_scale [1]          int_tensor input (calibrated / learned)
//   model.embed_tokens.weight [V, E], model.embed_tokens.weight_scale [V, 1]
//                        (or [V, E/32] for learned q4_0)
//   model.layers.N.self_attn.k_scale / v_scale [1]
// KvQuant holds no state of its own: its static scale is registered on the
// PARENT module (self_attn) as "k_scale" / "v_scale" (the module's own name
// with "_cache" replaced by "_scale"), so the checkpoint carries the
// vLLM-style names while recipes match `*.k_cache`.
#ifndef QATK_QAT_QUANT_QLINEAR_H_
#define QATK_QAT_QUANT_QLINEAR_H_

#include <torch/torch.h>

#include <string>

#include "formats/quant/recipe.h"
#include "qat/quant/quantizer.h"

namespace qatk::qat {

// Input statistics for GPTQ (SetInputCapture): the forward adds X^T X of
// the matmul's input X [N, in] (fp64, on the input's device) into `gram`
// [in, in] and N into `rows`.
struct InputGram {
  torch::Tensor gram;  // [in, in] f64, undefined until the first forward
  int64_t rows = 0;
};

class QLinearImpl : public torch::nn::Module {
 public:
  QLinearImpl(int64_t in_features, int64_t out_features, bool bias = false);
  // x [..., in] -> [..., out]: F.linear(Aq(x), Wq(weight), bias).
  torch::Tensor forward(const torch::Tensor& x);
  // Aq(x): the input as the matmul sees it (x itself when unquantized).
  torch::Tensor QuantizeInput(const torch::Tensor& x);
  // F.linear(xq, Wq(weight), bias) for xq = QuantizeInput(x) (forward(x)
  // is ForwardQuantized(QuantizeInput(x))).
  torch::Tensor ForwardQuantized(const torch::Tensor& xq);
  // True when `other` quantizes its input exactly as this one does with no
  // state of its own (unquantized, or the same dynamic spec in the same
  // mode): linears that read one tensor (q/k/v, gate/up) then share one
  // QuantizeInput.
  bool SharesInputQuantizer(QLinearImpl& other);
  // Sets the weight and input quantizers (cache slot ignored).
  void Configure(const LayerQuant& lq);
  void SetMode(QuantMode mode);
  void Freeze();
  // Capture mode: every forward then accumulates its (possibly quantized)
  // input into *acc; nullptr stops. `acc` must outlive the capture.
  void SetInputCapture(InputGram* acc) { capture_ = acc; }
  // The weight as the forward uses it ([out, in]).
  torch::Tensor QuantizedWeight();

  const LayerQuant& quant() const { return quant_; }
  WeightQuantizer& weight_quantizer() { return wq_; }
  ActQuantizer& input_quantizer() { return aq_; }
  int64_t in_features, out_features;
  torch::Tensor weight;  // [out, in]
  torch::Tensor bias;    // [out] or undefined

 private:
  LayerQuant quant_;
  WeightQuantizer wq_;
  ActQuantizer aq_;
  InputGram* capture_ = nullptr;
};
TORCH_MODULE(QLinear);

class QEmbeddingImpl : public torch::nn::Module {
 public:
  QEmbeddingImpl(int64_t num_embeddings, int64_t dim);
  // ids [...] int64 -> [..., E]; only the looked-up rows are fake-quantized
  // (per-row schemes make that identical to quantizing the table).
  torch::Tensor forward(const torch::Tensor& ids);
  void Configure(const LayerQuant& lq);  // weight slot only
  void SetMode(QuantMode mode);
  void Freeze();
  // The whole table as the forward sees it ([V, E]); a tied output head
  // multiplies by this.
  torch::Tensor QuantizedWeight();

  const LayerQuant& quant() const { return quant_; }
  WeightQuantizer& weight_quantizer() { return wq_; }
  int64_t num_embeddings, dim;
  torch::Tensor weight;  // [V, E]

 private:
  LayerQuant quant_;
  WeightQuantizer wq_;
};
TORCH_MODULE(QEmbedding);

class KvQuantImpl : public torch::nn::Module {
 public:
  KvQuantImpl() = default;
  // x [B, H, T, D] (any shape; the last dim is quantized for q8_0_act /
  // int_token) -> same shape.
  torch::Tensor forward(const torch::Tensor& x);
  // `parent` is the attention module; `state_name` "k_scale" or "v_scale".
  void Configure(const QuantSpec& spec, torch::nn::Module& parent, const std::string& state_name);
  void SetMode(QuantMode mode);
  void Freeze();
  const QuantSpec& spec() const { return aq_.spec(); }
  ActQuantizer& quantizer() { return aq_; }

 private:
  ActQuantizer aq_;
};
TORCH_MODULE(KvQuant);

}  // namespace qatk::qat

#endif  // QATK_QAT_QUANT_QLINEAR_H_
