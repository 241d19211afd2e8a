// Thin RETURN_IF_ERROR / ASSIGN_OR_RETURN, under the upstream Abseil names.
// Abseil 20220623 as packaged by Debian lacks absl/status/status_macros.h.
#ifndef QATK_FORMATS_UTIL_STATUS_MACROS_H_
#define QATK_FORMATS_UTIL_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define QATK_CONCAT_INNER_(a, b) a##b
#define QATK_CONCAT_(a, b) QATK_CONCAT_INNER_(a, b)

#ifndef RETURN_IF_ERROR
#define RETURN_IF_ERROR(expr)                       \
  do {                                              \
    ::absl::Status qatk_status_ = (expr);           \
    if (!qatk_status_.ok()) return qatk_status_;    \
  } while (0)
#endif

#define QATK_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return std::move(tmp).status();    \
  lhs = std::move(tmp).value()

#ifndef ASSIGN_OR_RETURN
// ASSIGN_OR_RETURN(auto x, MaybeX()); — declares or assigns lhs.
#define ASSIGN_OR_RETURN(lhs, expr) \
  QATK_ASSIGN_OR_RETURN_IMPL_(QATK_CONCAT_(qatk_statusor_, __LINE__), lhs, expr)
#endif

// Aborts with a message when an internal invariant is violated (not for
// user input: that gets a Status).
#define QATK_CHECK(cond, msg)                                               \
  do {                                                                      \
    if (!(cond)) ::qatk::internal::CheckFailed(__FILE__, __LINE__, #cond, msg); \
  } while (0)

namespace qatk::internal {
[[noreturn]] void CheckFailed(const char* file, int line, const char* cond,
                              const char* msg);
}  // namespace qatk::internal

#endif  // QATK_FORMATS_UTIL_STATUS_MACROS_H_
