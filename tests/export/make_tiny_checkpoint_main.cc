// qatk_make_tiny_checkpoint DIR RECIPE [TOKENIZER_TEXT [OUT.gguf]]: a random
// checkpoint for the interop test (RECIPE: none | q4_0 | q4_0_q2head), and its
// GGUF export (the same code path as `qat export --format gguf`).
#include <cstdio>
#include <string>

#include "export/gguf_export.h"
#include "formats/util/file_io.h"
#include "tests/export/tiny_checkpoint.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s DIR none|q4_0|q4_0_q2head [TEXT]\n", argv[0]);
    return 2;
  }
  qatk::testing::TinyModelOptions o;
  const std::string recipe = argv[2];
  if (recipe == "q4_0") o.recipe_json = qatk::testing::RecipeQ4_0();
  if (recipe == "q4_0_q2head") o.recipe_json = qatk::testing::RecipeQ4_0Q2Head();
  o.vocab = 512;
  o.context = 512;
  o.weight_std = 1.5;  // peaked next-token distributions: greedy is not a coin toss
  if (argc > 3 && argv[3][0] != '\0') {
    auto text = qatk::ReadFileToString(argv[3]);
    if (!text.ok()) return std::fprintf(stderr, "%s\n", text.status().ToString().c_str()), 1;
    o.tokenizer_text = *text;
  }
  const absl::Status s = qatk::testing::WriteTinyCheckpoint(argv[1], o);
  if (!s.ok()) return std::fprintf(stderr, "%s\n", s.ToString().c_str()), 1;
  if (argc > 4) {
    qatk::exporter::GgufExportOptions e;
    e.model_dir = argv[1];
    e.out = argv[4];
    const absl::Status g = qatk::exporter::ExportGguf(e);
    if (!g.ok()) return std::fprintf(stderr, "%s\n", g.ToString().c_str()), 1;
  }
  return 0;
}
