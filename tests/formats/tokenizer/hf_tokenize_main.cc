// qatk_hf_tokenize: encodes a text file with a tokenizer.json and prints JSON,
// the counterpart of tests/interop/tokenize_ref.mjs (Hugging Face tokenizers).
//
//   qatk_hf_tokenize TOKENIZER_JSON TEXT_FILE [--add-special] [--decode]
//                    [--skip-special] [--bench | --bench-lines]
//
// Prints {"ids": [...]} plus "decoded" (decode of those ids) with --decode;
// with --bench {"bytes", "seconds", "mb_per_s", "tokens", "load_seconds"} for one encode of
// the whole file on this thread (loading excluded); --bench-lines encodes
// each line (without its newline) as its own text instead.
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "formats/tokenizer/hf_tokenizer.h"
#include "formats/util/file_io.h"
#include "nlohmann/json.hpp"

int main(int argc, char** argv) {
  std::vector<std::string> pos;
  bool add_special = false, decode = false, skip_special = false, bench = false, lines = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--add-special") {
      add_special = true;
    } else if (a == "--decode") {
      decode = true;
    } else if (a == "--skip-special") {
      skip_special = true;
    } else if (a == "--bench") {
      bench = true;
    } else if (a == "--bench-lines") {
      bench = lines = true;
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "qatk_hf_tokenize: unknown flag %s\n", a.c_str());
      return 2;
    } else {
      pos.push_back(a);
    }
  }
  if (pos.size() != 2) {
    std::fprintf(stderr,
                 "usage: qatk_hf_tokenize TOKENIZER_JSON TEXT_FILE [--add-special] [--decode] "
                 "[--skip-special] [--bench]\n");
    return 2;
  }
  const auto t_load = std::chrono::steady_clock::now();
  auto tok = qatk::tokenizer::HfTokenizer::FromFile(pos[0]);
  const double load_secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count();
  if (!tok.ok()) {
    std::fprintf(stderr, "qatk_hf_tokenize: %s\n", std::string(tok.status().message()).c_str());
    return 1;
  }
  auto text = qatk::ReadFileToString(pos[1]);
  if (!text.ok()) {
    std::fprintf(stderr, "qatk_hf_tokenize: %s\n", std::string(text.status().message()).c_str());
    return 1;
  }
  absl::StatusOr<std::vector<int32_t>> ids;
  const auto t0 = std::chrono::steady_clock::now();
  if (lines) {
    ids.emplace();
    size_t start = 0;
    while (start <= text->size() && ids.ok()) {
      size_t end = text->find('\n', start);
      if (end == std::string::npos) end = text->size();
      auto line = tok->Encode(absl::string_view(*text).substr(start, end - start), add_special);
      if (line.ok()) {
        ids->insert(ids->end(), line->begin(), line->end());
      } else {
        ids = line.status();
      }
      start = end + 1;
    }
  } else {
    ids = tok->Encode(*text, add_special);
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!ids.ok()) {
    std::fprintf(stderr, "qatk_hf_tokenize: %s\n", std::string(ids.status().message()).c_str());
    return 1;
  }
  nlohmann::json out;
  if (bench) {
    out["bytes"] = text->size();
    out["seconds"] = secs;
    out["mb_per_s"] = static_cast<double>(text->size()) / 1e6 / secs;
    out["tokens"] = ids->size();
    out["load_seconds"] = load_secs;
  } else {
    out["ids"] = *ids;
    if (decode) out["decoded"] = tok->Decode(*ids, skip_special);
  }
  std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  return 0;
}
