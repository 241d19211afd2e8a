// qat quantize: the PTQ baseline (round-to-nearest weights per the recipe,
// static activation scales calibrated on a few batches of --calib text).
#include <cstdio>

#include "formats/util/status_macros.h"
#include "qat/cli/commands.h"
#include "formats/util/cli_flags.h"
#include "qat/data/token_stream.h"
#include "qat/model/checkpoint.h"
#include "qat/quant/prepare.h"
#include "qat/train/calibrate.h"

namespace qatk::cli {

struct QuantizeOptions {
  std::string model, recipe, out, calib;
  int64_t calib_batches = 8, batch = 8, seq = 0;
  uint64_t seed = 1234;
};

absl::Status RunQuantize(const QuantizeOptions& o) {
  ASSIGN_OR_RETURN(qat::Checkpoint c, qat::LoadCheckpoint(o.model));
  if (c.recipe) return absl::InvalidArgumentError(absl::StrCat(o.model, " is already quantized (has recipe.json)"));
  ASSIGN_OR_RETURN(Recipe recipe, LoadRecipe(o.recipe));
  RETURN_IF_ERROR(qat::ApplyRecipe(*c.model, recipe, c.config.head_dim));
  if (qat::RecipeNeedsCalibration(c.model, recipe)) {
    if (o.calib.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(o.recipe, " has static activation scales: give --calib TEXT"));
    }
    ASSIGN_OR_RETURN(std::vector<int32_t> tokens, data::LoadTokenStream(o.calib, *c.tokenizer));
    const int64_t seq = o.seq > 0 ? o.seq : std::min<int64_t>(256, c.config.max_position_embeddings);
    if (static_cast<int64_t>(tokens.size()) <= seq + 1) {
      return absl::InvalidArgumentError(absl::StrCat(o.calib, " is too short for --seq ", seq));
    }
    qat::CalibrateModel(c.model, tokens, seq, o.batch, o.calib_batches, o.seed, c.tokenizer->bos_id());
    std::fprintf(stderr, "calibrated on %lld batches of %lldx%lld tokens from %s\n",
                 static_cast<long long>(o.calib_batches), static_cast<long long>(o.batch),
                 static_cast<long long>(seq), o.calib.c_str());
  }
  qat::SetQuantMode(*c.model, qat::QuantMode::kQuant);
  qat::FreezeQuantizers(*c.model);
  qat::CheckpointWrite w;
  w.config = &c.config;
  w.model = c.model.get();
  w.tokenizer_model = &c.tokenizer->serialized();
  w.recipe = &recipe;
  RETURN_IF_ERROR(qat::SaveCheckpoint(o.out, w));
  std::fprintf(stderr, "wrote %s (recipe %s)\n", o.out.c_str(), recipe.name.c_str());
  return absl::OkStatus();
}

absl::Status QuantizeCommand(int argc, char** argv) {
  cxxopts::Options opts("qat quantize", "Post-training quantization (PTQ baseline) of a checkpoint");
  opts.add_options()("model", "input checkpoint", cxxopts::value<std::string>())(
      "recipe", "quantization recipe JSON", cxxopts::value<std::string>())(
      "out", "output checkpoint", cxxopts::value<std::string>())(
      "calib", "text for static activation calibration", cxxopts::value<std::string>())(
      "calib-batches", "calibration batches", cxxopts::value<int64_t>())(
      "batch", "sequences per calibration batch", cxxopts::value<int64_t>())(
      "seq", "tokens per sequence (default min(256, context))", cxxopts::value<int64_t>())(
      "seed", "calibration sampling seed", cxxopts::value<uint64_t>());
  ASSIGN_OR_RETURN(cxxopts::ParseResult r, ParseFlags(opts, argc, argv));
  for (const char* f : {"model", "recipe", "out"}) RETURN_IF_ERROR(Require(r, f, "quantize"));
  QuantizeOptions o;
  o.model = r["model"].as<std::string>();
  o.recipe = r["recipe"].as<std::string>();
  o.out = r["out"].as<std::string>();
  if (r.count("calib")) o.calib = r["calib"].as<std::string>();
  if (r.count("calib-batches")) o.calib_batches = r["calib-batches"].as<int64_t>();
  if (r.count("batch")) o.batch = r["batch"].as<int64_t>();
  if (r.count("seq")) o.seq = r["seq"].as<int64_t>();
  if (r.count("seed")) o.seed = r["seed"].as<uint64_t>();
  return RunQuantize(o);
}

}  // namespace qatk::cli
