// qatk_make_hf_tok_checkpoint DIR TOKENIZER_DIR PAD BOS EOS [OUT.gguf [OUT.qmob]]: a tiny
// random Llama checkpoint (hidden 32, 1 layer) whose tokenizer is the
// tokenizer.json of TOKENIZER_DIR (embedding rows = its size + PAD), and its
// GGUF and mobile exports (the code paths of `qat export`).
#include <cstdio>
#include <cstdlib>
#include <string>

#include "export/gguf_export.h"
#include "export/mobile_export.h"
#include "tests/export/tiny_checkpoint.h"

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: %s DIR TOKENIZER_DIR PAD BOS EOS [OUT.gguf]\n", argv[0]);
    return 2;
  }
  qatk::testing::TinyModelOptions o;
  o.hf_tokenizer_dir = argv[2];
  o.vocab_pad = std::atoi(argv[3]);
  o.bos_id = std::atoll(argv[4]);
  o.eos_id = std::atoll(argv[5]);
  o.hidden = 32;
  o.intermediate = 64;
  o.layers = 1;
  o.heads = 2;
  o.kv_heads = 1;
  o.head_dim = 16;
  o.tied = true;
  const absl::Status s = qatk::testing::WriteTinyCheckpoint(argv[1], o);
  if (!s.ok()) return std::fprintf(stderr, "%s\n", s.ToString().c_str()), 1;
  if (argc > 6) {
    qatk::exporter::GgufExportOptions e;
    e.model_dir = argv[1];
    e.out = argv[6];
    e.outtype = "q8_0";  // keeps a 262k-row embedding at a few MB
    const absl::Status g = qatk::exporter::ExportGguf(e);
    if (!g.ok()) return std::fprintf(stderr, "%s\n", g.ToString().c_str()), 1;
  }
  if (argc > 7) {
    qatk::exporter::MobileExportOptions m;
    m.model_dir = argv[1];
    m.out = argv[7];
    const absl::Status g = qatk::exporter::ExportMobile(m);
    if (!g.ok()) return std::fprintf(stderr, "%s\n", g.ToString().c_str()), 1;
  }
  return 0;
}
