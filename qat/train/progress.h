// The progress line that long training loops (qat train, block
// reconstruction) redraw in place on stderr.
#ifndef QATK_QAT_TRAIN_PROGRESS_H_
#define QATK_QAT_TRAIN_PROGRESS_H_

#include <cstdint>
#include <string>

namespace qatk::qat {

// "[#########...............]": done of total, 24 characters between the
// brackets; total <= 0 reads as an empty bar.
std::string ProgressBar(int64_t done, int64_t total);

// "12m05s", or "1h02m" from an hour on; negative reads as 0.
std::string FormatDuration(double seconds);

}  // namespace qatk::qat

#endif  // QATK_QAT_TRAIN_PROGRESS_H_
