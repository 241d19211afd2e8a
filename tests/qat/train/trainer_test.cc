#include "qat/train/trainer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "formats/util/file_io.h"
#include "nlohmann/json.hpp"
#include "qat/data/prepared.h"
#include "qat/data/text_encoder.h"
#include "qat/data/tokenizer.h"
#include "qat/model/checkpoint.h"
#include "qat/quant/prepare.h"

namespace qatk::qat {
namespace {

// A data folder with a small text and tokenizer, and a tiny model config.
class TrainerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(::testing::TempDir() + "/qatk_trainer_" + std::to_string(::getpid()));
    std::system(("rm -rf '" + *dir_ + "' && mkdir -p '" + *dir_ + "/data'").c_str());
    for (const char* f : {"/data/train.txt", "/data/valid.txt"}) {
      std::ofstream out(*dir_ + f);
      for (int i = 0; i < 300; ++i) out << "Line " << i % 17 << " of the tiny corpus says " << i * 7 % 13 << ".\n";
    }
    auto tok = data::Tokenizer::Train(*dir_ + "/data/train.txt", 300, 1);
    ASSERT_TRUE(tok.ok()) << tok.status();
    ASSERT_TRUE(tok->Save(*dir_ + "/data/tokenizer.model").ok());
    std::ofstream(*dir_ + "/tiny.json") << R"({"model_type": "llama", "vocab_size": 320, "hidden_size": 32,
      "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
      "max_position_embeddings": 32, "tie_word_embeddings": false})";
  }
  TrainOptions Options(const std::string& out) {
    TrainOptions o;
    o.data = *dir_ + "/data";
    o.out = *dir_ + "/" + out;
    o.config = *dir_ + "/tiny.json";
    o.steps = 4;
    o.batch = 2;
    o.seq = 16;
    o.lr = 1e-2;
    o.warmup = 1;
    o.eval_chunks = 1;
    o.progress = false;
    return o;
  }
  // Options for a run that starts from the checkpoint `init` instead of the config.
  TrainOptions OptionsFrom(const std::string& out, const std::string& init) {
    TrainOptions o = Options(out);
    o.config.clear();
    o.init = init;
    return o;
  }
  static std::vector<double> Losses(const std::string& ckpt) {
    std::vector<double> out;
    std::istringstream in(*ReadFileToString(ckpt + "/metrics.jsonl"));
    for (std::string line; std::getline(in, line);) {
      auto j = nlohmann::json::parse(line);
      if (j.contains("loss")) out.push_back(j["loss"].get<double>());
    }
    return out;
  }
  static std::string* dir_;
};
std::string* TrainerTest::dir_ = nullptr;

TEST_F(TrainerTest, ResumeEqualsUninterrupted) {
  torch::set_num_threads(1);
  TrainOptions full = Options("full");
  ASSERT_TRUE(Train(full).ok());
  TrainOptions half = Options("half");
  half.stop_after = 2;  // as if Ctrl-C arrived during step 2
  ASSERT_TRUE(Train(half).ok());
  ASSERT_EQ(Losses(half.out).size(), 2u);
  TrainOptions resume = Options("half");
  resume.resume = true;
  ASSERT_TRUE(Train(resume).ok());
  const std::vector<double> a = Losses(full.out), b = Losses(half.out);
  ASSERT_EQ(a.size(), 4u);
  ASSERT_EQ(b.size(), 4u);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i], b[i]) << "step " << i + 1;  // bit-identical
  EXPECT_LT(a.back(), a.front());
}

// --ema: the raw trajectory is the plain run's (kept in train_weights.pt),
// the saved model is decay * start + (1 - decay) * raw after one step, and a
// resumed run saves the same averages as an uninterrupted one.
TEST_F(TrainerTest, EmaAveragesTheRawWeightsAndResumes) {
  torch::set_num_threads(1);
  TrainOptions start = Options("ema_start");
  start.steps = 2;
  ASSERT_TRUE(Train(start).ok());
  auto one_step = [&](const std::string& out, double ema) {
    TrainOptions o = OptionsFrom(out, start.out);
    o.steps = 1;
    o.ema = ema;
    return Train(o);
  };
  ASSERT_TRUE(one_step("ema_raw1", 0).ok());
  ASSERT_TRUE(one_step("ema_avg1", 0.75).ok());
  auto s = LoadCheckpoint(start.out), raw = LoadCheckpoint(*dir_ + "/ema_raw1");
  auto avg = LoadCheckpoint(*dir_ + "/ema_avg1");
  ASSERT_TRUE(s.ok() && raw.ok() && avg.ok());
  std::vector<torch::Tensor> saved_raw;
  torch::load(saved_raw, *dir_ + "/ema_avg1/train_weights.pt");
  auto sp = s->model->named_parameters(), rp = raw->model->named_parameters(), ap = avg->model->named_parameters();
  ASSERT_EQ(saved_raw.size(), rp.size());
  double moved = 0;
  for (size_t i = 0; i < rp.size(); ++i) {
    const std::string& n = rp[i].key();
    EXPECT_TRUE(torch::equal(saved_raw[i], rp[i].value())) << n;
    EXPECT_TRUE(torch::allclose(ap[n], 0.75 * sp[n] + 0.25 * rp[n], 1e-6, 1e-7)) << n;
    moved += (rp[n] - sp[n]).abs().sum().item<double>();
  }
  EXPECT_GT(moved, 0);  // the step changed the weights, so the average differs from both ends

  TrainOptions full = Options("ema_full");
  full.ema = 0.5;
  ASSERT_TRUE(Train(full).ok());
  TrainOptions half = full;
  half.out = *dir_ + "/ema_half";
  half.stop_after = 2;
  ASSERT_TRUE(Train(half).ok());
  half.stop_after = 0;
  half.resume = true;
  TrainOptions other = half;
  other.ema = 0.9;
  absl::Status st = Train(other);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
  EXPECT_NE(st.message().find("--ema"), std::string::npos) << st;
  ASSERT_TRUE(Train(half).ok());
  EXPECT_EQ(Losses(full.out), Losses(half.out));
  auto a = LoadCheckpoint(full.out), b = LoadCheckpoint(half.out);
  ASSERT_TRUE(a.ok() && b.ok());
  auto bp = b->model->named_parameters();
  for (const auto& p : a->model->named_parameters()) EXPECT_TRUE(torch::equal(p.value(), bp[p.key()])) << p.key();
}

// --freeze-codes from a q4_0 QAT checkpoint (max-rule scales): the recipe
// becomes learned, every q4_0 weight exports the same codes as before, the
// block scales move, and a recipe without q4_0 weights is refused.
TEST_F(TrainerTest, FreezeCodesTrainsOnlyTheBlockScales) {
  torch::set_num_threads(1);
  TrainOptions qat = Options("fc_qat");
  qat.recipe = std::string(QATK_SOURCE_DIR) + "/configs/recipes/q4_0.json";
  qat.steps = 2;
  ASSERT_TRUE(Train(qat).ok());
  TrainOptions fc = OptionsFrom("fc_frozen", qat.out);
  fc.freeze_codes = true;
  fc.scale_lr = 1e-3;
  ASSERT_TRUE(Train(fc).ok());
  TrainOptions fc_ema = fc;  // the saved (averaged) scales must give the same codes too
  fc_ema.out = *dir_ + "/fc_frozen_ema";
  fc_ema.ema = 0.5;
  ASSERT_TRUE(Train(fc_ema).ok());
  for (const std::string& out : {fc.out, fc_ema.out}) {
    SCOPED_TRACE(out);
    auto before = LoadCheckpoint(qat.out), after = LoadCheckpoint(out);
    ASSERT_TRUE(before.ok() && after.ok());
    ASSERT_TRUE(after->recipe.has_value());
    auto cb = ConvertWeights(*before->model), ca = ConvertWeights(*after->model);
    ASSERT_TRUE(cb.ok() && ca.ok());
    int q4 = 0, scales_moved = 0;
    for (const auto& [name, m] : *cb) {
      if (m.spec.scheme != QuantScheme::kQ4_0) continue;
      ++q4;
      const QuantizedMatrix& n = ca->at(name);
      ASSERT_EQ(m.blocks.size(), n.blocks.size()) << name;
      for (size_t off = 0; off < m.blocks.size(); off += 18) {  // block_q4_0: fp16 d, then 16 bytes of codes
        ASSERT_EQ(0, std::memcmp(&m.blocks[off + 2], &n.blocks[off + 2], 16)) << name << " block " << off / 18;
        scales_moved += std::memcmp(&m.blocks[off], &n.blocks[off], 2) != 0;
      }
    }
    EXPECT_EQ(q4, 2 * 7 + 1);  // 2 layers of 7 linears, and the token embeddings
    EXPECT_GT(scales_moved, 0);
    auto sa = after->model->named_parameters();
    ASSERT_NE(sa.find("model.layers.0.mlp.down_proj.weight_scale"), nullptr);
  }

  TrainOptions fp = Options("fc_fp");
  fp.steps = 1;
  ASSERT_TRUE(Train(fp).ok());
  TrainOptions bad = OptionsFrom("fc_bad", fp.out);
  bad.freeze_codes = true;
  absl::Status st = Train(bad);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
  EXPECT_NE(st.message().find("q4_0"), std::string::npos) << st;
}

TEST_F(TrainerTest, MissingOrCorruptCheckpointGivesClearErrors) {
  TrainOptions o = Options("ck");
  o.steps = 1;
  ASSERT_TRUE(Train(o).ok());
  ASSERT_TRUE(LoadCheckpoint(o.out).ok());
  auto missing = LoadCheckpoint(*dir_ + "/nope");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  std::string st = *ReadFileToString(o.out + "/model.safetensors");
  ASSERT_TRUE(WriteFileAtomic(o.out + "/model.safetensors", st.substr(0, st.size() / 2)).ok());
  auto corrupt = LoadCheckpoint(o.out);
  ASSERT_FALSE(corrupt.ok());
  EXPECT_NE(std::string(corrupt.status().message()).find("model.safetensors"), std::string::npos);
  std::system(("rm -f '" + o.out + "/tokenizer.model'").c_str());
  ASSERT_TRUE(WriteFileAtomic(o.out + "/model.safetensors", st).ok());
  // Without tokenizer.model the checkpoint loads (Hugging Face folders may
  // have tokenizer.json only); the commands that tokenize say what is missing.
  auto no_tok = LoadCheckpoint(o.out);
  ASSERT_TRUE(no_tok.ok()) << no_tok.status();
  EXPECT_FALSE(no_tok->tokenizer.has_value());
  const absl::Status need = RequireTokenizer(*no_tok);
  EXPECT_EQ(need.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(std::string(need.message()).find("tokenizer.model"), std::string::npos) << need;
}

// head_lr scales only lm_head.weight's updates: with a negligible head LR
// the head stays where it started and the body still trains.
TEST_F(TrainerTest, HeadLrAppliesToTheOutputHeadOnly) {
  torch::set_num_threads(1);
  TrainOptions base = Options("head_base");
  base.steps = 1;
  ASSERT_TRUE(Train(base).ok());
  TrainOptions o = OptionsFrom("head_frozen", base.out);
  o.steps = 2;
  o.head_lr = 1e-12;
  ASSERT_TRUE(Train(o).ok());
  auto before = LoadCheckpoint(base.out);
  auto after = LoadCheckpoint(o.out);
  ASSERT_TRUE(before.ok() && after.ok());
  auto param = [](Checkpoint& c, const std::string& name) { return c.model->named_parameters()[name]; };
  const double head_moved = (param(*after, "lm_head.weight") - param(*before, "lm_head.weight")).abs().max().item<double>();
  const double body_moved = (param(*after, "model.layers.0.mlp.up_proj.weight") -
                             param(*before, "model.layers.0.mlp.up_proj.weight")).abs().max().item<double>();
  EXPECT_LT(head_moved, 1e-8);
  EXPECT_GT(body_moved, 1e-3);
}

// A tied model has no lm_head.weight: its optimizer has no head group.
TEST_F(TrainerTest, TiedEmbeddingsTrainWithHeadLr) {
  torch::set_num_threads(1);
  auto j = nlohmann::json::parse(*ReadFileToString(*dir_ + "/tiny.json"));
  j["tie_word_embeddings"] = true;
  ASSERT_TRUE(WriteFileAtomic(*dir_ + "/tiny-tied.json", j.dump()).ok());
  TrainOptions o = Options("tied");
  o.config = *dir_ + "/tiny-tied.json";
  o.head_lr = 1e-3;
  const absl::Status st = Train(o);
  ASSERT_TRUE(st.ok()) << st;
  const std::vector<double> l = Losses(o.out);
  ASSERT_EQ(l.size(), 4u);
  EXPECT_LT(l.back(), l.front());
}

TEST_F(TrainerTest, ShapeMismatchNamesTheTensor) {
  TrainOptions o = Options("shape");
  o.steps = 1;
  ASSERT_TRUE(Train(o).ok());
  std::string cfg = *ReadFileToString(o.out + "/config.json");
  auto j = nlohmann::json::parse(cfg);
  j["intermediate_size"] = 128;
  ASSERT_TRUE(WriteFileAtomic(o.out + "/config.json", j.dump()).ok());
  auto c = LoadCheckpoint(o.out);
  ASSERT_FALSE(c.ok());
  // The first tensor config.json's intermediate_size shapes, with both shapes.
  EXPECT_NE(std::string(c.status().message()).find("model.layers.0.mlp.gate_proj.weight"), std::string::npos)
      << c.status();
  EXPECT_NE(std::string(c.status().message()).find("[128, "), std::string::npos) << c.status();
}

TEST_F(TrainerTest, NanLossStopsWithClearErrorAndKeepsCheckpoint) {
  TrainOptions o = Options("nan_init");
  o.steps = 1;
  ASSERT_TRUE(Train(o).ok());
  auto c = LoadCheckpoint(o.out);
  ASSERT_TRUE(c.ok());
  {
    torch::NoGradGuard ng;
    c->model->model->norm->weight.fill_(std::nan(""));
  }
  CheckpointWrite w;
  w.config = &c->config;
  w.model = c->model.get();
  w.tokenizer_model = &c->tokenizer->serialized();
  ASSERT_TRUE(SaveCheckpoint(*dir_ + "/nan_bad", w).ok());
  TrainOptions bad = OptionsFrom("nan_out", *dir_ + "/nan_bad");
  absl::Status s = Train(bad);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find("loss is nan"), std::string::npos) << s;
  EXPECT_FALSE(LoadCheckpoint(bad.out).ok());  // nothing half-written
}

// The same runs on CUDA and on CPU: the model is initialised on CPU and then
// moved, batches come from the same sampler and the teacher is the same
// checkpoint, so only float rounding (reduction order, fused kernels) may
// differ: FP and QAT (q4_0, mobile: learned scales, calibrated activations,
// KV quant) losses within 1e-3 relative over 5 steps. Skipped without CUDA.
TEST_F(TrainerTest, CudaLossesMatchCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device (LibTorch without CUDA, or no GPU)";
  torch::set_num_threads(1);
  TrainOptions base = Options("cuda_base");
  base.steps = 2;
  ASSERT_TRUE(Train(base).ok());
  for (const std::string recipe : {"", "q4_0", "mobile"}) {
    std::vector<double> losses[2];
    for (int cuda = 0; cuda < 2; ++cuda) {
      SCOPED_TRACE(::testing::Message() << "recipe '" << recipe << "' on " << (cuda ? "cuda" : "cpu"));
      const std::string name = "cuda_" + (recipe.empty() ? std::string("fp") : recipe) + (cuda ? "_cuda" : "_cpu");
      TrainOptions o = OptionsFrom(name, base.out);
      o.steps = 5;
      o.lr = 1e-3;
      o.device = cuda ? "cuda" : "cpu";
      if (!recipe.empty()) {
        o.recipe = std::string(QATK_SOURCE_DIR) + "/configs/recipes/" + recipe + ".json";
        o.teacher = base.out;
      }
      const absl::Status st = Train(o);
      ASSERT_TRUE(st.ok()) << st;
      losses[cuda] = Losses(o.out);
      ASSERT_EQ(losses[cuda].size(), 5u);
    }
    // FP: float rounding only. QAT: the fake-quant ops are bit-exact on both
    // devices, but the KD loss is a small difference of two cross-entropies
    // of size ~log(V) (here ~1e-5 against ~5.8), so its error is set by
    // theirs (an absolute floor of 1e-6 log V, 1e-5 log V later); quantized
    // activations flip a code where a value sits on a rounding boundary, and
    // training carries the flips on: a looser bound after step 1.
    const double log_v = std::log(320.0);
    const double step1 = recipe.empty() ? 1e-4 : 2e-3, later = recipe.empty() ? 1e-4 : 2e-2;
    const double floor1 = recipe.empty() ? 0 : 1e-6 * log_v, floor_later = recipe.empty() ? 0 : 1e-5 * log_v;
    for (size_t i = 0; i < 5; ++i) {
      const double tol = i == 0 ? step1 * std::fabs(losses[0][i]) + floor1
                                : later * std::fabs(losses[0][i]) + floor_later;
      EXPECT_NEAR(losses[1][i], losses[0][i], tol) << "recipe '" << recipe << "' step " << i + 1;
    }
  }
}

// --device is checked before anything is loaded.
TEST_F(TrainerTest, BadDeviceIsAClearError) {
  TrainOptions o = Options("bad_device");
  o.device = "tpu";
  absl::Status s = Train(o);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  if (!torch::cuda::is_available()) {
    o.device = "cuda";
    s = Train(o);
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
    EXPECT_NE(std::string(s.message()).find("no CUDA device"), std::string::npos) << s;
  }
}

// A prepared dataset (prompt/completion lines, so most targets are masked)
// trains with --pack doc, resumes to the same losses, refuses a resume with
// another --pack and a tokenizer that did not make it.
TEST_F(TrainerTest, PreparedDatasetTrainsResumesAndChecksTheTokenizer) {
  torch::set_num_threads(1);
  const std::string jsonl = *dir_ + "/qa.jsonl";
  {
    std::ofstream f(jsonl);
    for (int i = 0; i < 60; ++i) {
      f << "{\"prompt\": \"Line " << i % 17 << " of the tiny corpus says\", \"completion\": \" " << i * 7 % 13
        << ".\"}\n";
    }
  }
  auto enc = data::LoadModelEncoder(*dir_ + "/data");
  ASSERT_TRUE(enc.ok()) << enc.status();
  data::PrepareJsonlOptions p;
  p.files = {jsonl};
  p.out = *dir_ + "/prepared";
  p.valid_fraction = 0.1;
  ASSERT_TRUE(data::PrepareJsonl(p, **enc).ok());
  auto opts = [&](const std::string& out) {
    TrainOptions o = Options(out);
    o.data = p.out;
    o.tokenizer = *dir_ + "/data/tokenizer.model";
    o.pack = "doc";
    o.eval_chunks = 0;
    return o;
  };
  TrainOptions full = opts("prep_full");
  ASSERT_TRUE(Train(full).ok());
  TrainOptions half = opts("prep_half");
  half.stop_after = 2;
  ASSERT_TRUE(Train(half).ok());
  TrainOptions resume = opts("prep_half");
  resume.resume = true;
  resume.pack = "stream";
  absl::Status s = Train(resume);
  EXPECT_NE(s.message().find("--pack"), std::string::npos) << s;
  resume.pack = "doc";
  ASSERT_TRUE(Train(resume).ok());
  const std::vector<double> a = Losses(full.out), b = Losses(half.out);
  ASSERT_EQ(a.size(), 4u);
  ASSERT_EQ(b.size(), 4u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(std::isfinite(a[i]));
    EXPECT_EQ(a[i], b[i]) << "step " << i + 1;
  }
  const std::string metrics = *ReadFileToString(full.out + "/metrics.jsonl");
  EXPECT_NE(metrics.find("\"valid_loss\""), std::string::npos);
  // Another tokenizer: an error naming both files.
  auto other = data::Tokenizer::Train(*dir_ + "/data/train.txt", 310, 1);
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE(other->Save(*dir_ + "/other.model").ok());
  TrainOptions wrong = opts("prep_wrong");
  wrong.tokenizer = *dir_ + "/other.model";
  s = Train(wrong);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find(*dir_ + "/data/tokenizer.model"), std::string::npos) << s;
  EXPECT_NE(s.message().find(*dir_ + "/other.model"), std::string::npos) << s;
  // From a checkpoint: its tokenizer is the one compared.
  TrainOptions from_ckpt = OptionsFrom("prep_init", full.out);
  from_ckpt.data = p.out;
  from_ckpt.steps = 1;
  EXPECT_TRUE(Train(from_ckpt).ok());
}

}  // namespace
}  // namespace qatk::qat
