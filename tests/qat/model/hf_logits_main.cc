// qatk_hf_logits MODEL_DIR IDS [IDS ...]: the LibTorch model's logits for
// an HF folder (config.json + model.safetensors) on each comma-separated
// token sequence, as {"logits": [[[V floats] per position] per sequence]} on
// stdout: the C++ side of tests/qat/model/hf_reference_test.py.
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "qat/model/checkpoint.h"
#include "qat/model/transformer.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL_DIR IDS [IDS ...]  (IDS: 1,2,3)\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  absl::StatusOr<qatk::ModelConfig> config = qatk::LoadModelConfig(dir + "/config.json");
  if (!config.ok()) return std::fprintf(stderr, "%s\n", config.status().ToString().c_str()), 1;
  qatk::qat::CausalLM model(*config);
  const absl::Status s =
      qatk::qat::LoadWeights(*model, dir + "/model.safetensors", config->tie_word_embeddings);
  if (!s.ok()) return std::fprintf(stderr, "%s\n", s.ToString().c_str()), 1;
  torch::NoGradGuard no_grad;
  nlohmann::json out = nlohmann::json::array();
  for (int i = 2; i < argc; ++i) {
    std::vector<int64_t> ids;
    for (absl::string_view t : absl::StrSplit(argv[i], ',')) {
      int64_t id = 0;
      if (!absl::SimpleAtoi(t, &id) || id < 0 || id >= config->vocab_size) {
        return std::fprintf(stderr, "bad token id '%s' in '%s'\n", std::string(t).c_str(), argv[i]), 2;
      }
      ids.push_back(id);
    }
    const torch::Tensor logits =
        model->forward(torch::tensor(ids, torch::kInt64).unsqueeze(0))[0].contiguous();  // [T, V]
    nlohmann::json seq = nlohmann::json::array();
    for (int64_t t = 0; t < logits.size(0); ++t) {
      const float* row = logits[t].data_ptr<float>();
      seq.push_back(std::vector<float>(row, row + logits.size(1)));
    }
    out.push_back(std::move(seq));
  }
  std::cout << nlohmann::json{{"logits", out}}.dump() << "\n";
  return 0;
}
