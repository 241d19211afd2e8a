#include "qat/data/tokenizer.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "formats/util/file_io.h"
#include "formats/util/status_macros.h"
#include "qat/data/sentencepiece_bridge.h"

#ifndef QATK_SPM_MODULE_PATH
#define QATK_SPM_MODULE_PATH ""
#endif

namespace qatk::data {
namespace {

std::string ExeDir() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return ".";
  std::string path(buf, n);
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

absl::StatusOr<const SpmApi*> LoadModule() {
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("QATK_SPM_MODULE"); env && *env) candidates.push_back(env);
  candidates.push_back(ExeDir() + "/libqatk_spm.so");
  if (*QATK_SPM_MODULE_PATH) candidates.push_back(QATK_SPM_MODULE_PATH);
  std::vector<std::string> errors;
  for (const std::string& path : candidates) {
    void* lib = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (lib == nullptr) {
      errors.push_back(::dlerror());
      continue;
    }
    auto fn = reinterpret_cast<const SpmApi* (*)()>(::dlsym(lib, "qatk_spm_api"));
    if (fn == nullptr || fn()->version != kSpmApiVersion) {
      errors.push_back(absl::StrCat(path, ": not a qatkit sentencepiece module of version ", kSpmApiVersion));
      continue;
    }
    return fn();
  }
  return absl::NotFoundError(absl::StrCat("cannot load the sentencepiece module libqatk_spm.so (set QATK_SPM_MODULE): ",
                                          absl::StrJoin(errors, "; ")));
}

absl::StatusOr<const SpmApi*> Module() {
  static std::once_flag once;
  static absl::StatusOr<const SpmApi*>* module = nullptr;
  std::call_once(once, [] { module = new absl::StatusOr<const SpmApi*>(LoadModule()); });
  return *module;
}

}  // namespace

uint64_t Fnv1a64(const void* data, size_t n, uint64_t seed) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint64_t h = seed;
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

absl::StatusOr<Tokenizer> Tokenizer::FromSerialized(std::string model_proto, const std::string& name) {
  ASSIGN_OR_RETURN(const SpmApi* api, Module());
  std::string error;
  void* handle = api->load(model_proto, &error);
  if (handle == nullptr) {
    return absl::DataLossError(absl::StrCat(name, ": not a valid SentencePiece model (", error, ")"));
  }
  Tokenizer t;
  t.proto_ = std::move(model_proto);
  t.api_ = api;
  t.sp_ = std::shared_ptr<void>(handle, api->release);
  return t;
}

absl::StatusOr<Tokenizer> Tokenizer::Load(const std::string& path) {
  ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path));
  return FromSerialized(std::move(bytes), path);
}

absl::StatusOr<Tokenizer> Tokenizer::Train(const std::string& text_file, int vocab_size,
                                           int num_threads) {
  if (vocab_size < 300) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--vocab ", vocab_size, " is too small: byte fallback alone needs 259 pieces"));
  }
  RETURN_IF_ERROR(ReadFileToString(text_file).status());  // a clear kNotFound first
  ASSIGN_OR_RETURN(const SpmApi* api, Module());
  std::string proto, error;
  if (!api->train_bpe(text_file, vocab_size, num_threads, &proto, &error)) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer training on '", text_file,
                                                   "' failed: ", error));
  }
  return FromSerialized(std::move(proto), text_file);
}

absl::Status Tokenizer::Save(const std::string& path) const { return WriteFileAtomic(path, proto_); }

std::vector<int32_t> Tokenizer::Encode(const std::string& text) const {
  std::vector<int32_t> ids;
  api_->encode(sp_.get(), text, &ids);
  return ids;
}
std::string Tokenizer::Decode(const std::vector<int32_t>& ids) const { return api_->decode(sp_.get(), ids); }
int Tokenizer::vocab_size() const { return api_->vocab_size(sp_.get()); }
int Tokenizer::bos_id() const { return api_->bos_id(sp_.get()); }
int Tokenizer::eos_id() const { return api_->eos_id(sp_.get()); }
int Tokenizer::unk_id() const { return api_->unk_id(sp_.get()); }
std::string Tokenizer::piece(int id) const { return api_->id_to_piece(sp_.get(), id); }
float Tokenizer::score(int id) const { return api_->score(sp_.get(), id); }
int Tokenizer::token_type(int id) const { return api_->token_type(sp_.get(), id); }
uint64_t Tokenizer::fingerprint() const { return Fnv1a64(proto_.data(), proto_.size()); }

}  // namespace qatk::data
