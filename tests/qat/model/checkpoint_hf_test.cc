// LoadCheckpoint on a Hugging Face folder as downloaded: sharded BF16
// weights with an index, no recipe, no tokenizer.model. Every parameter
// equals the folder's values; the tokenizer is absent and RequireTokenizer
// says so; a tied head equal to the embedding is accepted.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "formats/safetensors/hf_weights.h"
#include "formats/util/file_io.h"
#include "qat/model/checkpoint.h"
#include "tests/formats/hf_fixture.h"

namespace qatk::qat {
namespace {

TEST(CheckpointHfTest, LoadsShardedBf16FolderWithoutTokenizer) {
  char tmpl[] = "/tmp/qatk_ck_hf_XXXXXX";
  const std::string root = mkdtemp(tmpl);
  auto config = testing::TinyHfConfig("llama-3.2-1b-instruct.json");
  ASSERT_TRUE(config.ok()) << config.status();
  auto f = testing::MakeHfFixture(*config, 21);
  ASSERT_TRUE(f.ok()) << f.status();
  const std::string dir = root + "/llama";
  ASSERT_TRUE(testing::WriteHfFolder(dir, *config, *f, 3, safetensors::DType::kBF16).ok());
  auto c = LoadCheckpoint(dir);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->recipe.has_value());
  EXPECT_FALSE(c->tokenizer.has_value());
  const absl::Status need = RequireTokenizer(*c);
  EXPECT_EQ(need.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(need.message().find(dir), std::string::npos) << need;
  int n = 0;
  for (const auto& p : c->model->named_parameters()) {
    SCOPED_TRACE(p.key());
    ASSERT_TRUE(f->values.count(p.key()));
    const torch::Tensor t = p.value().contiguous();
    const std::vector<float> got(t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
    EXPECT_EQ(got, f->values.at(p.key()));
    ++n;
  }
  EXPECT_EQ(n, static_cast<int>(f->values.size()));
  // A shard that lacks an indexed tensor is an error naming both.
  ASSERT_EQ(std::remove((dir + "/model-00003-of-00003.safetensors").c_str()), 0);
  auto bad = LoadCheckpoint(dir);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(bad.status().message().find("model-00003-of-00003.safetensors"), std::string::npos);
  (void)RemoveAll(root);
}

}  // namespace
}  // namespace qatk::qat
