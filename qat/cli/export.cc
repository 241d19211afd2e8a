// qat export --model CKPT --format gguf|mobile|safetensors --out FILE
#include <iostream>
#include <string>

#include "absl/strings/str_cat.h"
#include "cxxopts.hpp"
#include "export/gguf_export.h"
#include "export/mobile_export.h"
#include "export/safetensors_export.h"
#include "formats/util/status_macros.h"
#include "qat/cli/commands.h"
#include "formats/util/cli_flags.h"

namespace qatk::cli {

absl::Status ExportCommand(int argc, char** argv) {
  cxxopts::Options opts("qat export", "Write the deployable file of a checkpoint directory");
  opts.add_options()("model", "checkpoint directory", cxxopts::value<std::string>())(
      "format", "gguf | mobile | safetensors", cxxopts::value<std::string>())(
      "out", "output file (safetensors: FILE.safetensors or a directory)",
      cxxopts::value<std::string>())(
      "outtype", "gguf: auto (recipe types, F16 elsewhere) | f32 | f16 | bf16 | q4_0 | q8_0 | q2_0",
      cxxopts::value<std::string>()->default_value("auto"))(
      "dtype", "safetensors: f32 | bf16", cxxopts::value<std::string>()->default_value("f32"))(
      "name", "gguf general.name (default: the checkpoint directory's name)",
      cxxopts::value<std::string>()->default_value(""));
  ASSIGN_OR_RETURN(cxxopts::ParseResult r, ParseFlags(opts, argc, argv));
  for (const char* flag : {"model", "format", "out"}) RETURN_IF_ERROR(Require(r, flag, "export"));
  const std::string format = r["format"].as<std::string>();
  const std::string model = r["model"].as<std::string>();
  const std::string out = r["out"].as<std::string>();
  if (format == "gguf") {
    exporter::GgufExportOptions o;
    o.model_dir = model;
    o.out = out;
    o.outtype = r["outtype"].as<std::string>();
    o.name = r["name"].as<std::string>();
    RETURN_IF_ERROR(exporter::ExportGguf(o));
  } else if (format == "safetensors") {
    exporter::SafetensorsExportOptions o;
    o.model_dir = model;
    o.out = out;
    o.dtype = r["dtype"].as<std::string>();
    RETURN_IF_ERROR(exporter::ExportSafetensors(o));
  } else if (format == "mobile") {
    exporter::MobileExportOptions o;
    o.model_dir = model;
    o.out = out;
    RETURN_IF_ERROR(exporter::ExportMobile(o));
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--format ", format, ": expected gguf, mobile or safetensors"));
  }
  std::cerr << "wrote " << out << "\n";
  return absl::OkStatus();
}

}  // namespace qatk::cli
