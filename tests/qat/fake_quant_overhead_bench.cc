// Fake-quant overhead: one training step (forward, cross-entropy backward,
// Adam) of the trainer's 4-layer Llama decoder (qat::CausalLM: attention,
// RoPE, SwiGLU, every linear a QLinear) with a recipe vs the same step with
// no recipe. Prints process CPU ms/step (median of `reps` steps; CPU
// time rather than wall time so that other load on a shared machine does not
// distort the ratio) and ratios. OpenBLAS gets the same thread count as
// torch: its idle pool threads otherwise spin in sched_yield between GEMMs,
// and that spinning, counted as process CPU time, varies from run to run.
//   usage: fake_quant_overhead_bench [hidden=256] [tokens=512] [reps=20] [threads=1]
//          (tokens per step = sequences of 128)
//          [recipes=q4_0,mobile,w8a8 (names under configs/recipes/ or paths)]
#include <dlfcn.h>

#include <algorithm>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "formats/model_config.h"
#include "formats/quant/recipe.h"
#include "nlohmann/json.hpp"
#include "qat/model/transformer.h"
#include "qat/quant/prepare.h"
#include "qat/quant/qlinear.h"

namespace qatk::qat {
namespace {

double CpuMs() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

double MedianStepMs(CausalLM& m, const torch::Tensor& ids, const torch::Tensor& targets, int reps) {
  torch::optim::Adam opt(m->parameters(), torch::optim::AdamOptions(1e-4));
  auto step = [&] {
    opt.zero_grad();
    const torch::Tensor logits = m->forward(ids);
    torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}), targets.reshape(-1)).backward();
    opt.step();
  };
  for (int i = 0; i < 3; ++i) step();  // warm-up
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    const double t0 = CpuMs();
    step();
    ms.push_back(CpuMs() - t0);
  }
  std::nth_element(ms.begin(), ms.begin() + ms.size() / 2, ms.end());
  return ms[ms.size() / 2];
}

// OpenBLAS's pool size, when LibTorch's BLAS is OpenBLAS; false otherwise.
bool SetBlasThreads(int n) {
  using SetFn = void (*)(int);
  auto set = reinterpret_cast<SetFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  if (set == nullptr) return false;
  set(n);
  return true;
}

int Run(int argc, char** argv) {
  const int64_t e = argc > 1 ? std::atoi(argv[1]) : 256;
  const int64_t tokens = argc > 2 ? std::atoi(argv[2]) : 512;
  const int reps = argc > 3 ? std::atoi(argv[3]) : 20;
  const int threads = argc > 4 ? std::atoi(argv[4]) : 1;
  torch::set_num_threads(threads);
  const bool blas_set = SetBlasThreads(threads);
  const int64_t f = e * 3, vocab = 1024, seq = 128, head_dim = 64;
  const int64_t batch = std::max<int64_t>(1, tokens / seq);
  torch::manual_seed(0);
  const torch::Tensor ids = torch::randint(0, vocab, {batch, seq});
  const torch::Tensor targets = torch::randint(0, vocab, {batch, seq});
  const nlohmann::json cj = {{"model_type", "llama"}, {"vocab_size", vocab}, {"hidden_size", e},
                             {"intermediate_size", f}, {"num_hidden_layers", 4},
                             {"num_attention_heads", e / head_dim}, {"num_key_value_heads", e / head_dim},
                             {"head_dim", head_dim}, {"max_position_embeddings", seq}};
  auto config = ModelConfig::FromJson(cj, "bench config");
  if (!config.ok()) {
    std::fprintf(stderr, "%s\n", config.status().ToString().c_str());
    return 1;
  }
  std::printf("4 layers, hidden %lld, ffn %lld, vocab %lld, %lld tokens/step, %d thread(s)%s, median of %d steps\n",
              static_cast<long long>(e), static_cast<long long>(f), static_cast<long long>(vocab),
              static_cast<long long>(batch * seq), threads, blas_set ? " (OpenBLAS too)" : "", reps);
  CausalLM base(*config);
  const double fp = MedianStepMs(base, ids, targets, reps);
  std::printf("%-12s %9.2f CPU ms/step  ratio 1.000\n", "fp (no fq)", fp);
  std::vector<std::string> names = {"q4_0", "mobile", "w8a8"};
  if (argc > 5) names = absl::StrSplit(argv[5], ',');
  for (const std::string& name : names) {
    const std::string path = name.find('/') != std::string::npos
                                 ? name
                                 : std::string(QATK_SOURCE_DIR) + "/configs/recipes/" + name + ".json";
    auto recipe = LoadRecipe(path);
    if (!recipe.ok()) {
      std::fprintf(stderr, "%s\n", recipe.status().ToString().c_str());
      return 1;
    }
    CausalLM m(*config);
    const absl::Status st = ApplyRecipe(*m, *recipe, head_dim);
    if (!st.ok()) {
      std::fprintf(stderr, "%s\n", st.ToString().c_str());
      return 1;
    }
    SetQuantMode(*m, QuantMode::kCalibrate);
    m->forward(ids);
    SetQuantMode(*m, QuantMode::kQuant);
    const double q = MedianStepMs(m, ids, targets, reps);
    std::printf("%-12s %9.2f CPU ms/step  ratio %.3f\n", recipe->name.c_str(), q, q / fp);
  }
  return 0;
}

}  // namespace
}  // namespace qatk::qat

int main(int argc, char** argv) { return qatk::qat::Run(argc, argv); }
