// libsentencepiece, isolated. The Debian libsentencepiece.so embeds and
// exports its own protobuf-lite, which collides with the libprotobuf.so that
// LibTorch loads (the process crashes in protobuf's static initialisers). So
// sentencepiece is only linked into a small module, libqatk_spm.so, which
// tokenizer.cc loads with dlopen(RTLD_LOCAL | RTLD_DEEPBIND): each protobuf
// then only sees its own symbols. The module's only export is qatk_spm_api().
// (Its headers also clash with Abseil's string_view, another reason to keep
// them in one file.)
#ifndef QATK_QAT_DATA_SENTENCEPIECE_BRIDGE_H_
#define QATK_QAT_DATA_SENTENCEPIECE_BRIDGE_H_

#include <cstdint>
#include <string>
#include <vector>

namespace qatk::data {

// Function table of the module; handles are SentencePieceProcessor*.
struct SpmApi {
  int version;  // kSpmApiVersion
  void* (*load)(const std::string& model_proto, std::string* error);  // nullptr on error
  void (*release)(void* handle);
  void (*encode)(const void* handle, const std::string& text, std::vector<int32_t>* ids);
  std::string (*decode)(const void* handle, const std::vector<int32_t>& ids);
  int (*vocab_size)(const void* handle);
  int (*bos_id)(const void* handle);
  int (*eos_id)(const void* handle);
  int (*unk_id)(const void* handle);
  std::string (*id_to_piece)(const void* handle, int id);
  float (*score)(const void* handle, int id);
  // GGUF token type: 1 normal, 2 unknown, 3 control, 5 unused, 6 byte.
  int (*token_type)(const void* handle, int id);
  // BPE on the lines of input_file with the settings llama.cpp tokenizes
  // identically (docs/formats/gguf.md, "Tokenizer metadata"). false + *error on failure.
  bool (*train_bpe)(const std::string& input_file, int vocab_size, int num_threads,
                    std::string* model_proto, std::string* error);
};

constexpr int kSpmApiVersion = 1;

}  // namespace qatk::data

extern "C" const qatk::data::SpmApi* qatk_spm_api();

#endif  // QATK_QAT_DATA_SENTENCEPIECE_BRIDGE_H_
