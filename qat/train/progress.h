// The progress line of long loops (qat train, block reconstruction) on
// stderr: redrawn in place on a terminal; in a log (stderr not a terminal)
// a plain line every few percent, so logs stay readable.
#ifndef QATK_QAT_TRAIN_PROGRESS_H_
#define QATK_QAT_TRAIN_PROGRESS_H_

#include <cstdint>
#include <cstdio>
#include <string>

namespace qatk::qat {

// "[#########...............]": done of total, 24 characters between the
// brackets; total <= 0 reads as an empty bar.
std::string ProgressBar(int64_t done, int64_t total);

// "12m05s", or "1h02m" from an hour on; negative reads as 0.
std::string FormatDuration(double seconds);

// One loop's progress line. On a terminal every Update redraws the line
// ("\r" + text + "   "); otherwise Update prints `text` as a line of its own when
// `done` reaches another kLogPercent of total, and at done == total.
class ProgressLine {
 public:
  static constexpr int64_t kLogPercent = 5;

  // Writes to stderr; a terminal when isatty(2).
  explicit ProgressLine(int64_t total);
  ProgressLine(int64_t total, std::FILE* out, bool terminal);

  // `text` describes the state after step `done` (1..total).
  void Update(int64_t done, const std::string& text);
  // Ends a line drawn in place (terminal), so that other output starts on a
  // line of its own; nothing otherwise.
  void Break();

 private:
  int64_t total_;
  std::FILE* out_;
  bool terminal_;
  bool open_ = false;         // terminal: a line is drawn and not ended
  int64_t logged_step_ = 0;  // log: the last step printed
};

}  // namespace qatk::qat

#endif  // QATK_QAT_TRAIN_PROGRESS_H_
