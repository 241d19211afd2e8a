// Small helpers for the formats tests: Status checks and temp paths.
#ifndef QATK_TESTS_FORMATS_TEST_UTIL_H_
#define QATK_TESTS_FORMATS_TEST_UTIL_H_

#include <unistd.h>

#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace qatk::testing {

// Fails the test unless `s` has `code` and its message contains every needle.
inline void ExpectError(const absl::Status& s, absl::StatusCode code,
                        std::initializer_list<const char*> needles) {
  EXPECT_EQ(s.code(), code) << s;
  for (const char* n : needles) EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr(n)) << s;
}

// A per-process path under TEST_TMPDIR or /tmp.
inline std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir ? dir : "/tmp") + "/qatk_" + std::to_string(getpid()) + "_" + name;
}

}  // namespace qatk::testing

#endif  // QATK_TESTS_FORMATS_TEST_UTIL_H_
