#include "qat/train/trainer.h"

#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "formats/util/file_io.h"
#include "formats/util/status_macros.h"
#include "qat/data/prepared.h"
#include "qat/data/text_encoder.h"
#include "qat/data/token_stream.h"
#include "qat/model/checkpoint.h"
#include "qat/quant/qlinear.h"
#include "qat/quant/prepare.h"
#include "qat/train/calibrate.h"
#include "qat/train/evaluate.h"
#include "qat/train/loss.h"
#include "qat/train/progress.h"

namespace qatk::qat {
namespace {

std::atomic<bool> g_stop{false};
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

bool Exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

// Everything a run needs, assembled before the first step.
struct Run {
  TrainOptions o;
  ModelConfig config;
  CausalLM model{nullptr};
  std::optional<Recipe> recipe;
  bool calibrate = false;  // a freshly applied recipe with static activation scales
  std::optional<data::Tokenizer> tokenizer;
  TokenizerFiles tokenizer_files;  // carried from --init / --resume
  std::optional<Checkpoint> teacher;
  std::vector<int32_t> train_tokens, valid_tokens;
  // Prepared datasets: the splits (masks, documents); text data: the train
  // stream as a split with every mask 1.
  bool prepared = false;
  data::PreparedSplit train_split, valid_split;
  data::Packing packing = data::Packing::kStream;
  std::unique_ptr<torch::optim::AdamW> optimizer;
  std::vector<double> lr_factor;  // per optimizer group: its LR / the schedule's LR
  int64_t step = 0;          // steps done
  uint64_t sampler_pos = 0;  // windows consumed
  std::string metrics;       // metrics.jsonl so far
  torch::Device device{torch::kCPU};
  std::vector<torch::Tensor> ema_params;  // the trainable parameters (--ema) ...
  std::vector<torch::Tensor> ema;         // ... and their moving averages
  std::optional<ProgressLine> progress;   // with o.progress
};

// Exchanges the trainable parameters with their averages, so that what is
// evaluated and saved is the averaged model; a second call swaps back.
void SwapEma(Run& r) {
  torch::NoGradGuard ng;
  for (size_t i = 0; i < r.ema.size(); ++i) {
    torch::Tensor raw = r.ema_params[i].detach().clone();
    r.ema_params[i].detach().copy_(r.ema[i]);
    r.ema[i].copy_(raw);
  }
}

class EmaSwapped {
 public:
  explicit EmaSwapped(Run& r) : r_(r) { SwapEma(r_); }
  ~EmaSwapped() { SwapEma(r_); }
  EmaSwapped(const EmaSwapped&) = delete;
  EmaSwapped& operator=(const EmaSwapped&) = delete;

 private:
  Run& r_;
};

void UpdateEma(Run& r) {
  torch::NoGradGuard ng;
  for (size_t i = 0; i < r.ema.size(); ++i) r.ema[i].mul_(r.o.ema).add_(r.ema_params[i].detach(), 1.0 - r.o.ema);
}

// Starts the averages at the current weights; on --resume the checkpoint's
// weights are the averages and train_weights.pt holds the raw ones.
absl::Status InitEma(Run& r, bool resumed) {
  if (r.o.ema <= 0) return absl::OkStatus();
  for (const auto& p : r.model->parameters()) {
    if (p.requires_grad()) {
      r.ema_params.push_back(p);
      r.ema.push_back(p.detach().clone());
    }
  }
  if (!resumed) return absl::OkStatus();
  const std::string path = r.o.out + "/train_weights.pt";
  std::vector<torch::Tensor> raw;
  try {
    torch::load(raw, path, r.device);
  } catch (const std::exception& e) {
    return absl::DataLossError(absl::StrCat(path, ": cannot load the raw weights of the --ema run: ", e.what()));
  }
  if (raw.size() != r.ema_params.size()) {
    return absl::DataLossError(absl::StrCat(path, " holds ", raw.size(), " tensors; the model has ",
                                            r.ema_params.size(), " trainable parameters"));
  }
  torch::NoGradGuard ng;
  for (size_t i = 0; i < raw.size(); ++i) {
    if (!raw[i].sizes().equals(r.ema_params[i].sizes())) {
      return absl::DataLossError(absl::StrCat(path, ": tensor ", i, " has the wrong shape"));
    }
    r.ema_params[i].detach().copy_(raw[i]);
  }
  return absl::OkStatus();
}

// The model's BOS: its SentencePiece tokenizer's, else config.json's (a
// Hugging Face folder with only tokenizer.json).
int32_t BosId(const Run& r) {
  return r.tokenizer ? r.tokenizer->bos_id() : static_cast<int32_t>(r.config.bos_token_id);
}

absl::Status LoadTokenizer(Run& r) {
  if (r.tokenizer) return absl::OkStatus();
  // A model that carries only tokenizer.json trains on data prepared with it
  // (qat data --jsonl/--text --model); the fingerprint check below ties the
  // two together.
  const bool hf_tokenizer = r.tokenizer_files.count("tokenizer.json") > 0;
  if (r.prepared && r.o.tokenizer.empty() && hf_tokenizer) return absl::OkStatus();
  if (!r.prepared && hf_tokenizer && r.o.tokenizer.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        r.o.init.empty() ? r.o.out : r.o.init,
        " has tokenizer.json and no tokenizer.model: prepare the data with its tokenizer "
        "(qat data --text FILE --model MODEL, or --jsonl) and train on that folder"));
  }
  std::string path = r.o.tokenizer.empty() ? r.o.data + "/tokenizer.model" : r.o.tokenizer;
  if (r.prepared && r.o.tokenizer.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        r.o.data, " is a prepared dataset: train from --init CKPT, or give --tokenizer (the one that made it)"));
  }
  if (!Exists(path) && r.o.tokenizer.empty()) {
    std::fprintf(stderr, "training a %lld-piece tokenizer on %s/train.txt -> %s\n",
                 static_cast<long long>(r.config.vocab_size), r.o.data.c_str(), path.c_str());
    ASSIGN_OR_RETURN(data::Tokenizer t, data::Tokenizer::Train(r.o.data + "/train.txt",
                                                               static_cast<int>(r.config.vocab_size), 2));
    RETURN_IF_ERROR(t.Save(path));
  }
  ASSIGN_OR_RETURN(data::Tokenizer t, data::Tokenizer::Load(path));
  if (t.vocab_size() > r.config.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat(path, " has ", t.vocab_size(),
                                                   " pieces, more than the model's vocab_size ",
                                                   r.config.vocab_size));
  }
  r.tokenizer = std::move(t);
  return absl::OkStatus();
}

absl::Status BuildModel(Run& r) {
  const TrainOptions& o = r.o;
  if (o.resume && Exists(o.out + "/trainer_state.json")) {
    ASSIGN_OR_RETURN(Checkpoint c, LoadCheckpoint(o.out));
    r.config = c.config;
    r.model = c.model;
    r.recipe = c.recipe;
    r.tokenizer = std::move(c.tokenizer);
    r.tokenizer_files = std::move(c.tokenizer_files);
    r.step = c.trainer_state.value("step", int64_t{0});
    r.sampler_pos = c.trainer_state.value("sampler_position", uint64_t{0});
    if (c.trainer_state.value("seed", uint64_t{0}) != o.seed) {
      return absl::InvalidArgumentError("--resume with a different --seed than the saved run");
    }
    if (c.trainer_state.value("freeze_codes", false) != o.freeze_codes) {
      return absl::InvalidArgumentError("--resume: give --freeze-codes exactly when the saved run had it");
    }
    if (c.trainer_state.value("ema", 0.0) != o.ema) {
      return absl::InvalidArgumentError(absl::StrCat("--resume with --ema ", o.ema, " but the saved run used ",
                                                     c.trainer_state.value("ema", 0.0)));
    }
    if (c.trainer_state.value("pack", std::string("stream")) != o.pack) {
      return absl::InvalidArgumentError(absl::StrCat("--resume with --pack ", o.pack, " but the saved run used ",
                                                     c.trainer_state.value("pack", std::string("stream"))));
    }
    auto m = ReadFileToString(o.out + "/metrics.jsonl");
    if (m.ok()) r.metrics = *m;
    return absl::OkStatus();
  }
  if (o.resume) std::fprintf(stderr, "--resume: no checkpoint in %s yet, starting fresh\n", o.out.c_str());
  if (!o.init.empty()) {
    ASSIGN_OR_RETURN(Checkpoint c, LoadCheckpoint(o.init));
    r.config = c.config;
    r.model = c.model;
    r.recipe = c.recipe;
    r.tokenizer = std::move(c.tokenizer);
    r.tokenizer_files = std::move(c.tokenizer_files);
  } else {
    ASSIGN_OR_RETURN(r.config, LoadModelConfig(o.config));
    r.model = CausalLM(r.config);
    r.model->InitWeights(o.seed);
  }
  if (!o.recipe.empty()) {
    if (r.recipe) return absl::InvalidArgumentError(absl::StrCat(o.init, " already has a recipe.json; drop --recipe"));
    ASSIGN_OR_RETURN(Recipe rec, LoadRecipe(o.recipe));
    RETURN_IF_ERROR(ApplyRecipe(*r.model, rec, r.config.head_dim));
    r.calibrate = RecipeNeedsCalibration(r.model, rec);
    r.recipe = std::move(rec);
  }
  return absl::OkStatus();
}

// Every weight quantizer of the model (QLinear and QEmbedding) with its weight.
std::vector<std::pair<WeightQuantizer*, torch::Tensor>> WeightQuantizers(CausalLM& model) {
  std::vector<std::pair<WeightQuantizer*, torch::Tensor>> out;
  for (const auto& item : model->named_modules("", /*include_self=*/false)) {
    if (auto* l = item.value()->as<QLinearImpl>()) out.emplace_back(&l->weight_quantizer(), l->weight);
    if (auto* e = item.value()->as<QEmbeddingImpl>()) out.emplace_back(&e->weight_quantizer(), e->weight);
  }
  return out;
}

// --freeze-codes (trainer.h). Runs on the model already on its device.
absl::Status FreezeCodes(Run& r) {
  if (!r.recipe) return absl::InvalidArgumentError("--freeze-codes needs a recipe with q4_0 weights (none given)");
  int converted = 0;
  absl::StatusOr<Recipe> with_learned = WithLearnedQ4_0Scales(*r.recipe, &converted);
  if (!with_learned.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--freeze-codes needs q4_0 weights: ", with_learned.status().message()));
  }
  Recipe learned = *std::move(with_learned);
  torch::NoGradGuard ng;
  if (converted > 0) {  // rebuild with learned scales, initialised from the current weights
    CausalLM fresh(r.config);
    auto old_params = r.model->named_parameters();
    auto old_buffers = r.model->named_buffers();
    auto copy_from_old = [&](torch::nn::Module& m) {
      for (auto& p : m.named_parameters()) {
        if (const torch::Tensor* t = old_params.find(p.key())) p.value().copy_(*t);
      }
      for (auto& b : m.named_buffers()) {
        if (const torch::Tensor* t = old_buffers.find(b.key())) b.value().copy_(*t);
      }
    };
    copy_from_old(*fresh);
    RETURN_IF_ERROR(ApplyRecipe(*fresh, learned, r.config.head_dim));
    copy_from_old(*fresh);  // the recipe's own state (activation scales), now registered
    fresh->to(r.device);
    r.model = fresh;
    r.recipe = std::move(learned);
  }
  int frozen = 0;
  for (auto& [wq, w] : WeightQuantizers(r.model)) {
    if (wq->spec().scheme != QuantScheme::kQ4_0 || !wq->scale().defined()) continue;
    wq->FreezeCodes(w);
    w.set_requires_grad(false);
    ++frozen;
  }
  std::fprintf(stderr, "froze the codes of %d q4_0 weights; their block scales train\n", frozen);
  return absl::OkStatus();
}

// Parameter groups: decayed matrices, undecayed vectors, quantizer scales
// and the output head's weight (the last two only when present). Each
// group's LR is the schedule's LR times its factor, so scale_lr and head_lr
// follow the same warmup and cosine.
void BuildOptimizer(Run& r) {
  std::vector<torch::Tensor> decay, no_decay, scales, head;
  for (const auto& p : r.model->named_parameters()) {
    if (!p.value().requires_grad()) continue;
    const std::string& n = p.key();
    if (n.size() > 6 && n.compare(n.size() - 6, 6, "_scale") == 0) {
      scales.push_back(p.value());
    } else if (n == "lm_head.weight") {
      head.push_back(p.value());
    } else {
      (p.value().dim() >= 2 ? decay : no_decay).push_back(p.value());
    }
  }
  std::vector<torch::optim::OptimizerParamGroup> groups;
  r.lr_factor.clear();
  auto add = [&](std::vector<torch::Tensor>& params, double wd, double lr) {
    if (params.empty() && !groups.empty()) return;
    groups.emplace_back(params, std::make_unique<torch::optim::AdamWOptions>(
                                    torch::optim::AdamWOptions(lr).betas({0.9, 0.95}).eps(1e-8).weight_decay(wd)));
    r.lr_factor.push_back(lr / r.o.lr);
  };
  add(decay, r.o.weight_decay, r.o.lr);
  add(no_decay, 0.0, r.o.lr);
  add(scales, 0.0, r.o.scale_lr > 0 ? r.o.scale_lr : r.o.lr);
  add(head, r.o.weight_decay, r.o.head_lr > 0 ? r.o.head_lr : r.o.lr);
  r.optimizer = std::make_unique<torch::optim::AdamW>(groups, torch::optim::AdamWOptions(r.o.lr));
}

double LrAt(const TrainOptions& o, int64_t step) {
  const int64_t warmup = o.warmup >= 0 ? o.warmup : o.steps / 20;
  if (step < warmup) return o.lr * (step + 1) / static_cast<double>(warmup);
  const double progress =
      o.steps > warmup ? static_cast<double>(step - warmup) / static_cast<double>(o.steps - warmup) : 1.0;
  const double cosine = 0.5 * (1.0 + std::cos(M_PI * std::min(1.0, progress)));
  return o.lr * (o.min_lr_ratio + (1.0 - o.min_lr_ratio) * cosine);
}

void SetLr(Run& r, double lr) {
  auto& groups = r.optimizer->param_groups();
  for (size_t g = 0; g < groups.size(); ++g) {
    static_cast<torch::optim::AdamWOptions&>(groups[g].options()).lr(lr * r.lr_factor[g]);
  }
}

absl::Status Save(Run& r) {
  json state = {{"step", r.step},
                {"sampler_position", r.sampler_pos},
                {"seed", r.o.seed},
                {"batch", r.o.batch},
                {"seq", r.o.seq},
                {"grad_accum", r.o.grad_accum},
                {"steps", r.o.steps}};
  if (r.o.ema > 0) state["ema"] = r.o.ema;
  if (r.o.freeze_codes) state["freeze_codes"] = true;
  if (r.o.pack != "stream") state["pack"] = r.o.pack;
  std::optional<EmaSwapped> swapped;
  CheckpointWrite w;
  if (!r.ema.empty()) {
    swapped.emplace(r);  // the model holds the averages, r.ema the raw weights
    std::vector<torch::Tensor> raw;
    for (const auto& t : r.ema) raw.push_back(t.cpu());
    std::ostringstream os;
    try {
      torch::save(raw, os);
    } catch (const std::exception& e) {
      return absl::UnavailableError(absl::StrCat("cannot serialize the raw weights: ", e.what()));
    }
    w.extra_files["train_weights.pt"] = os.str();
  }
  {
    torch::NoGradGuard ng;  // the saved weight gives the frozen codes again with the saved scales
    for (auto& [wq, wt] : WeightQuantizers(r.model)) {
      if (wq->codes_frozen()) wt.copy_(wq->FrozenDequantized());
    }
  }
  w.config = &r.config;
  w.model = r.model.get();
  w.tokenizer_model = r.tokenizer ? &r.tokenizer->serialized() : nullptr;
  w.tokenizer_files = &r.tokenizer_files;
  w.recipe = r.recipe ? &*r.recipe : nullptr;
  w.trainer_state = state;
  w.optimizer = r.optimizer.get();
  w.extra_files["metrics.jsonl"] = r.metrics;
  return SaveCheckpoint(r.o.out, w);
}

void LogMetrics(Run& r, const json& j) {
  const std::string line = j.dump() + "\n";
  r.metrics += line;
  if (std::FILE* f = std::fopen((r.o.out + "/metrics.jsonl").c_str(), "a")) {
    std::fputs(line.c_str(), f);
    std::fclose(f);
  }
}

// One optimizer step over grad_accum micro-batches; returns the mean loss.
absl::StatusOr<double> TrainStep(Run& r, data::WindowSampler& sampler, double* grad_norm) {
  const TrainOptions& o = r.o;
  const double alpha = r.teacher ? (o.kd_alpha >= 0 ? o.kd_alpha : 1.0) : 0.0;
  r.optimizer->zero_grad();
  double total = 0;
  std::vector<int64_t> in, tg;
  for (int64_t m = 0; m < o.grad_accum; ++m) {
    sampler.Next(o.batch, &in, &tg);
    torch::Tensor x = torch::from_blob(in.data(), {o.batch, o.seq}, torch::kInt64).to(r.device);
    torch::Tensor y = torch::from_blob(tg.data(), {o.batch * o.seq}, torch::kInt64).to(r.device);
    torch::Tensor logits = r.model->forward(x).view({o.batch * o.seq, -1});  // [B*T, V]
    torch::Tensor t;
    if (alpha > 0) {
      torch::NoGradGuard ng;
      t = r.teacher->model->forward(x).view({o.batch * o.seq, -1});
    }
    absl::StatusOr<torch::Tensor> micro = TrainingLoss(logits, y, t, alpha, o.kd_temp);
    if (!micro.ok()) {
      // BuildWindows leaves out windows without a trained target, so this
      // means the data changed under the run or a bug; never a NaN step.
      return absl::InternalError(absl::StrCat("step ", r.step + 1, ": ", micro.status().message()));
    }
    torch::Tensor loss = *micro / static_cast<double>(o.grad_accum);
    loss.backward();
    total += loss.item<double>();
  }
  *grad_norm = torch::nn::utils::clip_grad_norm_(r.model->parameters(), o.clip);
  r.optimizer->step();
  return total;
}

void Calibrate(Run& r) {
  CalibrateModel(r.model, r.train_tokens, r.o.seq, r.o.batch, r.o.calib_batches, r.o.seed ^ 0xca11b,
                 BosId(r));
  std::fprintf(stderr, "calibrated static activation scales on %lld batches\n",
               static_cast<long long>(r.o.calib_batches));
}

void Progress(Run& r, double loss, double tok_s, double eta) {
  if (!r.progress) return;
  r.progress->Update(r.step, absl::StrFormat("%s %lld/%lld loss %.4f  %.0f tok/s  ETA %s",
                                             ProgressBar(r.step, r.o.steps), static_cast<long long>(r.step),
                                             static_cast<long long>(r.o.steps), loss, tok_s, FormatDuration(eta)));
}

// Prepared data: the masked CE over the valid split's windows, in order
// (max_chunks of them; 0: all), reported as valid_loss and its exp.
absl::Status EvaluatePrepared(Run& r, int64_t max_chunks) {
  std::vector<data::Window> windows = data::BuildWindows(r.valid_split, r.o.seq, r.packing);
  if (max_chunks > 0 && static_cast<int64_t>(windows.size()) > max_chunks) windows.resize(max_chunks);
  if (windows.empty()) return absl::OkStatus();
  torch::NoGradGuard ng;
  const bool was_training = r.model->is_training();
  r.model->eval();
  double sum = 0;
  int64_t count = 0;
  for (size_t w0 = 0; w0 < windows.size(); w0 += r.o.batch) {
    const size_t nb = std::min<size_t>(r.o.batch, windows.size() - w0);
    const int64_t B = static_cast<int64_t>(nb);
    std::vector<int64_t> in(B * r.o.seq), tg(B * r.o.seq);
    for (int64_t b = 0; b < B; ++b) {
      data::WindowSampler::Fill(r.valid_split, windows[w0 + b], r.o.seq, std::nullopt, &in[b * r.o.seq],
                                &tg[b * r.o.seq]);
    }
    torch::Tensor x = torch::from_blob(in.data(), {B, r.o.seq}, torch::kInt64).to(r.device);
    torch::Tensor y = torch::from_blob(tg.data(), {B * r.o.seq}, torch::kInt64).to(r.device);
    torch::Tensor logits = r.model->forward(x).view({B * r.o.seq, -1});
    sum += torch::cross_entropy_loss(logits, y, {}, at::Reduction::Sum, data::kIgnoreTarget).item<double>();
    count += (y != data::kIgnoreTarget).sum().item<int64_t>();
  }
  if (was_training) r.model->train();
  const double loss = sum / static_cast<double>(std::max<int64_t>(count, 1));
  LogMetrics(r, {{"step", r.step}, {"valid_loss", loss}, {"valid_ppl", std::exp(loss)}, {"valid_tokens", count},
                 {"valid_windows", windows.size()}});
  if (r.progress) r.progress->Break();
  std::fprintf(stderr, "step %lld: valid loss %.4f (ppl %.3f) over %lld trained tokens\n",
               static_cast<long long>(r.step), loss, std::exp(loss), static_cast<long long>(count));
  return absl::OkStatus();
}

absl::Status Evaluate(Run& r, int64_t max_chunks) {
  std::optional<EmaSwapped> swapped;
  if (!r.ema.empty()) swapped.emplace(r);
  if (r.prepared) return EvaluatePrepared(r, max_chunks);
  std::vector<int32_t> ids;
  ids.reserve(r.valid_tokens.size() + 1);
  ids.push_back(BosId(r));
  ids.insert(ids.end(), r.valid_tokens.begin(), r.valid_tokens.end());
  ASSIGN_OR_RETURN(PerplexityResult p, Perplexity(r.model, ids, r.o.seq, BosId(r), max_chunks));
  LogMetrics(r, {{"step", r.step}, {"valid_ppl", p.ppl}, {"valid_tokens", p.tokens}, {"ctx", p.ctx}});
  if (r.progress) r.progress->Break();
  std::fprintf(stderr, "step %lld: valid ppl %.3f (%lld tokens, ctx %lld)\n", static_cast<long long>(r.step),
               p.ppl, static_cast<long long>(p.tokens), static_cast<long long>(p.ctx));
  return absl::OkStatus();
}

// "cpu", "cuda" or "cuda:N"; CUDA only where this LibTorch has it and sees a GPU.
absl::StatusOr<torch::Device> ParseDevice(const std::string& name) {
  std::optional<torch::Device> d;
  try {
    d.emplace(name);
  } catch (const std::exception&) {
    return absl::InvalidArgumentError(absl::StrCat("--device '", name, "': use cpu or cuda"));
  }
  if (!d->is_cpu() && !d->is_cuda()) {
    return absl::InvalidArgumentError(absl::StrCat("--device '", name, "': use cpu or cuda"));
  }
  if (d->is_cuda() && !torch::cuda::is_available()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--device ", name, ": no CUDA device (this LibTorch has no CUDA, or no GPU is visible)"));
  }
  if (d->is_cuda() && d->has_index() && d->index() >= static_cast<int64_t>(torch::cuda::device_count())) {
    return absl::InvalidArgumentError(absl::StrCat("--device ", name, ": only ", torch::cuda::device_count(),
                                                   " CUDA devices"));
  }
  return *d;
}

// The fingerprint of the model's tokenizer: the tokenizer file of the
// checkpoint it came from (tokenizer.json before tokenizer.model), else the
// tokenizer.model in use. `name` receives the file for error messages.
uint64_t ModelTokenizerFingerprint(const Run& r, std::string* name) {
  const std::string dir = r.o.resume && Exists(r.o.out + "/trainer_state.json") ? r.o.out : r.o.init;
  if (!dir.empty()) {
    absl::StatusOr<uint64_t> fp = data::TokenizerFingerprint(dir, name);
    if (fp.ok()) return *fp;
  }
  *name = r.o.tokenizer.empty() ? r.o.data + "/tokenizer.model" : r.o.tokenizer;
  return r.tokenizer ? r.tokenizer->fingerprint() : 0;
}

absl::Status LoadData(Run& r) {
  const TrainOptions& o = r.o;
  if (!r.prepared) {
    ASSIGN_OR_RETURN(r.train_tokens, data::LoadTokenStream(o.data + "/train.txt", *r.tokenizer, nullptr,
                                                           /*documents=*/true));
    ASSIGN_OR_RETURN(r.valid_tokens, data::LoadTokenStream(o.data + "/valid.txt", *r.tokenizer));
    if (static_cast<int64_t>(r.train_tokens.size()) <= o.seq + 1) {
      return absl::InvalidArgumentError(absl::StrCat(o.data, "/train.txt has only ", r.train_tokens.size(),
                                                     " tokens, fewer than --seq + 1"));
    }
    r.train_split = data::SplitFromStream(r.train_tokens, r.tokenizer->eos_id());
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(r.train_split, data::ReadPreparedSplit(o.data + "/train.qtd"));
  if (Exists(o.data + "/valid.qtd")) {
    ASSIGN_OR_RETURN(r.valid_split, data::ReadPreparedSplit(o.data + "/valid.qtd"));
  }
  std::string model_tok;
  const uint64_t want = ModelTokenizerFingerprint(r, &model_tok);
  for (const auto* s : {&r.train_split, &r.valid_split}) {
    if (s->ids.empty() || s->tokenizer_fingerprint == want) continue;
    std::string made_by = "?";
    if (auto meta = ReadFileToString(o.data + "/dataset.json"); meta.ok()) {
      json j = json::parse(*meta, nullptr, false);
      if (j.is_object() && j.contains("tokenizer") && j["tokenizer"].is_string()) made_by = j["tokenizer"];
    }
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s was made with the tokenizer %s (fingerprint %016x), but the model's tokenizer is %s (fingerprint "
        "%016x); prepare the data again with --model of this model",
        o.data, made_by, s->tokenizer_fingerprint, model_tok, want));
  }
  for (const auto* s : {&r.train_split, &r.valid_split}) {
    for (int32_t id : s->ids) {
      if (id >= r.config.vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat(o.data, ": token id ", id, " is outside the model's vocab_size ",
                                                       r.config.vocab_size));
      }
    }
  }
  r.train_tokens = r.train_split.ids;
  return absl::OkStatus();
}

absl::Status Prepare(Run& r) {
  TrainOptions& o = r.o;
  if (o.config.empty() == o.init.empty() && !(o.resume && Exists(o.out + "/trainer_state.json"))) {
    return absl::InvalidArgumentError("give exactly one of --config (from scratch) or --init CKPT");
  }
  if (o.batch <= 0 || o.steps <= 0 || o.grad_accum <= 0) {
    return absl::InvalidArgumentError("--batch, --steps and --grad-accum must be > 0");
  }
  if (!(o.ema >= 0 && o.ema < 1)) return absl::InvalidArgumentError("--ema must be in [0, 1)");
  ASSIGN_OR_RETURN(r.device, ParseDevice(o.device));
  ASSIGN_OR_RETURN(r.packing, data::ParsePacking(o.pack));
  r.prepared = data::IsPreparedDataset(o.data);
  RETURN_IF_ERROR(BuildModel(r));
  RETURN_IF_ERROR(LoadTokenizer(r));
  if (o.seq == 0) o.seq = std::min<int64_t>(256, r.config.max_position_embeddings);
  if (o.seq > r.config.max_position_embeddings) {
    return absl::InvalidArgumentError(absl::StrCat("--seq ", o.seq, " exceeds the model's context ",
                                                   r.config.max_position_embeddings));
  }
  if (!o.teacher.empty()) {
    ASSIGN_OR_RETURN(Checkpoint t, LoadCheckpoint(o.teacher));
    if (t.config.vocab_size != r.config.vocab_size) {
      return absl::InvalidArgumentError("--teacher has a different vocab_size than the student");
    }
    t.model->to(r.device);
    t.model->eval();
    for (auto& p : t.model->parameters()) p.set_requires_grad(false);
    r.teacher = std::move(t);
  }
  RETURN_IF_ERROR(LoadData(r));
  r.model->to(r.device);
  if (o.freeze_codes) RETURN_IF_ERROR(FreezeCodes(r));
  r.model->train();
  BuildOptimizer(r);
  if (o.resume && r.step > 0) RETURN_IF_ERROR(LoadOptimizer(o.out, *r.optimizer, r.device));
  if (r.calibrate) Calibrate(r);
  RETURN_IF_ERROR(InitEma(r, o.resume && r.step > 0));
  return absl::OkStatus();
}

}  // namespace

void RequestStop() { g_stop = true; }
bool StopRequested() { return g_stop.load(); }

absl::Status Train(const TrainOptions& options) {
  g_stop = false;
  Run r;
  r.o = options;
  RETURN_IF_ERROR(Prepare(r));
  const TrainOptions& o = r.o;
  int64_t dropped = 0;
  std::vector<data::Window> windows = data::BuildWindows(r.train_split, o.seq, r.packing, &dropped);
  if (windows.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(o.data, ": no window of ", o.seq + 1,
                                                   " tokens has a trained target (--pack ", o.pack, ")"));
  }
  if (dropped > 0) {
    std::fprintf(stderr, "%lld of %lld windows have no trained target and are not drawn\n",
                 static_cast<long long>(dropped), static_cast<long long>(dropped + windows.size()));
  }
  data::WindowSampler sampler(&r.train_split, std::move(windows), o.seq, o.seed,
                              r.prepared ? std::nullopt : std::optional<int32_t>(BosId(r)));
  sampler.set_position(r.sampler_pos);
  int64_t last_saved = r.step > 0 ? r.step : -1;
  const auto t0 = Clock::now();
  const int64_t first_step = r.step;
  if (o.progress) r.progress.emplace(o.steps);
  while (r.step < o.steps) {
    const auto step_t0 = Clock::now();
    SetLr(r, LrAt(o, r.step));
    double grad_norm = 0;
    ASSIGN_OR_RETURN(const double loss, TrainStep(r, sampler, &grad_norm));
    if (!std::isfinite(loss)) {
      return absl::InternalError(absl::StrCat(
          "loss is ", loss, " at step ", r.step + 1, "; stopped. ",
          last_saved >= 0 ? absl::StrCat("The last good checkpoint (step ", last_saved, ") is in ", o.out)
                          : std::string("No checkpoint was written."),
          " Try a lower --lr or stronger --clip."));
    }
    UpdateEma(r);
    const double step_s = std::chrono::duration<double>(Clock::now() - step_t0).count();
    ++r.step;
    r.sampler_pos = sampler.position();
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    const double tok_s = (r.step - first_step) * o.batch * o.seq * o.grad_accum / std::max(secs, 1e-9);
    LogMetrics(r, {{"step", r.step}, {"loss", loss}, {"lr", LrAt(o, r.step - 1)}, {"grad_norm", grad_norm},
                   {"tok_s", tok_s}, {"step_s", step_s}});
    Progress(r, loss, tok_s, secs / (r.step - first_step) * (o.steps - r.step));
    const bool stop = g_stop.load() || (o.stop_after > 0 && r.step == o.stop_after);
    if ((o.eval_every > 0 && r.step % o.eval_every == 0) || r.step == o.steps) {
      RETURN_IF_ERROR(Evaluate(r, o.eval_chunks));
    }
    if ((o.save_every > 0 && r.step % o.save_every == 0) || r.step == o.steps || stop) {
      RETURN_IF_ERROR(Save(r));
      last_saved = r.step;
    }
    if (stop) {
      std::fprintf(stderr, "\ninterrupted: saved %s at step %lld (continue with --resume)\n", o.out.c_str(),
                   static_cast<long long>(r.step));
      return absl::OkStatus();
    }
  }
  if (r.progress) r.progress->Break();
  std::fprintf(stderr, "saved %s (step %lld)\n", o.out.c_str(), static_cast<long long>(r.step));
  return absl::OkStatus();
}

}  // namespace qatk::qat
