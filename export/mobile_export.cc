#include "export/mobile_export.h"

#include "absl/strings/str_cat.h"

namespace qatk::exporter {

absl::Status ExportMobile(const MobileExportOptions& options) {
  return absl::UnimplementedError(absl::StrCat(
      "qat export --format mobile is not implemented yet (", options.model_dir, ")"));
}

}  // namespace qatk::exporter
