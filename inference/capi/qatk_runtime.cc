// The C API (inference/include/qatk_runtime.h): a thin wrapper over
// LoadModel, Session, Tokenizer and Sampler. Every entry point catches
// everything, so no exception crosses into C; errors become a status code
// and a thread-local message.
#include "inference/include/qatk_runtime.h"

#include <algorithm>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "inference/forward.h"
#include "inference/model.h"
#include "inference/model_loader.h"
#include "inference/sampling.h"
#include "inference/thread_pool.h"
#include "formats/tokenizer/gguf_tokenizer.h"

namespace inf = qatk::inference;

// The model and the state derived from it, shared by the handle and by every
// context (contexts outlive a freed handle safely).
struct ModelState {
  std::unique_ptr<inf::Model> model;
  std::unique_ptr<qatk::tokenizer::GgufTokenizer> tokenizer;
};

struct qatk_model {
  std::shared_ptr<const ModelState> state;
};

struct qatk_context {
  std::shared_ptr<const ModelState> state;
  std::unique_ptr<inf::ThreadPool> pool;
  std::unique_ptr<inf::Session> session;  // after pool: destroyed first
};

namespace {

thread_local std::string g_last_error;

qatk_status Fail(qatk_status s, const std::string& msg) {
  g_last_error = msg;
  return s;
}

qatk_status FromStatus(const absl::Status& st, qatk_status invalid = QATK_ERR_INVALID_ARGUMENT) {
  if (st.ok()) return QATK_OK;
  qatk_status s;
  switch (st.code()) {
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kPermissionDenied: s = QATK_ERR_IO; break;
    case absl::StatusCode::kOutOfRange: s = QATK_ERR_OUT_OF_RANGE; break;
    case absl::StatusCode::kUnimplemented: s = QATK_ERR_UNSUPPORTED; break;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kDataLoss:
    case absl::StatusCode::kFailedPrecondition: s = invalid; break;
    default: s = QATK_ERR_INTERNAL; break;
  }
  return Fail(s, std::string(st.message()));
}

// Runs fn, turning any escaping exception into QATK_ERR_INTERNAL.
template <class Fn>
qatk_status Guard(Fn&& fn) {
  g_last_error.clear();
  try {
    return fn();
  } catch (const std::bad_alloc&) {
    return Fail(QATK_ERR_INTERNAL, "out of memory");
  } catch (const std::exception& e) {
    return Fail(QATK_ERR_INTERNAL, e.what());
  } catch (...) {
    return Fail(QATK_ERR_INTERNAL, "unknown error");
  }
}

qatk_status NullArg(const char* name) {
  return Fail(QATK_ERR_INVALID_ARGUMENT, std::string(name) + " is null");
}

bool ValidToken(const ModelState& m, int32_t id) {
  return id >= 0 && id < static_cast<int32_t>(m.model->vocab.tokens.size()) &&
         id < m.model->config.n_vocab;
}

}  // namespace

extern "C" {

const char* qatk_version(void) { return "0.1.0"; }

const char* qatk_status_string(qatk_status status) {
  switch (status) {
    case QATK_OK: return "ok";
    case QATK_ERR_INVALID_ARGUMENT: return "invalid argument";
    case QATK_ERR_IO: return "i/o error";
    case QATK_ERR_INVALID_MODEL: return "invalid model file";
    case QATK_ERR_OUT_OF_RANGE: return "out of range";
    case QATK_ERR_UNSUPPORTED: return "unsupported";
    case QATK_ERR_INTERNAL: return "internal error";
  }
  return "unknown status";
}

const char* qatk_last_error(void) { return g_last_error.c_str(); }

void qatk_model_params_init(qatk_model_params* params) {
  if (params != nullptr) params->repack = 1;
}

qatk_status qatk_model_load(const char* path, const qatk_model_params* params,
                            qatk_model** out_model) {
  return Guard([&] {
    if (out_model == nullptr) return NullArg("out_model");
    *out_model = nullptr;
    if (path == nullptr) return NullArg("path");
    inf::LoadOptions opt;
    if (params != nullptr) opt.repack = params->repack != 0;
    auto model = inf::LoadModel(path, opt);
    if (!model.ok()) return FromStatus(model.status(), QATK_ERR_INVALID_MODEL);
    auto state = std::make_shared<ModelState>();
    state->model = std::move(*model);
    auto tok = qatk::tokenizer::GgufTokenizer::Create(state->model->vocab, path);
    if (!tok.ok()) return FromStatus(tok.status(), QATK_ERR_INVALID_MODEL);
    state->tokenizer = std::make_unique<qatk::tokenizer::GgufTokenizer>(std::move(*tok));
    *out_model = new qatk_model{std::move(state)};
    return QATK_OK;
  });
}

void qatk_model_free(qatk_model* model) { delete model; }

int32_t qatk_model_n_vocab(const qatk_model* m) { return m ? m->state->model->config.n_vocab : 0; }
int32_t qatk_model_n_ctx_train(const qatk_model* m) {
  return m ? m->state->model->config.n_ctx_train : 0;
}
int32_t qatk_model_bos(const qatk_model* m) { return m ? m->state->model->vocab.bos : -1; }
int32_t qatk_model_eos(const qatk_model* m) { return m ? m->state->model->vocab.eos : -1; }

qatk_status qatk_tokenize(const qatk_model* model, const char* text, size_t text_len, int add_bos,
                          int32_t* tokens, size_t capacity, size_t* n_tokens) {
  return Guard([&] {
    if (model == nullptr) return NullArg("model");
    if (n_tokens == nullptr) return NullArg("n_tokens");
    if (text == nullptr && text_len > 0) return NullArg("text");
    if (tokens == nullptr && capacity > 0) return NullArg("tokens");
    auto encoded = model->state->tokenizer->Encode(
        absl::string_view(text == nullptr ? "" : text, text_len), add_bos != 0,
        /*parse_special=*/false);
    if (!encoded.ok()) return FromStatus(encoded.status(), QATK_ERR_INVALID_ARGUMENT);
    const std::vector<int32_t>& ids = *encoded;
    *n_tokens = ids.size();
    std::copy_n(ids.begin(), std::min(capacity, ids.size()), tokens);
    if (ids.size() > capacity) return Fail(QATK_ERR_OUT_OF_RANGE, "token buffer too small");
    return QATK_OK;
  });
}

qatk_status qatk_detokenize(const qatk_model* model, const int32_t* tokens, size_t n, char* buf,
                            size_t capacity, size_t* n_bytes) {
  return Guard([&] {
    if (model == nullptr) return NullArg("model");
    if (n_bytes == nullptr) return NullArg("n_bytes");
    if (tokens == nullptr && n > 0) return NullArg("tokens");
    if (buf == nullptr && capacity > 0) return NullArg("buf");
    std::string text;
    for (size_t i = 0; i < n; ++i) {
      if (!ValidToken(*model->state, tokens[i])) {
        return Fail(QATK_ERR_INVALID_ARGUMENT, "token id " + std::to_string(tokens[i]) +
                                                   " out of the vocabulary");
      }
      text += model->state->tokenizer->Piece(tokens[i]);
    }
    *n_bytes = text.size();
    if (capacity > 0) {
      std::memcpy(buf, text.data(), std::min(capacity, text.size()));
      if (text.size() < capacity) buf[text.size()] = '\0';
    }
    if (text.size() > capacity) return Fail(QATK_ERR_OUT_OF_RANGE, "text buffer too small");
    return QATK_OK;
  });
}

void qatk_context_params_init(qatk_context_params* params) {
  if (params == nullptr) return;
  params->n_ctx = 512;
  params->n_threads = 0;
  params->kv_type = QATK_KV_F16;
}

qatk_status qatk_context_create(const qatk_model* model, const qatk_context_params* params,
                                qatk_context** out_ctx) {
  return Guard([&] {
    if (out_ctx == nullptr) return NullArg("out_ctx");
    *out_ctx = nullptr;
    if (model == nullptr) return NullArg("model");
    qatk_context_params p;
    qatk_context_params_init(&p);
    if (params != nullptr) p = *params;
    const inf::Model& m = *model->state->model;
    int n_ctx = p.n_ctx > 0 ? p.n_ctx : m.config.n_ctx_train;
    if (m.config.n_ctx_train > 0) n_ctx = std::min(n_ctx, m.config.n_ctx_train);
    if (n_ctx <= 0) return Fail(QATK_ERR_INVALID_ARGUMENT, "n_ctx must be positive");
    inf::KvType kv;
    switch (p.kv_type) {
      case QATK_KV_F16: kv = inf::KvType::kF16; break;
      case QATK_KV_F32: kv = inf::KvType::kF32; break;
      case QATK_KV_INT8: kv = inf::KvType::kInt8; break;
      case QATK_KV_Q8_0: kv = inf::KvType::kQ8_0; break;
      default: return Fail(QATK_ERR_INVALID_ARGUMENT, "unknown kv_type");
    }
    const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    auto ctx = std::make_unique<qatk_context>();
    ctx->state = model->state;
    ctx->pool = std::make_unique<inf::ThreadPool>(p.n_threads > 0 ? p.n_threads : hw);
    auto session = inf::Session::Create(m, n_ctx, kv, *ctx->pool);
    if (!session.ok()) return FromStatus(session.status());
    ctx->session = std::move(*session);
    *out_ctx = ctx.release();
    return QATK_OK;
  });
}

void qatk_context_free(qatk_context* ctx) { delete ctx; }

void qatk_context_reset(qatk_context* ctx) {
  if (ctx != nullptr) ctx->session->Reset();
}
int32_t qatk_context_n_past(const qatk_context* ctx) { return ctx ? ctx->session->n_past() : 0; }
int32_t qatk_context_n_ctx(const qatk_context* ctx) { return ctx ? ctx->session->n_ctx() : 0; }

qatk_status qatk_eval(qatk_context* ctx, const int32_t* tokens, size_t n, const float** logits) {
  return Guard([&] {
    if (ctx == nullptr) return NullArg("ctx");
    if (tokens == nullptr || n == 0) return Fail(QATK_ERR_INVALID_ARGUMENT, "no tokens");
    for (size_t i = 0; i < n; ++i) {
      if (!ValidToken(*ctx->state, tokens[i])) {
        return Fail(QATK_ERR_INVALID_ARGUMENT, "token id " + std::to_string(tokens[i]) +
                                                   " out of the vocabulary");
      }
    }
    if (n > static_cast<size_t>(ctx->session->n_ctx() - ctx->session->n_past())) {
      return Fail(QATK_ERR_OUT_OF_RANGE, "the context is full");
    }
    const absl::Status st = ctx->session->Eval(tokens, static_cast<int>(n), false);
    if (!st.ok()) return FromStatus(st);
    if (logits != nullptr) *logits = ctx->session->logits();
    return QATK_OK;
  });
}

void qatk_sampling_params_init(qatk_sampling_params* params) {
  if (params == nullptr) return;
  params->temperature = 0.8f;
  params->top_k = 40;
  params->top_p = 0.95f;
  params->seed = 0;
  params->max_tokens = 128;
  params->stop_at_eos = 1;
}

qatk_status qatk_generate(qatk_context* ctx, const char* prompt,
                          const qatk_sampling_params* params, qatk_token_callback callback,
                          void* user_data, int32_t* n_generated) {
  return Guard([&] {
    if (n_generated != nullptr) *n_generated = 0;
    if (ctx == nullptr) return NullArg("ctx");
    if (prompt == nullptr) return NullArg("prompt");
    qatk_sampling_params p;
    qatk_sampling_params_init(&p);
    if (params != nullptr) p = *params;
    const ModelState& m = *ctx->state;
    inf::Session& s = *ctx->session;
    auto encoded = m.tokenizer->Encode(prompt, /*add_special=*/s.n_past() == 0,
                                       /*parse_special=*/false);
    if (!encoded.ok()) return FromStatus(encoded.status(), QATK_ERR_INVALID_ARGUMENT);
    std::vector<int32_t> ids = std::move(*encoded);
    if (ids.empty() && s.n_past() == 0) {
      return Fail(QATK_ERR_INVALID_ARGUMENT, "empty prompt on an empty context");
    }
    if (!ids.empty()) {
      const qatk_status st = qatk_eval(ctx, ids.data(), ids.size(), nullptr);
      if (st != QATK_OK) return st;
    }
    inf::Sampler sampler(inf::SamplingParams{p.temperature, p.top_k, p.top_p, p.seed},
                         m.model->config.n_vocab);
    int32_t produced = 0;
    while (produced < p.max_tokens && s.n_past() < s.n_ctx()) {
      int32_t next = sampler.Sample(s.logits());
      if (p.stop_at_eos && next == m.model->vocab.eos) break;
      ++produced;
      if (n_generated != nullptr) *n_generated = produced;
      if (callback != nullptr) {
        const std::string piece = ValidToken(m, next) ? m.tokenizer->Piece(next) : std::string();
        if (callback(next, piece.data(), piece.size(), user_data) != 0) break;
      }
      const absl::Status st = s.Eval(&next, 1, false);
      if (!st.ok()) return FromStatus(st);
    }
    return QATK_OK;
  });
}

}  // extern "C"
