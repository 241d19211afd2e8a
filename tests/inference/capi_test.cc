// The C API (qatk_runtime.h) on a tiny mobile model: logits equal a direct
// Session's, tokenize / detokenize round-trip, generation is reproducible and
// streams through the callback, and misuse gives status codes + messages.
#include "qatk_runtime.h"

#include <string>
#include <unistd.h>
#include <vector>

#include "gtest/gtest.h"
#include "inference/forward.h"
#include "inference/model.h"
#include "inference/model_loader.h"
#include "inference/thread_pool.h"
#include "tests/inference/tiny_mobile.h"

namespace qatk::inference {
namespace {

std::string ModelPath() {
  static const std::string path = [] {
    const std::string p =
        ::testing::TempDir() + "/qatk_" + std::to_string(::getpid()) + "_capi.qmob";
    const absl::Status st = testing::WriteTinyMobileModel(p);
    EXPECT_TRUE(st.ok()) << st;
    return p;
  }();
  return path;
}

struct Handles {
  qatk_model* model = nullptr;
  qatk_context* ctx = nullptr;
  ~Handles() {
    qatk_context_free(ctx);
    qatk_model_free(model);
  }
};

void Open(Handles& h, int n_ctx = 64) {
  ASSERT_EQ(qatk_model_load(ModelPath().c_str(), nullptr, &h.model), QATK_OK) << qatk_last_error();
  qatk_context_params cp;
  qatk_context_params_init(&cp);
  cp.n_ctx = n_ctx;
  cp.n_threads = 2;
  ASSERT_EQ(qatk_context_create(h.model, &cp, &h.ctx), QATK_OK) << qatk_last_error();
}

TEST(CApiTest, LogitsEqualASession) {
  Handles h;
  Open(h);
  const int32_t ids[] = {1, 5, 30, 7};
  const float* logits = nullptr;
  ASSERT_EQ(qatk_eval(h.ctx, ids, 4, &logits), QATK_OK) << qatk_last_error();
  EXPECT_EQ(qatk_context_n_past(h.ctx), 4);

  auto model = LoadModel(ModelPath());
  ASSERT_TRUE(model.ok()) << model.status();
  ThreadPool pool(2);
  auto s = Session::Create(**model, 64, KvType::kF16, pool);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_TRUE((*s)->Eval(ids, 4, false).ok());
  const int V = qatk_model_n_vocab(h.model);
  ASSERT_EQ(V, (*model)->config.n_vocab);
  for (int i = 0; i < V; ++i) ASSERT_EQ(logits[i], (*s)->logits()[i]) << i;
}

TEST(CApiTest, TokenizeDetokenize) {
  Handles h;
  Open(h);
  const std::string text = "hello world";
  size_t n = 0;
  EXPECT_EQ(qatk_tokenize(h.model, text.data(), text.size(), 1, nullptr, 0, &n),
            QATK_ERR_OUT_OF_RANGE);
  ASSERT_GT(n, 1u);
  std::vector<int32_t> ids(n);
  ASSERT_EQ(qatk_tokenize(h.model, text.data(), text.size(), 1, ids.data(), n, &n), QATK_OK);
  EXPECT_EQ(ids[0], qatk_model_bos(h.model));
  size_t bytes = 0;
  EXPECT_EQ(qatk_detokenize(h.model, ids.data() + 1, n - 1, nullptr, 0, &bytes),
            QATK_ERR_OUT_OF_RANGE);
  std::vector<char> buf(bytes + 1);
  ASSERT_EQ(qatk_detokenize(h.model, ids.data() + 1, n - 1, buf.data(), buf.size(), &bytes),
            QATK_OK);
  EXPECT_EQ(std::string(buf.data()), " hello world");
}

struct Collected {
  std::vector<int32_t> ids;
  std::string text;
  size_t stop_after = 0;
};

int Collect(int32_t token, const char* piece, size_t len, void* user) {
  auto* c = static_cast<Collected*>(user);
  c->ids.push_back(token);
  c->text.append(piece, len);
  return c->stop_after != 0 && c->ids.size() >= c->stop_after;
}

TEST(CApiTest, GenerateStreamsAndRepeats) {
  qatk_sampling_params sp;
  qatk_sampling_params_init(&sp);
  sp.max_tokens = 12;
  sp.seed = 3;
  sp.stop_at_eos = 0;
  Collected a, b;
  for (Collected* c : {&a, &b}) {
    Handles h;
    Open(h);
    int32_t n = -1;
    ASSERT_EQ(qatk_generate(h.ctx, "abc", &sp, Collect, c, &n), QATK_OK) << qatk_last_error();
    EXPECT_EQ(n, 12);
    EXPECT_EQ(c->ids.size(), 12u);
  }
  EXPECT_EQ(a.ids, b.ids);
  EXPECT_EQ(a.text, b.text);

  Handles h;
  Open(h);
  Collected c;
  c.stop_after = 3;
  int32_t n = 0;
  ASSERT_EQ(qatk_generate(h.ctx, "abc", &sp, Collect, &c, &n), QATK_OK);
  EXPECT_EQ(n, 3);
  EXPECT_EQ(c.ids, std::vector<int32_t>(a.ids.begin(), a.ids.begin() + 3));
}

TEST(CApiTest, ContextOutlivesFreedModel) {
  Handles h;
  Open(h);
  qatk_model_free(h.model);
  h.model = nullptr;
  int32_t n = 0;
  ASSERT_EQ(qatk_generate(h.ctx, "ab", nullptr, nullptr, nullptr, &n), QATK_OK)
      << qatk_last_error();
}

TEST(CApiTest, ErrorsAreCodesAndMessages) {
  qatk_model* m = nullptr;
  EXPECT_EQ(qatk_model_load("/nonexistent/model.qmob", nullptr, &m), QATK_ERR_IO);
  EXPECT_EQ(m, nullptr);
  EXPECT_STRNE(qatk_last_error(), "");
  EXPECT_EQ(qatk_model_load(nullptr, nullptr, &m), QATK_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(qatk_model_load(ModelPath().c_str(), nullptr, nullptr), QATK_ERR_INVALID_ARGUMENT);
  EXPECT_STREQ(qatk_status_string(QATK_ERR_INVALID_MODEL), "invalid model file");

  Handles h;
  Open(h, 8);
  const int32_t bad[] = {1, 100000};
  EXPECT_EQ(qatk_eval(h.ctx, bad, 2, nullptr), QATK_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(qatk_last_error()).find("100000"), std::string::npos);
  EXPECT_EQ(qatk_context_n_past(h.ctx), 0);
  const std::vector<int32_t> many(9, 5);
  EXPECT_EQ(qatk_eval(h.ctx, many.data(), many.size(), nullptr), QATK_ERR_OUT_OF_RANGE);
  EXPECT_EQ(qatk_eval(h.ctx, many.data(), 8, nullptr), QATK_OK);
  EXPECT_EQ(qatk_eval(h.ctx, many.data(), 1, nullptr), QATK_ERR_OUT_OF_RANGE);
  qatk_context_reset(h.ctx);
  EXPECT_EQ(qatk_eval(h.ctx, many.data(), 1, nullptr), QATK_OK);
  EXPECT_STREQ(qatk_last_error(), "");
  qatk_context_params cp;
  qatk_context_params_init(&cp);
  cp.kv_type = static_cast<qatk_kv_type>(42);
  qatk_context* ctx = nullptr;
  EXPECT_EQ(qatk_context_create(h.model, &cp, &ctx), QATK_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(ctx, nullptr);
}

}  // namespace
}  // namespace qatk::inference
