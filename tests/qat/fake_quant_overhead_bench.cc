// Fake-quant overhead: one training step (forward, backward, Adam) of a
// 4-layer Llama-named stack of QLinears with a recipe vs the same step with
// quantization off. Prints process CPU ms/step (median of `reps` steps; CPU
// time rather than wall time so that other load on a shared machine does not
// distort the ratio) and ratios.
//   usage: fake_quant_overhead_bench [hidden=256] [tokens=512] [reps=20] [threads=1]
//          [recipes=q4_0,mobile,w8a8 (names under configs/recipes/ or paths)]
#include <algorithm>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "formats/quant/recipe.h"
#include "qat/quant/prepare.h"
#include "qat/quant/qlinear.h"

namespace qatk::qat {
namespace {

struct BlockImpl : torch::nn::Module {
  BlockImpl(int64_t e, int64_t f, int64_t head_dim) : head_dim(head_dim) {
    auto attn = register_module("self_attn", std::make_shared<torch::nn::Module>());
    auto mlp = register_module("mlp", std::make_shared<torch::nn::Module>());
    q = attn->register_module("q_proj", QLinear(e, e));
    k = attn->register_module("k_proj", QLinear(e, e));
    v = attn->register_module("v_proj", QLinear(e, e));
    o = attn->register_module("o_proj", QLinear(e, e));
    kc = attn->register_module("k_cache", KvQuant());
    vc = attn->register_module("v_cache", KvQuant());
    gate = mlp->register_module("gate_proj", QLinear(e, f));
    up = mlp->register_module("up_proj", QLinear(e, f));
    down = mlp->register_module("down_proj", QLinear(f, e));
  }
  // x [N, E] -> [N, E]; per-token mixing only (attention scores are not what
  // is measured here).
  torch::Tensor forward(const torch::Tensor& x) {
    const int64_t n = x.size(0);
    const torch::Tensor kk = kc(k(x).reshape({n, -1, head_dim})).reshape({n, -1});
    const torch::Tensor vv = vc(v(x).reshape({n, -1, head_dim})).reshape({n, -1});
    const torch::Tensor h = x + o(torch::tanh(q(x)) * kk + vv);
    return h + down(torch::silu(gate(h)) * up(h));
  }
  int64_t head_dim;
  QLinear q{nullptr}, k{nullptr}, v{nullptr}, o{nullptr}, gate{nullptr}, up{nullptr}, down{nullptr};
  KvQuant kc{nullptr}, vc{nullptr};
};
TORCH_MODULE(Block);

struct StackImpl : torch::nn::Module {
  StackImpl(int64_t vocab, int64_t e, int64_t f, int layers) {
    auto model = register_module("model", std::make_shared<torch::nn::Module>());
    embed = model->register_module("embed_tokens", QEmbedding(vocab, e));
    blocks = model->register_module("layers", torch::nn::ModuleList());
    for (int i = 0; i < layers; ++i) blocks->push_back(Block(e, f, 32));
    head = register_module("lm_head", QLinear(e, vocab));
  }
  torch::Tensor forward(const torch::Tensor& ids) {  // [N] -> [N, V]
    torch::Tensor h = embed(ids) * 0.05;
    for (const auto& b : *blocks) h = b->as<BlockImpl>()->forward(h);
    return head(h);
  }
  QEmbedding embed{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  QLinear head{nullptr};
};
TORCH_MODULE(Stack);

double CpuMs() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

double MedianStepMs(Stack& m, const torch::Tensor& ids, const torch::Tensor& targets, int reps) {
  torch::optim::Adam opt(m->parameters(), torch::optim::AdamOptions(1e-4));
  auto step = [&] {
    opt.zero_grad();
    torch::nn::functional::cross_entropy(m->forward(ids), targets).backward();
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

int Run(int argc, char** argv) {
  const int64_t e = argc > 1 ? std::atoi(argv[1]) : 256;
  const int64_t tokens = argc > 2 ? std::atoi(argv[2]) : 512;
  const int reps = argc > 3 ? std::atoi(argv[3]) : 20;
  const int threads = argc > 4 ? std::atoi(argv[4]) : 1;
  torch::set_num_threads(threads);
  const int64_t f = e * 3, vocab = 1024;
  torch::manual_seed(0);
  const torch::Tensor ids = torch::randint(0, vocab, {tokens});
  const torch::Tensor targets = torch::randint(0, vocab, {tokens});
  std::printf("4 layers, hidden %lld, ffn %lld, vocab %lld, %lld tokens/step, %d thread(s), median of %d steps\n",
              static_cast<long long>(e), static_cast<long long>(f), static_cast<long long>(vocab),
              static_cast<long long>(tokens), threads, reps);
  Stack base(vocab, e, f, 4);
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
    Stack m(vocab, e, f, 4);
    const absl::Status st = ApplyRecipe(*m, *recipe, 32);
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
