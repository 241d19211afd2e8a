#include "qat/train/progress.h"

#include <algorithm>

#include "absl/strings/str_format.h"

namespace qatk::qat {

std::string ProgressBar(int64_t done, int64_t total) {
  constexpr int64_t kWidth = 24;
  const int64_t filled = total > 0 ? std::clamp<int64_t>(kWidth * done / total, 0, kWidth) : 0;
  return "[" + std::string(static_cast<size_t>(filled), '#') + std::string(static_cast<size_t>(kWidth - filled), '.') +
         "]";
}

std::string FormatDuration(double seconds) {
  const int64_t t = static_cast<int64_t>(std::max(0.0, seconds));
  return t >= 3600 ? absl::StrFormat("%dh%02dm", t / 3600, (t / 60) % 60)
                   : absl::StrFormat("%dm%02ds", t / 60, t % 60);
}

}  // namespace qatk::qat
