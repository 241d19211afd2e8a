// Checkpoint directory -> mobile file (formats/mobile): per-channel intN
// codes + scales from the shared codec, learned scales from
// <module>.weight_scale, static activation scales from <module>.input_scale,
// KV-cache scales from model.layers.N.self_attn.{k,v}_scale.
#ifndef QATK_EXPORT_MOBILE_EXPORT_H_
#define QATK_EXPORT_MOBILE_EXPORT_H_

#include <string>

#include "absl/status/status.h"

namespace qatk::exporter {

struct MobileExportOptions {
  std::string model_dir;
  std::string out;
};

// Not implemented yet: returns kUnimplemented.
absl::Status ExportMobile(const MobileExportOptions& options);

}  // namespace qatk::exporter

#endif  // QATK_EXPORT_MOBILE_EXPORT_H_
