// llama.cpp's own quantization of an F32/F16 GGUF (the baseline files people
// download), through libllama from npm node-llama-cpp, plus a byte check of
// our reference codecs against every tensor it wrote.
//
//   llamacpp_quantize IN.gguf OUT.gguf FTYPE [--imatrix IMATRIX.gguf]
//                     [--threads N] [--lib DIR] [--check]
//
// FTYPE: q4_0, q8_0, q4_k_m, q4_k_s, q6_k (llama_ftype by name). The
// imatrix file is llama-imatrix's GGUF format (<tensor>.in_sum2 and
// <tensor>.counts per weight); it is normalized as llama-quantize does
// (sums / count, 1 where a count is 0) and handed to llama_model_quantize
// through its C struct llama_model_imatrix_data array (name, data, size;
// null name ends it), so no C++ type crosses the library boundary.
// --check re-quantizes every Q4_0/Q8_0/Q4_K/Q6_K tensor of OUT from IN with
// formats/quant (QuantizeRows, with the tensor's importance row when an
// imatrix is given) and compares bytes; exit 1 on any difference.
// Exit 77 when libllama is not found (callers skip).
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "formats/gguf/gguf.h"
#include "formats/quant/codecs.h"
#include "formats/quant/kquants.h"

namespace {

using qatk::GgmlType;
using qatk::gguf::GgufFile;

// llama.h's llama_model_quantize_params (llama.cpp as shipped by
// node-llama-cpp 3.x; enums are C ints).
struct LlamaQuantizeParams {
  int32_t nthread;
  int32_t ftype;
  int32_t output_tensor_type;
  int32_t token_embedding_type;
  bool allow_requantize;
  bool quantize_output_tensor;
  bool only_copy;
  bool pure;
  bool keep_split;
  bool dry_run;
  const void* imatrix;  // const llama_model_imatrix_data*
  const void* kv_overrides;
  const void* tt_overrides;
  const int32_t* prune_layers;
  size_t max_buf_size;
};
static_assert(sizeof(LlamaQuantizeParams) == 64, "llama_model_quantize_params layout");

struct LlamaImatrixData {
  const char* name;
  const float* data;
  size_t size;
};

int Fail(const std::string& msg) {
  std::fprintf(stderr, "llamacpp_quantize: %s\n", msg.c_str());
  return 1;
}

std::string DefaultLibDir() {
#ifdef QATK_SOURCE_DIR
  return std::string(QATK_SOURCE_DIR) + "/tests/interop/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64";
#else
  return "";
#endif
}

bool FtypeFromName(const std::string& s, int32_t* out) {
  static const std::map<std::string, int32_t> kFtypes = {
      {"f32", 0}, {"f16", 1}, {"q4_0", 2}, {"q8_0", 7}, {"q4_k_s", 14}, {"q4_k_m", 15}, {"q6_k", 18}};
  const auto it = kFtypes.find(s);
  if (it == kFtypes.end()) return false;
  *out = it->second;
  return true;
}

// llama-imatrix's GGUF: per weight W, tensors "W.in_sum2" (ne {n_per_row,
// n_expert}) and "W.counts" (ne {n_expert}), both F32.
bool LoadImatrix(const std::string& path, std::map<std::string, std::vector<float>>* out, std::string* err) {
  auto f = GgufFile::Open(path);
  if (!f.ok()) {
    *err = std::string(f.status().message());
    return false;
  }
  const std::string kSums = ".in_sum2";
  for (const auto& t : f->tensors()) {
    if (t.name.size() <= kSums.size() || t.name.compare(t.name.size() - kSums.size(), kSums.size(), kSums) != 0) {
      continue;
    }
    const std::string w = t.name.substr(0, t.name.size() - kSums.size());
    const auto* c = f->FindTensor(w + ".counts");
    if (c == nullptr || t.type != GgmlType::kF32 || c->type != GgmlType::kF32 || c->n_elements() < 1 ||
        t.n_elements() % c->n_elements() != 0) {
      *err = "imatrix entry " + w + " lacks F32 counts matching its sums";
      return false;
    }
    const float* sums = reinterpret_cast<const float*>(f->TensorData(t));
    const float* counts = reinterpret_cast<const float*>(f->TensorData(*c));
    const int64_t ne0 = t.n_elements() / c->n_elements();
    std::vector<float>& e = (*out)[w];
    e.resize(t.n_elements());
    for (int64_t j = 0; j < c->n_elements(); ++j) {
      for (int64_t i = 0; i < ne0; ++i) {
        e[j * ne0 + i] = counts[j] > 0.0f ? sums[j * ne0 + i] / counts[j] : 1.0f;
      }
    }
  }
  if (out->empty()) {
    *err = path + " has no <tensor>.in_sum2 entries";
    return false;
  }
  return true;
}

// Re-quantizes OUT's block tensors from IN with formats/quant; returns the
// number of tensors that differ (printed).
int CheckCodecs(const std::string& in_path, const std::string& out_path,
                const std::map<std::string, std::vector<float>>& imatrix) {
  auto in = GgufFile::Open(in_path);
  auto out = GgufFile::Open(out_path);
  if (!in.ok() || !out.ok()) {
    Fail("cannot reopen the files for --check");
    return 1;
  }
  int bad = 0, checked = 0;
  for (const auto& t : out->tensors()) {
    if (t.type != GgmlType::kQ4_0 && t.type != GgmlType::kQ8_0 && t.type != GgmlType::kQ4_K &&
        t.type != GgmlType::kQ6_K) {
      continue;
    }
    const auto* src = in->FindTensor(t.name);
    if (src == nullptr || (src->type != GgmlType::kF32 && src->type != GgmlType::kF16)) continue;
    const int64_t n_per_row = t.ne[0], nrows = t.n_elements() / n_per_row;
    std::vector<float> x(t.n_elements());
    qatk::DequantizeRow(src->type, in->TensorData(*src), x.data(), t.n_elements());
    const float* w = nullptr;
    if (const auto it = imatrix.find(t.name); it != imatrix.end()) {
      if (static_cast<int64_t>(it->second.size()) != n_per_row) continue;  // per-expert: not here
      w = it->second.data();
    }
    if (w != nullptr && (t.type == GgmlType::kQ4_0 || t.type == GgmlType::kQ8_0)) {
      std::printf("  %-28s %-5s skipped (imatrix variant of a non-K type not implemented)\n", t.name.c_str(),
                  qatk::Traits(t.type).name);
      continue;
    }
    std::vector<uint8_t> q(qatk::RowBytes(t.type, n_per_row) * nrows);
    if (!qatk::QuantizeRows(t.type, x.data(), nrows, n_per_row, w, q.data()).ok() ||
        std::memcmp(q.data(), out->TensorData(t), q.size()) != 0) {
      std::printf("  %-28s %-5s DIFFERS\n", t.name.c_str(), qatk::Traits(t.type).name);
      ++bad;
    }
    ++checked;
  }
  std::printf("check: %d tensors re-quantized by formats/quant, %d differ from llama.cpp's\n", checked, bad);
  return bad;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr,
                 "usage: %s IN.gguf OUT.gguf FTYPE [--imatrix F.gguf] [--threads N] [--lib DIR] [--check]\n",
                 argv[0]);
    return 2;
  }
  const std::string in = argv[1], out = argv[2];
  int32_t ftype;
  if (!FtypeFromName(argv[3], &ftype)) return Fail(std::string("unknown ftype ") + argv[3]);
  std::string imatrix_path, lib_dir = DefaultLibDir();
  int threads = 1;
  bool check = false;
  for (int i = 4; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--check") {
      check = true;
    } else if (i + 1 < argc && a == "--imatrix") {
      imatrix_path = argv[++i];
    } else if (i + 1 < argc && a == "--threads") {
      threads = std::atoi(argv[++i]);
    } else if (i + 1 < argc && a == "--lib") {
      lib_dir = argv[++i];
    } else {
      return Fail("bad argument " + a);
    }
  }
  void* lib = dlopen((lib_dir + "/libllama.v0.4.0.so").c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    std::fprintf(stderr, "llamacpp_quantize: cannot load libllama from %s (%s): skipping\n", lib_dir.c_str(),
                 dlerror());
    return 77;
  }
  const auto backend_init = reinterpret_cast<void (*)()>(dlsym(lib, "llama_backend_init"));
  const auto defaults = reinterpret_cast<LlamaQuantizeParams (*)()>(dlsym(lib, "llama_model_quantize_default_params"));
  const auto quantize =
      reinterpret_cast<uint32_t (*)(const char*, const char*, const LlamaQuantizeParams*)>(
          dlsym(lib, "llama_model_quantize"));
  if (!backend_init || !defaults || !quantize) return Fail("libllama lacks llama_model_quantize");

  std::map<std::string, std::vector<float>> imatrix;
  std::vector<LlamaImatrixData> entries;
  if (!imatrix_path.empty()) {
    std::string err;
    if (!LoadImatrix(imatrix_path, &imatrix, &err)) return Fail(err);
    for (const auto& [name, v] : imatrix) entries.push_back({name.c_str(), v.data(), v.size()});
    entries.push_back({nullptr, nullptr, 0});
  }
  backend_init();
  LlamaQuantizeParams p = defaults();
  p.nthread = threads;
  p.ftype = ftype;
  p.imatrix = entries.empty() ? nullptr : entries.data();
  if (const uint32_t rc = quantize(in.c_str(), out.c_str(), &p); rc != 0) {
    return Fail("llama_model_quantize failed (" + std::to_string(rc) + ")");
  }
  std::printf("wrote %s (%s%s)\n", out.c_str(), argv[3], imatrix.empty() ? "" : ", imatrix");
  if (check && CheckCodecs(in, out, imatrix) != 0) return 1;
  return 0;
}
