// qat-run perplexity: llama.cpp's chunked perplexity of a text file, and
// with --kl-base the KL divergence from a base model's distributions
// (llama-perplexity --kl-divergence).
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "formats/util/file_io.h"
#include "formats/util/output_lock.h"
#include "formats/util/status_macros.h"
#include "inference/cli/commands.h"
#include "inference/cli/run_common.h"
#include "inference/logprob_file.h"
#include "inference/model_loader.h"
#include "inference/perplexity.h"
#include "inference/tokenizer.h"
#include "nlohmann/json.hpp"

namespace qatk::cli {
namespace {

// A log-prob file starts with its magic; anything else is taken as a model.
bool IsLogProbFile(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return false;
  char magic[8] = {};
  const size_t n = std::fread(magic, 1, sizeof(magic), f);
  std::fclose(f);
  return n == sizeof(magic) && std::string(magic, 7) == "QATKLP1";
}

}  // namespace

absl::Status PerplexityCommand(int argc, char** argv) {
  cxxopts::Options opts("perplexity", "perplexity of a text file (llama.cpp's chunking)");
  AddModelFlags(opts, kDefaultPerplexityCtx);
  opts.add_options()("file", "text file", cxxopts::value<std::string>())(
      "kl-base", "base GGUF / mobile model, or log-prob file of --save-logits: adds KL(base || model), "
                 "its 99th percentile, top-1 agreement and ppl - base ppl",
      cxxopts::value<std::string>())(
      "save-logits", "write this model's log-probabilities at the scored positions to FILE (for --kl-base)",
      cxxopts::value<std::string>())("json", "one JSON object on stdout");
  ASSIGN_OR_RETURN(cxxopts::ParseResult r, ParseRunFlags(opts, argc, argv));
  RETURN_IF_ERROR(RequireFlag(r, "model", "perplexity"));
  RETURN_IF_ERROR(RequireFlag(r, "file", "perplexity"));
  const std::string file = r["file"].as<std::string>();
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(file));
  ASSIGN_OR_RETURN(Loaded l, LoadFromFlags(r));
  const inference::Tokenizer tok(l.model->vocab);
  const std::vector<int32_t> ids = tok.Encode(text, /*add_bos=*/true);
  const inference::Vocab& vocab = l.model->vocab;
  ASSIGN_OR_RETURN(const PerplexityPlan plan,
                   PlanPerplexity(static_cast<int64_t>(ids.size()), l.n_ctx, vocab.add_bos, vocab.bos));
  inference::LogProbFileHeader header;
  header.n_vocab = l.model->config.n_vocab;
  header.bos = vocab.bos;
  header.replace_bos = vocab.add_bos;
  header.ctx = plan.ctx;
  header.chunks = plan.chunks;

  std::vector<inference::ScoredChunkFn> hooks;
  OutputLock save_lock;
  std::optional<inference::LogProbFileWriter> writer;
  if (r.count("save-logits")) {
    const std::string out = r["save-logits"].as<std::string>();
    ASSIGN_OR_RETURN(save_lock, OutputLock::Acquire(out));
    ASSIGN_OR_RETURN(inference::LogProbFileWriter w, inference::LogProbFileWriter::Create(out, header, ids));
    writer.emplace(std::move(w));
    hooks.push_back([&](const inference::ScoredChunk& c) { return writer->Add(c); });
  }
  // The base: a log-prob file, or a model run in its own session.
  std::optional<inference::LogProbFileReader> base_file;
  std::unique_ptr<inference::Model> base_model;
  std::unique_ptr<inference::Session> base_session;
  std::optional<inference::KlComparer> kl;
  std::string base_path;
  if (r.count("kl-base")) {
    base_path = r["kl-base"].as<std::string>();
    if (IsLogProbFile(base_path)) {
      ASSIGN_OR_RETURN(inference::LogProbFileReader f, inference::LogProbFileReader::Open(base_path, header, ids));
      base_file.emplace(std::move(f));
      kl.emplace([&](const inference::ScoredChunk& c, std::vector<float>& logp, std::vector<double>& nll) {
        return base_file->Chunk(c, logp, nll);
      });
    } else {
      inference::LoadOptions load;
      load.repack = l.backend == inference::Backend::kCpu;
      ASSIGN_OR_RETURN(base_model, inference::LoadModel(base_path, load));
      if (base_model->config.n_vocab != header.n_vocab) {
        return absl::InvalidArgumentError(absl::StrCat("--kl-base ", base_path, " has ", base_model->config.n_vocab,
                                                       " vocabulary entries, --model ", header.n_vocab));
      }
      const inference::Tokenizer base_tok(base_model->vocab);
      if (base_tok.Encode(text, /*add_bos=*/true) != ids || base_model->vocab.add_bos != vocab.add_bos) {
        return absl::InvalidArgumentError(absl::StrCat("--kl-base ", base_path, " tokenizes ", file,
                                                       " differently from --model: another vocabulary"));
      }
      ASSIGN_OR_RETURN(base_session, inference::Session::Create(*base_model, l.n_ctx, l.kv_type, *l.pool,
                                                                 l.n_ctx, l.backend));
      kl.emplace(inference::SessionLogProbs(*base_session));
    }
    hooks.push_back([&](const inference::ScoredChunk& c) { return kl->Add(c); });
  }
  inference::ScoredChunkFn on_chunk = nullptr;
  if (!hooks.empty()) {
    on_chunk = [&](const inference::ScoredChunk& c) -> absl::Status {
      for (const auto& h : hooks) RETURN_IF_ERROR(h(c));
      return absl::OkStatus();
    };
  }

  ASSIGN_OR_RETURN(auto session, inference::Session::Create(*l.model, l.n_ctx, l.kv_type, *l.pool,
                                                            l.n_ctx, l.backend));
  ASSIGN_OR_RETURN(PerplexityResult p,
                   inference::Perplexity(*session, ids, l.n_ctx, vocab.add_bos, vocab.bos, on_chunk));
  if (writer) RETURN_IF_ERROR(writer->Commit());
  std::cerr << absl::StrFormat("perplexity: %.4f over %d predictions (%d chunks of %d)\n", p.ppl,
                               p.tokens, p.chunks, p.ctx);
  nlohmann::json j{{"ppl", p.ppl}, {"tokens", p.tokens}, {"ctx", p.ctx}, {"chunks", p.chunks},
                   {"chunk_nll", p.chunk_nll}};
  if (kl) {
    ASSIGN_OR_RETURN(const KlResult k, kl->Finish(p.ppl));
    std::cerr << absl::StrFormat(
        "vs %s: mean KL %.6f, 99%% KL %.6f, same top-1 %.4f%%, ppl %.4f - base %.4f = %+.4f\n", base_path,
        k.kl_mean, k.kl_p99, 100 * k.top1, p.ppl, k.ppl_base, k.delta_ppl);
    j["kl_mean"] = k.kl_mean;
    j["kl_p99"] = k.kl_p99;
    j["top1"] = k.top1;
    j["ppl_base"] = k.ppl_base;
    j["delta_ppl"] = k.delta_ppl;
  }
  if (r.count("json")) std::cout << j.dump() << std::endl;
  return absl::OkStatus();
}

}  // namespace qatk::cli
