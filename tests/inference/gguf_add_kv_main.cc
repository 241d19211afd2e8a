// Not a test: copies a GGUF file with one more string key, for tests that
// need metadata an export does not write (generate_chat_test.sh adds
// tokenizer.chat_template).
//
//   gguf_add_kv IN.gguf OUT.gguf KEY VALUE_FILE   (the value: VALUE_FILE's bytes)
#include <cstdio>
#include <string>

#include "formats/gguf/gguf.h"
#include "formats/util/file_io.h"

namespace {

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "gguf_add_kv: %s\n", std::string(s.message()).c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s IN.gguf OUT.gguf KEY VALUE_FILE\n", argv[0]);
    return 2;
  }
  namespace gguf = qatk::gguf;
  auto in = gguf::GgufFile::Open(argv[1]);
  if (!in.ok()) return Fail(in.status());
  auto value = qatk::ReadFileToString(argv[4]);
  if (!value.ok()) return Fail(value.status());
  auto w = gguf::GgufWriter::Create(argv[2], in->alignment());
  if (!w.ok()) return Fail(w.status());
  for (const auto& [key, v] : in->metadata()) {
    if (key == "general.alignment") continue;  // the writer adds it
    if (absl::Status s = w->AddKv(key, v); !s.ok()) return Fail(s);
  }
  if (absl::Status s = w->AddKv(argv[3], gguf::Value::Str(*value)); !s.ok()) return Fail(s);
  for (const gguf::TensorInfo& t : in->tensors()) {
    if (absl::Status s = w->AddTensorInfo(t.name, t.type, t.ne); !s.ok()) return Fail(s);
  }
  for (const gguf::TensorInfo& t : in->tensors()) {
    if (absl::Status s = w->WriteTensorData(in->TensorData(t), t.nbytes); !s.ok()) return Fail(s);
  }
  if (absl::Status s = w->Finish(); !s.ok()) return Fail(s);
  return 0;
}
