#include "export/safetensors_export.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "export/checkpoint.h"
#include "export/tensor_plan.h"
#include "formats/quant/codecs.h"
#include "formats/util/file_io.h"
#include "formats/util/status_macros.h"

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
    ASSIGN_OR_RETURN(std::string tok, ReadFileToString(ck.tokenizer_path()));
    RETURN_IF_ERROR(WriteFileAtomic(stage + "/tokenizer.model", tok));
    RETURN_IF_ERROR(MakeDirs(options.out));
    for (const char* f : kFiles) {
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
