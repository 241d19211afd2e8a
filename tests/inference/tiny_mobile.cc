#include "tests/inference/tiny_mobile.h"

#include <map>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "formats/mobile/mobile_format.h"
#include "formats/quant/spec.h"
#include "formats/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace qatk::inference::testing {
namespace {

constexpr int kE = 128, kH = 2, kHkv = 1, kD = 64, kF = 256, kL = 2;

mobile::Tokenizer MakeTokenizer() {
  mobile::Tokenizer t;
  t.tokens = {"<unk>", "<s>", "</s>"};
  t.types = {2, 3, 3};
  for (char c = 'a'; c <= 'z'; ++c) t.tokens.push_back("\xE2\x96\x81" + std::string(1, c));
  for (char c = 'a'; c <= 'z'; ++c) t.tokens.push_back(std::string(1, c));
  for (size_t i = 0; i < t.tokens.size(); ++i) {
    t.scores.push_back(-static_cast<float>(i));
    if (i >= 3) t.types.push_back(1);
  }
  t.unk_id = 0, t.bos_id = 1, t.eos_id = 2;
  return t;
}

QuantSpec WeightSpec(int bits) {
  QuantSpec s;
  s.scheme = QuantScheme::kIntChannel;
  s.bits = bits;
  s.scale_type = ScaleType::kF16;
  s.scale_rule = ScaleRule::kAbsmax;
  return s;
}

}  // namespace

absl::Status WriteTinyMobileModel(const std::string& path, uint32_t seed) {
  const mobile::Tokenizer tok = MakeTokenizer();
  const int V = static_cast<int>(tok.tokens.size());
  const nlohmann::json config = {
      {"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}, {"vocab_size", V},
      {"hidden_size", kE}, {"intermediate_size", kF}, {"num_hidden_layers", kL},
      {"num_attention_heads", kH}, {"num_key_value_heads", kHkv}, {"head_dim", kD},
      {"max_position_embeddings", 128}, {"rms_norm_eps", 1e-5}, {"rope_theta", 10000.0},
      {"tie_word_embeddings", false}, {"hidden_act", "silu"}, {"bos_token_id", 1},
      {"eos_token_id", 2}};
  std::map<std::string, std::vector<int64_t>> shapes;
  shapes["model.embed_tokens.weight"] = {V, kE};
  shapes["lm_head.weight"] = {V, kE};
  shapes["model.norm.weight"] = {kE};
  for (int l = 0; l < kL; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".");
    shapes[p + "self_attn.q_proj.weight"] = {kH * kD, kE};
    shapes[p + "self_attn.k_proj.weight"] = {kHkv * kD, kE};
    shapes[p + "self_attn.v_proj.weight"] = {kHkv * kD, kE};
    shapes[p + "self_attn.o_proj.weight"] = {kE, kH * kD};
    shapes[p + "mlp.gate_proj.weight"] = {kF, kE};
    shapes[p + "mlp.up_proj.weight"] = {kF, kE};
    shapes[p + "mlp.down_proj.weight"] = {kE, kF};
    shapes[p + "input_layernorm.weight"] = {kE};
    shapes[p + "post_attention_layernorm.weight"] = {kE};
  }
  auto bits_for = [](const std::string& n) {
    return n == "model.embed_tokens.weight" ? 8 : n == "lm_head.weight" ? 2 : 4;
  };
  ASSIGN_OR_RETURN(auto wr, mobile::MobileWriter::Create(path));
  RETURN_IF_ERROR(wr.SetConfigJson(config.dump()));
  RETURN_IF_ERROR(wr.SetTokenizer(tok));
  for (const auto& [name, shape] : shapes) {
    mobile::TensorInfo t{name, mobile::DType::kF32, {shape.begin(), shape.end()}};
    if (shape.size() == 2) {
      const int bits = bits_for(name);
      t.dtype = bits == 8 ? mobile::DType::kInt8Channel
                          : bits == 4 ? mobile::DType::kInt4Channel : mobile::DType::kInt2Channel;
      t.scale_type = mobile::ScaleType::kF16;
      if (bits != 8) {
        t.act_method = mobile::ActMethod::kCalibrated, t.act_scale = 0.03f, t.act_bits = 8;
      }
    }
    RETURN_IF_ERROR(wr.DeclareTensor(t));
  }
  std::vector<std::string> kv_names;
  for (int l = 0; l < kL; ++l) {
    for (const char* kv : {"k_scale", "v_scale"}) {
      kv_names.push_back(absl::StrCat("model.layers.", l, ".self_attn.", kv));
      mobile::TensorInfo t{kv_names.back(), mobile::DType::kF32, {1}};
      t.act_method = mobile::ActMethod::kCalibrated, t.act_scale = 0.05f, t.act_bits = 8;
      RETURN_IF_ERROR(wr.DeclareTensor(t));
    }
  }
  std::mt19937 rng(seed);
  for (const auto& [name, shape] : shapes) {
    int64_t numel = 1;
    for (int64_t d : shape) numel *= d;
    const bool norm = shape.size() == 1;
    std::normal_distribution<float> dist(norm ? 1.0f : 0.0f,
                                         name == "model.embed_tokens.weight" ? 1.0f : 0.1f);
    std::vector<float> v(numel);
    for (float& x : v) x = dist(rng);
    if (shape.size() == 2) {
      ASSIGN_OR_RETURN(auto q, QuantizeMatrix(WeightSpec(bits_for(name)), v.data(), shape[0],
                                              shape[1], {}));
      RETURN_IF_ERROR(wr.WriteCodes(q.codes, q.scales));
    } else {
      RETURN_IF_ERROR(wr.WriteFloats(v));
    }
  }
  for (size_t i = 0; i < kv_names.size(); ++i) {
    const float s = 0.05f;
    RETURN_IF_ERROR(wr.WriteFloats({&s, 1}));
  }
  return wr.Finish();
}

}  // namespace qatk::inference::testing
