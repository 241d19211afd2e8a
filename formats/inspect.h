// `inspect FILE`: prints a model file's metadata and tensor table, shared by
// the qat and qat-run binaries. The format is detected from the first bytes:
//   GGUF         magic "GGUF"
//   mobile       magic "QMOB" (reader in formats/mobile/)
//   safetensors  u64 LE header length, then '{'
#ifndef QATK_FORMATS_INSPECT_H_
#define QATK_FORMATS_INSPECT_H_

#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace qatk {

enum class FileFormat { kUnknown, kGguf, kSafetensors, kMobile };
const char* FileFormatName(FileFormat f);  // "gguf", "safetensors", "mobile", "unknown"

// Detects the format from the file's first bytes (kNotFound if unreadable).
absl::StatusOr<FileFormat> DetectFileFormat(const std::string& path);

// Text: metadata (arrays abbreviated to type, count and the first values)
// and a tensor table (name, type, shape in PyTorch order, bytes).
// JSON (json=true): {"format", "path", "header": {...} (GGUF: version,
// alignment, data_offset), "metadata": {key: value}, "tensors": [{"name",
// "type", "shape", "bytes", "offset"}]}; arrays appear in full, shapes in
// PyTorch order, offsets relative to the data section.
absl::Status InspectFile(const std::string& path, bool json, std::ostream& out);

namespace cli {
// `inspect FILE [--json]` for the subcommand tables in qat/ and inference/.
absl::Status InspectCommand(int argc, char** argv);
}  // namespace cli

}  // namespace qatk

#endif  // QATK_FORMATS_INSPECT_H_
