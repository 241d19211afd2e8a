#include "qat/train/progress.h"

#include <unistd.h>

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

ProgressLine::ProgressLine(int64_t total) : ProgressLine(total, stderr, ::isatty(2) != 0) {}

ProgressLine::ProgressLine(int64_t total, std::FILE* out, bool terminal)
    : total_(total), out_(out), terminal_(terminal) {}

void ProgressLine::Update(int64_t done, const std::string& text) {
  if (terminal_) {
    std::fprintf(out_, "\r%s   ", text.c_str());  // spaces: clear a longer previous line
    open_ = true;
  } else {
    // The kLogPercent marks that `done` has passed.
    const auto mark = [&](int64_t step) { return total_ > 0 ? step * (100 / kLogPercent) / total_ : 0; };
    const bool end = done >= total_ && done > logged_step_;
    if (!end && mark(done) <= mark(logged_step_)) return;
    std::fprintf(out_, "%s\n", text.c_str());
    logged_step_ = done;
  }
  std::fflush(out_);
}

void ProgressLine::Break() {
  if (!open_) return;
  std::fprintf(out_, "\n");
  open_ = false;
}

}  // namespace qatk::qat
