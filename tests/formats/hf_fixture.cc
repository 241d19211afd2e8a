#include "tests/formats/hf_fixture.h"

#include <cstring>
#include <random>

#include "absl/strings/str_cat.h"
#include "formats/model_arch.h"
#include "formats/quant/fp16.h"
#include "formats/safetensors/hf_weights.h"
#include "formats/util/file_io.h"
#include "formats/util/status_macros.h"

namespace qatk::testing {

absl::StatusOr<nlohmann::ordered_json> TinyHfConfig(const std::string& file, int vocab) {
  const std::string path = std::string(QATK_SOURCE_DIR) + "/tests/testdata/hf_configs/" + file;
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(text, nullptr, false);
  if (j.is_discarded()) return absl::DataLossError(absl::StrCat(path, ": not JSON"));
  j["hidden_size"] = 64;
  j["intermediate_size"] = 128;
  j["num_hidden_layers"] = 2;
  j["num_attention_heads"] = 4;
  j["num_key_value_heads"] = 2;
  j["head_dim"] = 16;
  j["vocab_size"] = vocab;
  j["bos_token_id"] = 1;
  j["eos_token_id"] = j["eos_token_id"].is_array() ? nlohmann::ordered_json::array({2})
                                                   : nlohmann::ordered_json(2);
  if (j.contains("max_window_layers")) j["max_window_layers"] = 2;
  return j;
}

absl::StatusOr<HfFixture> MakeHfFixture(const nlohmann::ordered_json& config, unsigned seed) {
  HfFixture f;
  ASSIGN_OR_RETURN(f.config, ModelConfig::FromJson(config, "config.json"));
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 0.5f);
  RETURN_IF_ERROR(ForEachTensor(f.config, [&](const ArchTensor& t) {
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    std::vector<float> v(n);
    for (float& x : v) x = Bf16ToFp32(Fp32ToBf16(nd(rng)));
    f.values[t.hf_name] = std::move(v);
    f.shapes[t.hf_name] = t.shape;
    return absl::OkStatus();
  }));
  return f;
}

absl::Status WriteHfFolder(const std::string& dir, const nlohmann::ordered_json& config,
                           const HfFixture& f, int shards, safetensors::DType dtype,
                           const std::map<std::string, std::vector<float>>& extra) {
  using safetensors::HfTensorSpec;
  RETURN_IF_ERROR(MakeDirs(dir));
  RETURN_IF_ERROR(WriteFileAtomic(dir + "/config.json", config.dump(2) + "\n"));
  std::vector<HfTensorSpec> specs;
  std::vector<const std::vector<float>*> data;
  RETURN_IF_ERROR(ForEachTensor(f.config, [&](const ArchTensor& t) {
    specs.push_back({t.hf_name, dtype, t.shape});
    data.push_back(&f.values.at(t.hf_name));
    return absl::OkStatus();
  }));
  for (const auto& [name, v] : extra) {
    specs.push_back({name, safetensors::DType::kF32, {static_cast<int64_t>(v.size())}});
    data.push_back(&v);
  }
  uint64_t total = 0;
  for (const HfTensorSpec& s : specs) total += s.nbytes();
  // The smallest limit that gives exactly `shards` shards.
  uint64_t limit = total;
  for (uint64_t m = total / shards; m <= total; m += 64) {
    const std::vector<int> plan = safetensors::PlanHfShards(specs, m);
    if (plan.back() + 1 == shards) {
      limit = m;
      break;
    }
  }
  return safetensors::WriteHfShards(dir, specs, limit,
                                    [&](size_t i, safetensors::ByteSink sink) -> absl::Status {
                                      const std::vector<float>& v = *data[i];
                                      if (specs[i].dtype == safetensors::DType::kF32) {
                                        return sink(v.data(), v.size() * 4);
                                      }
                                      std::vector<uint16_t> b(v.size());
                                      for (size_t k = 0; k < v.size(); ++k) b[k] = Fp32ToBf16(v[k]);
                                      return sink(b.data(), b.size() * 2);
                                    })
      .status();
}

}  // namespace qatk::testing
