// Fuzz-style robustness of the C API's model loading (qatk_model_load): every
// truncation point and seeded random mutations of a valid mobile file and of
// a valid GGUF file give a status code with a message, or a model that then
// evaluates; never a crash (run under ASan+UBSan by scripts/test.sh).
#include <cstdint>
#include <fstream>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

#include "formats/util/file_io.h"
#include "gtest/gtest.h"
#include "qatk_runtime.h"
#include "tests/inference/tiny_gguf.h"
#include "tests/inference/tiny_mobile.h"

namespace qatk::inference {
namespace {

std::string Tmp(const std::string& name) {
  return ::testing::TempDir() + "/qatk_" + std::to_string(::getpid()) + "_" + name;
}

std::string Read(const std::string& path) {
  auto s = ReadFileToString(path);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *s : std::string();
}

// Loads bytes through the API; a loaded model must also evaluate a token.
void LoadBytes(const std::string& bytes) {
  const std::string path = Tmp("fuzz_case.bin");
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  qatk_model* m = nullptr;
  const qatk_status s = qatk_model_load(path.c_str(), nullptr, &m);
  if (s != QATK_OK) {
    EXPECT_EQ(m, nullptr);
    EXPECT_STRNE(qatk_last_error(), "") << qatk_status_string(s);
    return;
  }
  qatk_context_params cp;
  qatk_context_params_init(&cp);
  cp.n_ctx = 8;
  cp.n_threads = 1;
  qatk_context* ctx = nullptr;
  if (qatk_context_create(m, &cp, &ctx) == QATK_OK) {
    const int32_t tok = qatk_model_bos(m) >= 0 && qatk_model_bos(m) < qatk_model_n_vocab(m)
                            ? qatk_model_bos(m) : 0;
    qatk_eval(ctx, &tok, 1, nullptr);  // any status; must not crash
    qatk_context_free(ctx);
  }
  qatk_model_free(m);
}

void Fuzz(const std::string& valid, uint32_t seed) {
  // Truncations: every byte of the header area, then a stride through the rest.
  for (size_t n = 0; n < valid.size(); n += n < 512 ? 1 : 997) LoadBytes(valid.substr(0, n));
  std::mt19937 rng(seed);
  for (int it = 0; it < 150; ++it) {
    std::string b = valid;
    const int flips = 1 + static_cast<int>(rng() % 8);
    for (int k = 0; k < flips; ++k) {
      // Mostly the metadata in front, where a flip changes the parse.
      const size_t span = rng() % 4 == 0 ? b.size() : std::min<size_t>(b.size(), 4096);
      b[rng() % span] = static_cast<char>(rng());
    }
    LoadBytes(b);
  }
  std::string junk(4096, '\0');
  for (char& c : junk) c = static_cast<char>(rng());
  LoadBytes(junk);
  LoadBytes(valid.substr(0, 4) + junk);  // the right magic, then garbage
}

TEST(CApiFuzzTest, ValidFilesLoad) {
  const std::string mob = Tmp("fuzz.qmob");
  ASSERT_TRUE(testing::WriteTinyMobileModel(mob).ok());
  qatk_model* m = nullptr;
  ASSERT_EQ(qatk_model_load(mob.c_str(), nullptr, &m), QATK_OK) << qatk_last_error();
  qatk_model_free(m);
}

TEST(CApiFuzzTest, CorruptMobileFiles) {
  const std::string mob = Tmp("fuzz.qmob");
  ASSERT_TRUE(testing::WriteTinyMobileModel(mob).ok());
  Fuzz(Read(mob), 1);
}

TEST(CApiFuzzTest, CorruptGgufFiles) {
  Fuzz(Read(testing::WriteTinyModel("llama")), 2);
}

}  // namespace
}  // namespace qatk::inference
