// qatk_tiny_mobile OUT.qmob: writes the tiny mobile model of tiny_mobile.h
// (for shell tests of the C API example).
#include <cstdio>

#include "tests/inference/tiny_mobile.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT.qmob\n", argv[0]);
    return 2;
  }
  const absl::Status st = qatk::inference::testing::WriteTinyMobileModel(argv[1]);
  if (!st.ok()) {
    std::fprintf(stderr, "%s\n", st.ToString().c_str());
    return 1;
  }
  return 0;
}
