/* qatk_runtime.h: the C API of the qatkit runtime (qat-run's engine) for
 * apps: load a GGUF or qatkit mobile (.qmob) model, tokenize, evaluate
 * logits, generate text with sampling and a streaming token callback.
 *
 * Link: libqatk_runtime_c.so (shared) or libqatk_runtime_c.a (static; then
 * also link the C++ runtime: c++ or cc ... -lstdc++ -lm -lpthread).
 *
 * Errors: every function that can fail returns a qatk_status; QATK_OK is 0.
 * On failure qatk_last_error() returns a message for the calling thread
 * (valid until that thread's next API call). No C++ exception ever crosses
 * this API, and a malformed model file is reported, never a crash.
 *
 * Thread safety:
 *  - A qatk_model is immutable once loaded: any number of threads may use one
 *    model at the same time (tokenize, detokenize, create contexts).
 *  - A qatk_context (one sequence: KV cache, thread pool, sampler state) must
 *    be used by one thread at a time; use one context per concurrent
 *    sequence. Different contexts may run concurrently.
 *  - Contexts keep their model's weights alive: qatk_model_free may be called
 *    while contexts exist; the memory goes with the last of them.
 *  - Callbacks run on the calling thread, inside qatk_generate; they must not
 *    call into the same context.
 */
#ifndef QATK_RUNTIME_H_
#define QATK_RUNTIME_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define QATK_API
#else
#define QATK_API __attribute__((visibility("default")))
#endif

typedef enum qatk_status {
  QATK_OK = 0,
  QATK_ERR_INVALID_ARGUMENT = 1, /* null pointer, bad parameter, bad token id */
  QATK_ERR_IO = 2,               /* file missing or unreadable */
  QATK_ERR_INVALID_MODEL = 3,    /* not a model this runtime reads, or corrupt */
  QATK_ERR_OUT_OF_RANGE = 4,     /* context full, or a buffer too small */
  QATK_ERR_UNSUPPORTED = 5,      /* valid file, feature not available here */
  QATK_ERR_INTERNAL = 6          /* anything else (out of memory, ...) */
} qatk_status;

typedef struct qatk_model qatk_model;     /* opaque */
typedef struct qatk_context qatk_context; /* opaque */

/* The library's version, "major.minor.patch". */
QATK_API const char* qatk_version(void);
/* A fixed English name of a status ("ok", "invalid argument", ...). */
QATK_API const char* qatk_status_string(qatk_status status);
/* The message of the calling thread's last failed call ("" if none). */
QATK_API const char* qatk_last_error(void);

/* ---- model ---------------------------------------------------------------- */

typedef struct qatk_model_params {
  /* Rearrange weights at load for the CPU kernels (default 1). */
  int repack;
} qatk_model_params;

QATK_API void qatk_model_params_init(qatk_model_params* params);

/* Opens a GGUF or mobile file (chosen by its magic). params may be NULL. */
QATK_API qatk_status qatk_model_load(const char* path, const qatk_model_params* params,
                                     qatk_model** out_model);
/* NULL is ignored. */
QATK_API void qatk_model_free(qatk_model* model);

QATK_API int32_t qatk_model_n_vocab(const qatk_model* model);
QATK_API int32_t qatk_model_n_ctx_train(const qatk_model* model);
QATK_API int32_t qatk_model_bos(const qatk_model* model);
QATK_API int32_t qatk_model_eos(const qatk_model* model);

/* ---- tokenizer ------------------------------------------------------------ */

/* Token ids of text[0..text_len) (BOS first when add_bos and the model wants
 * one) into tokens[capacity]; *n_tokens gets the count. When capacity is too
 * small: QATK_ERR_OUT_OF_RANGE, *n_tokens = the count needed, tokens holds
 * the first capacity ids. tokens may be NULL when capacity is 0. */
QATK_API qatk_status qatk_tokenize(const qatk_model* model, const char* text, size_t text_len,
                                   int add_bos, int32_t* tokens, size_t capacity,
                                   size_t* n_tokens);

/* The bytes of tokens[n] into buf[capacity], NUL-terminated when room is
 * left; *n_bytes gets the byte count (without NUL). Too small a buffer:
 * QATK_ERR_OUT_OF_RANGE and *n_bytes = the bytes needed. Bytes of
 * byte-fallback tokens may split UTF-8 sequences across calls. */
QATK_API qatk_status qatk_detokenize(const qatk_model* model, const int32_t* tokens, size_t n,
                                     char* buf, size_t capacity, size_t* n_bytes);

/* ---- context (one sequence) ---------------------------------------------- */

typedef enum qatk_kv_type {
  QATK_KV_F16 = 0,
  QATK_KV_F32 = 1,
  QATK_KV_INT8 = 2, /* needs the model's static k/v scales (mobile files) */
  QATK_KV_Q8_0 = 3
} qatk_kv_type;

typedef struct qatk_context_params {
  int32_t n_ctx;     /* positions (default 512; <= 0: the model's training context) */
  int32_t n_threads; /* CPU threads (default 0: all cores) */
  qatk_kv_type kv_type;
} qatk_context_params;

QATK_API void qatk_context_params_init(qatk_context_params* params);
/* params may be NULL. */
QATK_API qatk_status qatk_context_create(const qatk_model* model,
                                         const qatk_context_params* params,
                                         qatk_context** out_ctx);
QATK_API void qatk_context_free(qatk_context* ctx);
/* Forgets the sequence (n_past = 0). */
QATK_API void qatk_context_reset(qatk_context* ctx);
QATK_API int32_t qatk_context_n_past(const qatk_context* ctx);
QATK_API int32_t qatk_context_n_ctx(const qatk_context* ctx);

/* Appends tokens[n] to the sequence; *logits (may be NULL) gets the last
 * token's n_vocab logits, owned by ctx and valid until its next call.
 * QATK_ERR_OUT_OF_RANGE when the context would overflow (nothing appended). */
QATK_API qatk_status qatk_eval(qatk_context* ctx, const int32_t* tokens, size_t n,
                               const float** logits);

/* ---- generation ----------------------------------------------------------- */

typedef struct qatk_sampling_params {
  float temperature; /* <= 0: greedy (default 0.8) */
  int32_t top_k;     /* <= 0: off (default 40) */
  float top_p;       /* >= 1: off (default 0.95) */
  uint64_t seed;     /* default 0 */
  int32_t max_tokens;  /* tokens to generate (default 128) */
  int stop_at_eos;     /* default 1 */
} qatk_sampling_params;

QATK_API void qatk_sampling_params_init(qatk_sampling_params* params);

/* Called once per generated token with its id and bytes (piece[piece_len],
 * not NUL-terminated). Return 0 to go on, nonzero to stop. */
typedef int (*qatk_token_callback)(int32_t token, const char* piece, size_t piece_len,
                                   void* user_data);

/* Evaluates prompt (tokenized with BOS on an empty context) after what ctx
 * holds, then samples up to max_tokens tokens, calling callback (may be
 * NULL) for each; stops early at EOS, at a full context or when the callback
 * says so; each sampled token is appended to the sequence while room is
 * left, so a later call continues it. *n_generated (may be NULL) gets the
 * count. params may be NULL. */
QATK_API qatk_status qatk_generate(qatk_context* ctx, const char* prompt,
                                   const qatk_sampling_params* params,
                                   qatk_token_callback callback, void* user_data,
                                   int32_t* n_generated);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* QATK_RUNTIME_H_ */
