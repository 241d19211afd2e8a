#include "export/safetensors_export.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "export/checkpoint.h"
#include "export/tensor_plan.h"
#include "formats/model_arch.h"
#include "formats/quant/codecs.h"
#include "formats/quant/fp16.h"
#include "formats/safetensors/hf_weights.h"
#include "formats/util/file_io.h"
#include "formats/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace qatk::exporter {
namespace {

// w [rows, cols] -> fake-quantized per the module's weight spec.
absl::StatusOr<std::vector<float>> FakeQuantize(const Checkpoint& ck, const GgufTensorSpec& t,
                                                const QuantSpec& spec, std::vector<float> w) {
  const int64_t rows = t.shape[0], cols = t.shape[1];
  std::vector<float> row_scales;
  if (spec.has_stored_scale()) {  // per row, or per block for learned q4_0
    const int64_t per_row = spec.is_block() ? cols / spec.block_size() : 1;
    ASSIGN_OR_RETURN(row_scales, ck.ReadTensor(t.module + ".weight_scale", {rows, per_row}));
  }
  auto qm = QuantizeMatrix(spec, w.data(), rows, cols, row_scales);
  if (!qm.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor ", t.hf_name, " ", ShapeString(t.shape), ": ", qm.status().message()));
  }
  return DequantizeMatrix(*qm);
}

absl::Status AddTensor(const std::string& name, const std::vector<int64_t>& shape,
                       const std::vector<float>& x, bool bf16,
                       safetensors::SafetensorsWriter* w) {
  if (!bf16) return w->AddF32(name, shape, x);
  std::vector<uint8_t> bytes(RowBytes(GgmlType::kBF16, static_cast<int64_t>(x.size())));
  RETURN_IF_ERROR(QuantizeRow(GgmlType::kBF16, x.data(), static_cast<int64_t>(x.size()),
                              bytes.data()));
  return w->Add(name, safetensors::DType::kBF16, shape, bytes.data(), bytes.size());
}

}  // namespace

absl::Status ExportSafetensors(const SafetensorsExportOptions& options) {
  if (options.dtype != "f32" && options.dtype != "bf16") {
    return absl::InvalidArgumentError(
        absl::StrCat("--dtype ", options.dtype, ": expected f32 or bf16"));
  }
  ASSIGN_OR_RETURN(Checkpoint ck, OpenCheckpoint(options.model_dir));
  if (ck.recipe) RETURN_IF_ERROR(ck.recipe->Validate(RecipeModules(ck.config)));
  const bool bf16 = options.dtype == "bf16";
  safetensors::SafetensorsWriter w;
  w.SetMetadata("format", "pt");
  if (ck.recipe) w.SetMetadata("qatkit.recipe", ck.recipe_json);
  for (const GgufTensorSpec& t : GgufTensorList(ck.config)) {
    ASSIGN_OR_RETURN(std::vector<float> x, ck.ReadTensor(t.hf_name, t.shape));
    const QuantSpec spec = t.module.empty() ? QuantSpec() : ck.WeightSpec(t.module);
    if (spec.enabled()) {
      ASSIGN_OR_RETURN(x, FakeQuantize(ck, t, spec, std::move(x)));
    }
    RETURN_IF_ERROR(AddTensor(t.hf_name, t.shape, x, bf16, &w));
  }
  if (absl::EndsWith(options.out, ".safetensors")) return w.Write(options.out);
  // A folder: every file is staged beside it first, so a failed export (a
  // full disk) leaves the folder as it was and no debris next to it.
  const std::string stage = options.out + ".tmp-" + std::to_string(::getpid());
  const char* const kFiles[] = {"model.safetensors", "config.json", "tokenizer.model"};
  auto write_stage = [&]() -> absl::Status {
    RETURN_IF_ERROR(MakeDirs(stage));
    RETURN_IF_ERROR(w.Write(stage + "/model.safetensors"));
    ASSIGN_OR_RETURN(std::string config, ReadFileToString(ck.dir + "/config.json"));
    RETURN_IF_ERROR(WriteFileAtomic(stage + "/config.json", config));
    // A Hugging Face folder may come without tokenizer.model.
    const bool has_tok = PathExists(ck.tokenizer_path());
    if (has_tok) {
      ASSIGN_OR_RETURN(std::string tok, ReadFileToString(ck.tokenizer_path()));
      RETURN_IF_ERROR(WriteFileAtomic(stage + "/tokenizer.model", tok));
    }
    RETURN_IF_ERROR(MakeDirs(options.out));
    for (const char* f : kFiles) {
      if (!has_tok && std::string(f) == "tokenizer.model") continue;
      const std::string from = stage + "/" + f, to = options.out + "/" + f;
      if (std::rename(from.c_str(), to.c_str()) != 0) {
        return absl::UnavailableError(absl::StrCat("cannot rename '", from, "' to '", to, "': ", std::strerror(errno)));
      }
    }
    return absl::OkStatus();
  };
  const absl::Status s = write_stage();
  (void)RemoveAll(stage);
  return s;
}

}  // namespace qatk::exporter

namespace qatk::exporter {

const char* const kHfSideFiles[] = {
    "tokenizer.json",         "tokenizer_config.json", "special_tokens_map.json",
    "chat_template.jinja",    "tokenizer.model",       "generation_config.json",
    "added_tokens.json",      "vocab.json",            "merges.txt",
};
const size_t kNumHfSideFiles = sizeof(kHfSideFiles) / sizeof(kHfSideFiles[0]);

namespace {

constexpr char kQuantizationFile[] = "qatkit_quantization.json";

bool IsHfFolderFile(const std::string& name) {
  if (name == "config.json" || name == kQuantizationFile || name == safetensors::kHfSingleFile ||
      name == safetensors::kHfIndexFile) {
    return true;
  }
  for (size_t i = 0; i < kNumHfSideFiles; ++i) {
    if (name == kHfSideFiles[i]) return true;
  }
  return absl::StartsWith(name, "model-") && absl::EndsWith(name, ".safetensors");
}

// An existing output folder is replaced whole (stale shards of another
// split must not survive), so it may hold only what an HF export writes.
absl::Status CheckReplaceable(const std::string& out) {
  if (!PathExists(out)) return absl::OkStatus();
  if (!IsDirectory(out)) {
    return absl::InvalidArgumentError(absl::StrCat("--out ", out, " exists and is not a folder"));
  }
  DIR* d = ::opendir(out.c_str());
  if (d == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot list '", out, "': ", std::strerror(errno)));
  }
  std::string foreign;
  while (dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    if (!IsHfFolderFile(n) && foreign.empty()) foreign = n;
  }
  ::closedir(d);
  if (!foreign.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--out ", out, " holds '", foreign,
        "', which a Hugging Face export does not write; refusing to replace the folder"));
  }
  return absl::OkStatus();
}

// Writes the folder into "<out>.tmp-<pid>" with `fill`, then swaps it in.
absl::Status StageAndReplace(const std::string& out,
                             absl::FunctionRef<absl::Status(const std::string&)> fill) {
  RETURN_IF_ERROR(CheckReplaceable(out));
  const std::string pid = std::to_string(::getpid());
  const std::string stage = out + ".tmp-" + pid, old = out + ".old-" + pid;
  RETURN_IF_ERROR(RemoveAll(stage));
  auto run = [&]() -> absl::Status {
    RETURN_IF_ERROR(MakeDirs(stage));
    RETURN_IF_ERROR(fill(stage));
    const bool had_old = PathExists(out);
    if (had_old && std::rename(out.c_str(), old.c_str()) != 0) {
      return absl::UnavailableError(absl::StrCat("cannot move '", out, "' aside: ", std::strerror(errno)));
    }
    if (std::rename(stage.c_str(), out.c_str()) != 0) {
      const std::string err = std::strerror(errno);
      if (had_old) std::rename(old.c_str(), out.c_str());
      return absl::UnavailableError(absl::StrCat("cannot rename '", stage, "' to '", out, "': ", err));
    }
    if (had_old) RETURN_IF_ERROR(RemoveAll(old));
    return absl::OkStatus();
  };
  const absl::Status s = run();
  if (!s.ok()) (void)RemoveAll(stage);
  return s;
}

absl::Status CheckDtype(const std::string& dtype) {
  if (dtype != "f32" && dtype != "bf16") {
    return absl::InvalidArgumentError(absl::StrCat("--dtype ", dtype, ": expected f32 or bf16"));
  }
  return absl::OkStatus();
}

// config.json of the written folder: every original key, the dtype updated.
std::string HfConfigJson(const ModelConfig& c, bool bf16) {
  nlohmann::ordered_json j = c.ToJson();
  const char* name = bf16 ? "bfloat16" : "float32";
  // transformers >= 4.56 writes "dtype"; keep whichever the source used.
  if (j.contains("dtype") && !j.contains("torch_dtype")) {
    j["dtype"] = name;
  } else {
    j["torch_dtype"] = name;
  }
  return j.dump(2) + "\n";
}

// F32 values -> the written dtype, through the sink.
absl::Status EmitFloats(const float* x, size_t n, bool bf16, safetensors::ByteSink sink) {
  if (!bf16) return sink(x, n * sizeof(float));
  std::vector<uint16_t> b(n);
  for (size_t i = 0; i < n; ++i) b[i] = Fp32ToBf16(x[i]);
  return sink(b.data(), b.size() * 2);
}

absl::StatusOr<std::string> QuantizationJson(const Checkpoint& ck) {
  nlohmann::ordered_json j;
  j["format"] = "qatkit-quantization";
  j["version"] = 1;
  j["note"] =
      "The weights of this folder are dequantize(quantize(w)) under this recipe; "
      "recipe is qatkit's recipe.json, tensors its trained quantizer state (F32).";
  j["recipe"] = nlohmann::ordered_json::parse(ck.recipe_json, nullptr, false);
  if (j["recipe"].is_discarded()) {
    return absl::DataLossError(absl::StrCat(ck.dir, "/recipe.json: not valid JSON"));
  }
  nlohmann::ordered_json tensors = nlohmann::ordered_json::object();
  for (const safetensors::TensorView& t : ck.weights.tensors()) {
    if (!IsQuantizerState(t.name)) continue;
    ASSIGN_OR_RETURN(std::vector<float> v, ck.weights.ReadFloat(t.name));
    tensors[t.name] = {{"shape", t.shape}, {"values", v}};
  }
  j["tensors"] = std::move(tensors);
  return j.dump(1) + "\n";
}

}  // namespace

absl::Status ExportHf(const SafetensorsExportOptions& options) {
  RETURN_IF_ERROR(CheckDtype(options.dtype));
  if (options.max_shard_bytes == 0) return absl::InvalidArgumentError("--max-shard-size must be > 0");
  ASSIGN_OR_RETURN(Checkpoint ck, OpenCheckpoint(options.model_dir));
  if (ck.recipe) RETURN_IF_ERROR(ck.recipe->Validate(RecipeModules(ck.config)));
  const bool bf16 = options.dtype == "bf16";
  const std::vector<GgufTensorSpec> list = GgufTensorList(ck.config);
  std::vector<safetensors::HfTensorSpec> specs;
  for (const GgufTensorSpec& t : list) {
    RETURN_IF_ERROR(ck.CheckShape(t.hf_name, t.shape));
    specs.push_back({t.hf_name, bf16 ? safetensors::DType::kBF16 : safetensors::DType::kF32, t.shape});
  }
  std::string quantization;
  if (ck.recipe) {
    ASSIGN_OR_RETURN(quantization, QuantizationJson(ck));
  }
  return StageAndReplace(options.out, [&](const std::string& stage) -> absl::Status {
    RETURN_IF_ERROR(safetensors::WriteHfShards(
                        stage, specs, options.max_shard_bytes,
                        [&](size_t i, safetensors::ByteSink sink) -> absl::Status {
                          const GgufTensorSpec& t = list[i];
                          ASSIGN_OR_RETURN(std::vector<float> x, ck.ReadTensor(t.hf_name, t.shape));
                          const QuantSpec spec = t.module.empty() ? QuantSpec() : ck.WeightSpec(t.module);
                          if (spec.enabled()) {
                            ASSIGN_OR_RETURN(x, FakeQuantize(ck, t, spec, std::move(x)));
                          }
                          return EmitFloats(x.data(), x.size(), bf16, sink);
                        })
                        .status());
    RETURN_IF_ERROR(WriteFileAtomic(stage + "/config.json", HfConfigJson(ck.config, bf16)));
    for (size_t i = 0; i < kNumHfSideFiles; ++i) {
      const std::string from = ck.dir + "/" + kHfSideFiles[i];
      if (!PathExists(from)) continue;
      ASSIGN_OR_RETURN(std::string text, ReadFileToString(from));
      RETURN_IF_ERROR(WriteFileAtomic(stage + "/" + kHfSideFiles[i], text));
    }
    if (!quantization.empty()) {
      RETURN_IF_ERROR(WriteFileAtomic(stage + "/" + kQuantizationFile, quantization));
    }
    return absl::OkStatus();
  });
}

absl::Status WriteRandomHf(const RandomHfOptions& o) {
  RETURN_IF_ERROR(CheckDtype(o.dtype));
  if (o.max_shard_bytes == 0) return absl::InvalidArgumentError("--max-shard-size must be > 0");
  ASSIGN_OR_RETURN(ModelConfig config, LoadModelConfig(o.config_path));
  double std_dev = 0.02;
  if (config.source.is_object() && config.source.contains("initializer_range") &&
      config.source["initializer_range"].is_number()) {
    std_dev = config.source["initializer_range"].get<double>();
  }
  const bool bf16 = o.dtype == "bf16";
  const std::vector<ArchTensor> tensors = ArchTensors(config);
  std::vector<safetensors::HfTensorSpec> specs;
  for (const ArchTensor& t : tensors) {
    specs.push_back({t.hf_name, bf16 ? safetensors::DType::kBF16 : safetensors::DType::kF32, t.shape});
  }
  std::string tokenizer_name;
  if (!o.tokenizer.empty()) {
    tokenizer_name = absl::EndsWith(o.tokenizer, ".json") ? "tokenizer.json" : "tokenizer.model";
  }
  return StageAndReplace(o.out, [&](const std::string& stage) -> absl::Status {
    RETURN_IF_ERROR(safetensors::WriteHfShards(
                        stage, specs, o.max_shard_bytes,
                        [&](size_t i, safetensors::ByteSink sink) -> absl::Status {
                          const ArchTensor& t = tensors[i];
                          const int64_t cols = t.shape.size() == 2 ? t.shape[1] : t.shape[0];
                          const int64_t rows = t.shape.size() == 2 ? t.shape[0] : 1;
                          std::vector<float> row(cols);
                          // splitmix64 per tensor: uniform in [-a, a] has std a/sqrt(3).
                          uint64_t state = o.seed * 0x9E3779B97F4A7C15ull + i + 1;
                          const double a = std_dev * std::sqrt(3.0);
                          for (int64_t r = 0; r < rows; ++r) {
                            if (t.role() == TensorRole::kNorm) {
                              std::fill(row.begin(), row.end(), ArchOf(config).norm_plus_one ? 0.0f : 1.0f);
                            } else if (t.role() == TensorRole::kBias) {
                              std::fill(row.begin(), row.end(), 0.0f);
                            } else {
                              for (float& v : row) {
                                uint64_t z = (state += 0x9E3779B97F4A7C15ull);
                                z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
                                z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
                                z ^= z >> 31;
                                const double u = static_cast<double>(z >> 11) * 0x1.0p-53;  // [0, 1)
                                v = static_cast<float>((2.0 * u - 1.0) * a);
                              }
                            }
                            RETURN_IF_ERROR(EmitFloats(row.data(), row.size(), bf16, sink));
                          }
                          return absl::OkStatus();
                        })
                        .status());
    RETURN_IF_ERROR(WriteFileAtomic(stage + "/config.json", HfConfigJson(config, bf16)));
    if (!o.tokenizer.empty()) {
      ASSIGN_OR_RETURN(std::string text, ReadFileToString(o.tokenizer));
      RETURN_IF_ERROR(WriteFileAtomic(stage + "/" + tokenizer_name, text));
    }
    return absl::OkStatus();
  });
}

}  // namespace qatk::exporter
