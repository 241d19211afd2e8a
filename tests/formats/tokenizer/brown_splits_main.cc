// qatk_brown_splits OUT_DIR: writes the Brown corpus train/valid/test splits
// exactly as `qat data` does (qat/data/corpus.cc, LibTorch-free), for
// tokenizer checks and benchmarks in builds without the qat binary.
#include <cstdio>
#include <string>

#include "qat/data/corpus.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: qatk_brown_splits OUT_DIR\n");
    return 2;
  }
  auto dir = qatk::data::FindBrownDir("");
  if (!dir.ok()) {
    std::fprintf(stderr, "qatk_brown_splits: %s\n", std::string(dir.status().message()).c_str());
    return 1;
  }
  auto docs = qatk::data::LoadBrownDocuments(*dir);
  if (!docs.ok()) {
    std::fprintf(stderr, "qatk_brown_splits: %s\n", std::string(docs.status().message()).c_str());
    return 1;
  }
  auto splits = qatk::data::SplitDocuments(*std::move(docs));
  absl::Status st = splits.ok() ? qatk::data::WriteSplits(*splits, argv[1]) : splits.status();
  if (!st.ok()) {
    std::fprintf(stderr, "qatk_brown_splits: %s\n", std::string(st.message()).c_str());
    return 1;
  }
  return 0;
}
