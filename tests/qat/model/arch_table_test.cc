// The LibTorch model registers exactly the tensors of the architecture table
// (formats/model_arch.h) under their Hugging Face names and shapes: a
// checkpoint the trainer saves holds what the exporters and the runtime read.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "formats/model_arch.h"
#include "qat/model/transformer.h"

namespace qatk::qat {
namespace {

ModelConfig Tiny(const std::string& model_type, bool tied) {
  ModelConfig c;
  c.model_type = model_type;
  c.vocab_size = 96;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 16;  // != E / H: shapes must follow head_dim
  c.max_position_embeddings = 64;
  c.tie_word_embeddings = tied;
  if (c.is_gemma()) c.hidden_act = "gelu_pytorch_tanh";
  return c;
}

// Every architecture of the table, so a new family cannot be left out.
TEST(ArchTableTest, CausalLMStateDictIsTheTable) {
  for (const ArchDef* arch : AllArchs()) {
    const std::string type = arch->model_type;
    for (bool tied : {false, true}) {
      const ModelConfig c = Tiny(type, tied);
      ASSERT_TRUE(c.Validate().ok());
      CausalLM model(c);
      std::map<std::string, std::vector<int64_t>> state;
      for (const auto& p : model->named_parameters()) state[p.key()] = p.value().sizes().vec();
      for (const auto& b : model->named_buffers()) state[b.key()] = b.value().sizes().vec();
      const std::vector<ArchTensor> table = ArchTensors(c);
      EXPECT_EQ(state.size(), table.size()) << type << " tied=" << tied;
      for (const ArchTensor& t : table) {
        auto it = state.find(t.hf_name);
        ASSERT_NE(it, state.end()) << t.hf_name << " (" << type << " tied=" << tied << ")";
        EXPECT_EQ(it->second, t.shape) << t.hf_name;
        // Recipe modules (and a bias's owner) are the model's QLinear / QEmbedding names.
        if (!t.module.empty()) {
          bool found = false;
          for (const auto& m : model->named_modules("", false)) {
            if (m.key() != t.module) continue;
            found = m.value()->as<QLinearImpl>() != nullptr || m.value()->as<QEmbeddingImpl>() != nullptr;
          }
          EXPECT_TRUE(found) << t.module << " is not a quantizable module (" << type << ")";
        }
      }
    }
  }
}

}  // namespace
}  // namespace qatk::qat
