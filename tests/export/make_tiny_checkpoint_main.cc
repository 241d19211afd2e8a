// qatk_make_tiny_checkpoint DIR RECIPE [TOKENIZER_TEXT [OUT.gguf]] [FLAGS]: a
// random checkpoint for the interop tests (RECIPE: none | q4_0 | q4_0_q2head),
// and its GGUF export (the same code path as `qat export --format gguf`).
// Flags (after the positional arguments):
//   --config HF.json   shrink this hub config.json (TinyModelOptions::hf_config_path)
//                      instead of the built-in llama config
//   --outtype T        GGUF --outtype (auto, f32, q4_0, ...; default auto)
//   --untied           with --config: tie_word_embeddings false
//   --layers N, --hidden N, --heads N, --kv-heads N, --head-dim N, --vocab-pad N,
//   --embed-std X, --weight-std X
//                      sizes and init stds (weight_std 1.5 by default: peaked
//                      logits; tied heads need a smaller embedding std)
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "export/gguf_export.h"
#include "formats/util/file_io.h"
#include "tests/export/tiny_checkpoint.h"

int main(int argc, char** argv) {
  std::vector<std::string> pos;
  std::string config, outtype = "auto";
  qatk::testing::TinyModelOptions o;
  o.weight_std = 1.5;  // peaked next-token distributions: greedy is not a coin toss
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--", 0) != 0) {
      pos.push_back(a);
      continue;
    }
    if (a == "--untied") {
      o.untie = true;
      continue;
    }
    if (i + 1 >= argc) return std::fprintf(stderr, "%s needs a value\n", a.c_str()), 2;
    const std::string v = argv[++i];
    if (a == "--config") config = v;
    else if (a == "--outtype") outtype = v;
    else if (a == "--layers") o.layers = std::atoi(v.c_str());
    else if (a == "--hidden") o.hidden = std::atoi(v.c_str());
    else if (a == "--heads") o.heads = std::atoi(v.c_str());
    else if (a == "--kv-heads") o.kv_heads = std::atoi(v.c_str());
    else if (a == "--head-dim") o.head_dim = std::atoi(v.c_str());
    else if (a == "--vocab-pad") o.vocab_pad = std::atoi(v.c_str());
    else if (a == "--embed-std") o.embed_std = std::atof(v.c_str());
    else if (a == "--weight-std") o.weight_std = std::atof(v.c_str());
    else return std::fprintf(stderr, "unknown flag %s\n", a.c_str()), 2;
  }
  if (pos.size() < 2) {
    std::fprintf(stderr, "usage: %s DIR none|q4_0|q4_0_q2head [TEXT [OUT.gguf]] [--config HF.json] "
                 "[--outtype T] [--untied] [--layers N] [--hidden N] [--heads N] [--kv-heads N] "
                 "[--head-dim N] [--vocab-pad N] [--embed-std X] [--weight-std X]\n", argv[0]);
    return 2;
  }
  const std::string& recipe = pos[1];
  if (recipe == "q4_0") o.recipe_json = qatk::testing::RecipeQ4_0();
  if (recipe == "q4_0_q2head") o.recipe_json = qatk::testing::RecipeQ4_0Q2Head();
  o.vocab = 512;
  o.context = 512;
  o.hf_config_path = config;
  if (pos.size() > 2 && !pos[2].empty()) {
    auto text = qatk::ReadFileToString(pos[2]);
    if (!text.ok()) return std::fprintf(stderr, "%s\n", text.status().ToString().c_str()), 1;
    o.tokenizer_text = *text;
  }
  const absl::Status s = qatk::testing::WriteTinyCheckpoint(pos[0], o);
  if (!s.ok()) return std::fprintf(stderr, "%s\n", s.ToString().c_str()), 1;
  if (pos.size() > 3) {
    qatk::exporter::GgufExportOptions e;
    e.model_dir = pos[0];
    e.out = pos[3];
    e.outtype = outtype;
    const absl::Status g = qatk::exporter::ExportGguf(e);
    if (!g.ok()) return std::fprintf(stderr, "%s\n", g.ToString().c_str()), 1;
  }
  return 0;
}
