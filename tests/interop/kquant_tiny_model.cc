// Not a test: writes a tiny random F32 llama GGUF whose matrices K-quants can
// hold (rows of 256 and 512), and an importance matrix for it in
// llama-imatrix's GGUF format, for tests/interop/run_kquant_interop.sh.
//
//   kquant_tiny_model MODEL.gguf IMATRIX.gguf
//
// The vocabulary is "<unk>", "<s>", "</s>", the 256 byte pieces, "▁" and the
// letters a-z (SPM, no merges), so llama.cpp and qat-run split lowercase
// text the same way: one token per character.
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "formats/gguf/gguf.h"

namespace {

using qatk::GgmlType;
namespace gguf = qatk::gguf;

constexpr int kE = 256, kF = 512, kL = 2, kH = 4, kHk = 2, kD = 64;

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "kquant_tiny_model: %s\n", std::string(s.message()).c_str());
  return 1;
}

struct Tensor {
  std::string name;
  std::vector<int64_t> ne;
  std::vector<float> data;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s MODEL.gguf IMATRIX.gguf\n", argv[0]);
    return 2;
  }
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  for (int b = 0; b < 256; ++b) {  // byte fallback pieces, which llama.cpp's SPM vocab needs
    char hex[8];
    std::snprintf(hex, sizeof(hex), "<0x%02X>", b);
    tokens.push_back(hex);
  }
  tokens.push_back("\xe2\x96\x81");
  for (char c = 'a'; c <= 'z'; ++c) tokens.push_back(std::string(1, c));
  const int V = static_cast<int>(tokens.size());
  std::vector<float> scores(V);
  std::vector<int32_t> types(V, 1);
  types[0] = 2;  // unknown
  types[1] = types[2] = 3;  // control
  for (int b = 0; b < 256; ++b) types[3 + b] = 6;  // byte
  for (int i = 0; i < V; ++i) scores[i] = -static_cast<float>(i);

  std::mt19937 rng(1234);
  std::vector<Tensor> ts;
  auto add = [&](const std::string& name, int64_t rows, int64_t cols, float mean, float sd) {
    std::normal_distribution<float> dist(mean, sd);
    Tensor t{name, rows == 1 ? std::vector<int64_t>{cols} : std::vector<int64_t>{cols, rows}, {}};
    t.data.resize(rows * cols);
    for (float& v : t.data) v = dist(rng);
    ts.push_back(std::move(t));
  };
  add("token_embd.weight", V, kE, 0, 1.0f);
  add("output_norm.weight", 1, kE, 1, 0.1f);
  add("output.weight", V, kE, 0, 0.05f);
  for (int il = 0; il < kL; ++il) {
    const std::string b = "blk." + std::to_string(il) + ".";
    add(b + "attn_norm.weight", 1, kE, 1, 0.1f);
    add(b + "attn_q.weight", kH * kD, kE, 0, 0.1f);
    add(b + "attn_k.weight", kHk * kD, kE, 0, 0.1f);
    add(b + "attn_v.weight", kHk * kD, kE, 0, 0.1f);
    add(b + "attn_output.weight", kE, kH * kD, 0, 0.06f);
    add(b + "ffn_norm.weight", 1, kE, 1, 0.1f);
    add(b + "ffn_gate.weight", kF, kE, 0, 0.06f);
    add(b + "ffn_up.weight", kF, kE, 0, 0.06f);
    add(b + "ffn_down.weight", kE, kF, 0, 0.04f);
  }

  auto w = gguf::GgufWriter::Create(argv[1]);
  if (!w.ok()) return Fail(w.status());
  const std::pair<std::string, gguf::Value> kvs[] = {
      {"general.architecture", gguf::Value::Str("llama")},
      {"general.name", gguf::Value::Str("kquant-tiny")},
      {"llama.context_length", gguf::Value::U32(256)},
      {"llama.embedding_length", gguf::Value::U32(kE)},
      {"llama.block_count", gguf::Value::U32(kL)},
      {"llama.feed_forward_length", gguf::Value::U32(kF)},
      {"llama.attention.head_count", gguf::Value::U32(kH)},
      {"llama.attention.head_count_kv", gguf::Value::U32(kHk)},
      {"llama.rope.dimension_count", gguf::Value::U32(kD)},
      {"llama.attention.layer_norm_rms_epsilon", gguf::Value::F32(1e-5f)},
      {"general.file_type", gguf::Value::U32(0)},
      {"tokenizer.ggml.model", gguf::Value::Str("llama")},
      {"tokenizer.ggml.tokens", gguf::Value::StrArray(tokens)},
      {"tokenizer.ggml.scores", gguf::Value::F32Array(scores)},
      {"tokenizer.ggml.token_type", gguf::Value::I32Array(types)},
      {"tokenizer.ggml.unknown_token_id", gguf::Value::U32(0)},
      {"tokenizer.ggml.bos_token_id", gguf::Value::U32(1)},
      {"tokenizer.ggml.eos_token_id", gguf::Value::U32(2)},
  };
  for (const auto& [k, v] : kvs) {
    if (absl::Status s = w->AddKv(k, v); !s.ok()) return Fail(s);
  }
  for (const Tensor& t : ts) {
    if (absl::Status s = w->AddTensorInfo(t.name, GgmlType::kF32, t.ne); !s.ok()) return Fail(s);
  }
  for (const Tensor& t : ts) {
    if (absl::Status s = w->WriteTensorData(t.data.data(), t.data.size() * 4); !s.ok()) return Fail(s);
  }
  if (absl::Status s = w->Finish(); !s.ok()) return Fail(s);

  // Importance per input column of every matrix (not the embedding, which
  // is a row lookup): squared activations summed over `count` tokens.
  auto im = gguf::GgufWriter::Create(argv[2]);
  if (!im.ok()) return Fail(im.status());
  if (absl::Status s = im->AddKv("general.type", gguf::Value::Str("imatrix")); !s.ok()) return Fail(s);
  std::vector<Tensor> sums;
  std::gamma_distribution<float> g(0.5f, 2.0f);
  for (const Tensor& t : ts) {
    if (t.ne.size() != 2 || t.name == "token_embd.weight") continue;
    Tensor s{t.name + ".in_sum2", {t.ne[0], 1}, std::vector<float>(t.ne[0])};
    for (float& v : s.data) v = 37.0f * g(rng);
    sums.push_back(std::move(s));
    sums.push_back(Tensor{t.name + ".counts", {1, 1}, {37.0f}});
  }
  for (const Tensor& t : sums) {
    if (absl::Status s = im->AddTensorInfo(t.name, GgmlType::kF32, t.ne); !s.ok()) return Fail(s);
  }
  for (const Tensor& t : sums) {
    if (absl::Status s = im->WriteTensorData(t.data.data(), t.data.size() * 4); !s.ok()) return Fail(s);
  }
  if (absl::Status s = im->Finish(); !s.ok()) return Fail(s);
  std::printf("wrote %s and %s\n", argv[1], argv[2]);
  return 0;
}
