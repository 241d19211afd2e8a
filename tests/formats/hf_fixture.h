// Test helper: small Hugging Face model folders built from the hub's real
// config.json files (tests/testdata/hf_configs) with every size shrunk, and
// random weights (values representable in BF16, so the same model can be
// written as BF16 shards and as one F32 file and compared exactly).
#ifndef QATK_TESTS_FORMATS_HF_FIXTURE_H_
#define QATK_TESTS_FORMATS_HF_FIXTURE_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "formats/model_config.h"
#include "formats/safetensors/safetensors.h"
#include "nlohmann/json.hpp"

namespace qatk::testing {

// tests/testdata/hf_configs/<file> with hidden 64, intermediate 128, 2
// layers, 4 heads, 2 kv heads, head_dim 16, vocab `vocab`, bos 1 and eos 2
// (a list where the original has one); every other key as in the file.
absl::StatusOr<nlohmann::ordered_json> TinyHfConfig(const std::string& file, int vocab = 320);

struct HfFixture {
  ModelConfig config;
  std::map<std::string, std::vector<float>> values;  // every architecture tensor
  std::map<std::string, std::vector<int64_t>> shapes;
};

// Random values for every tensor of `config` (BF16-exact).
absl::StatusOr<HfFixture> MakeHfFixture(const nlohmann::ordered_json& config, unsigned seed);

// Writes config.json and the weights into `dir` (created): `shards` > 1
// gives exactly that many shards plus the index, 1 gives model.safetensors.
// `extra` tensors are appended (F32) after the model's.
absl::Status WriteHfFolder(const std::string& dir, const nlohmann::ordered_json& config,
                           const HfFixture& f, int shards, safetensors::DType dtype,
                           const std::map<std::string, std::vector<float>>& extra = {});

}  // namespace qatk::testing

#endif  // QATK_TESTS_FORMATS_HF_FIXTURE_H_
