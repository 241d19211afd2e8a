// qat export --model CKPT|HFDIR --format gguf|mobile|safetensors|hf --out FILE|DIR
#include <iostream>
#include <string>

#include "absl/strings/str_cat.h"
#include "export/gguf_export.h"
#include "export/mobile_export.h"
#include "export/safetensors_export.h"
#include "formats/safetensors/hf_weights.h"
#include "formats/util/cli_flags.h"
#include "formats/util/output_lock.h"
#include "formats/util/status_macros.h"
#include "qat/cli/commands.h"

namespace qatk::cli {
namespace {

// The flags of qat export, each declared once.
struct ExportArgs {
  std::string model, format, out;
  std::string outtype = "auto";  // gguf
  std::string dtype = "f32";     // safetensors, hf
  std::string max_shard_size = "5GB";  // hf
  std::string name;              // gguf general.name

  template <typename Visitor>
  void ForEach(Visitor&& v) {
    v(model, "model", "checkpoint directory or Hugging Face folder", kRequired);
    v(format, "format", "gguf | mobile | safetensors | hf", kRequired);
    v(out, "out", "output file (safetensors: FILE.safetensors or a directory; hf: a directory)",
      kRequired);
    v(outtype, "outtype", "gguf: auto (recipe types, F16 elsewhere) | f32 | f16 | bf16 | q4_0 | q8_0 | q2_0",
      kShowDefault);
    v(dtype, "dtype", "safetensors, hf: f32 | bf16", kShowDefault);
    v(max_shard_size, "max-shard-size", "hf: largest shard (2GB = 2e9 bytes, 3GiB, 500MB)",
      kShowDefault);
    v(name, "name", "gguf general.name (default: the checkpoint directory's name)", kShowDefault);
  }
};

}  // namespace

absl::Status ExportCommand(int argc, char** argv) {
  cxxopts::Options opts("qat export", "Write the deployable file of a checkpoint directory");
  ExportArgs a;
  RETURN_IF_ERROR(ParseArgs(a, opts, argc, argv, "export").status());
  ASSIGN_OR_RETURN(OutputLock lock, OutputLock::Acquire(a.out));
  if (a.format == "gguf") {
    exporter::GgufExportOptions o;
    o.model_dir = a.model;
    o.out = a.out;
    o.outtype = a.outtype;
    o.name = a.name;
    RETURN_IF_ERROR(exporter::ExportGguf(o));
  } else if (a.format == "safetensors") {
    exporter::SafetensorsExportOptions o;
    o.model_dir = a.model;
    o.out = a.out;
    o.dtype = a.dtype;
    RETURN_IF_ERROR(exporter::ExportSafetensors(o));
  } else if (a.format == "hf") {
    exporter::SafetensorsExportOptions o;
    o.model_dir = a.model;
    o.out = a.out;
    o.dtype = a.dtype;
    ASSIGN_OR_RETURN(o.max_shard_bytes, safetensors::ParseShardSize(a.max_shard_size, "--max-shard-size"));
    RETURN_IF_ERROR(exporter::ExportHf(o));
  } else if (a.format == "mobile") {
    exporter::MobileExportOptions o;
    o.model_dir = a.model;
    o.out = a.out;
    RETURN_IF_ERROR(exporter::ExportMobile(o));
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--format ", a.format, ": expected gguf, mobile, safetensors or hf"));
  }
  std::cerr << "wrote " << a.out << "\n";
  return absl::OkStatus();
}

}  // namespace qatk::cli
