/* Generates text with the qatkit runtime's C API (qatk_runtime.h).
 *
 *   cc generate.c -o generate $(pkg-config --cflags --libs qatk_runtime_c)
 *   ./generate model.qmob "Once upon a time" [n_tokens] [temperature]
 *
 * Streams the sampled text to stdout; errors go to stderr with the runtime's
 * status name and message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qatk_runtime.h>

static int on_token(int32_t token, const char* piece, size_t piece_len, void* user_data) {
  (void)token;
  (void)user_data;
  fwrite(piece, 1, piece_len, stdout);
  fflush(stdout);
  return 0; /* nonzero would stop the generation */
}

static int report(const char* what, qatk_status s) {
  fprintf(stderr, "%s: %s: %s\n", what, qatk_status_string(s), qatk_last_error());
  return 1;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s MODEL PROMPT [N_TOKENS] [TEMPERATURE]\n", argv[0]);
    return 2;
  }
  qatk_model* model = NULL;
  qatk_status s = qatk_model_load(argv[1], NULL, &model);
  if (s != QATK_OK) return report("load", s);

  qatk_context_params cp;
  qatk_context_params_init(&cp);
  cp.n_threads = 2;
  qatk_context* ctx = NULL;
  s = qatk_context_create(model, &cp, &ctx);
  if (s != QATK_OK) {
    qatk_model_free(model);
    return report("context", s);
  }

  qatk_sampling_params sp;
  qatk_sampling_params_init(&sp);
  sp.max_tokens = argc > 3 ? atoi(argv[3]) : 32;
  sp.temperature = argc > 4 ? (float)atof(argv[4]) : 0.8f;
  sp.seed = 42;

  fputs(argv[2], stdout);
  int32_t n = 0;
  s = qatk_generate(ctx, argv[2], &sp, on_token, NULL, &n);
  fputs("\n", stdout);
  qatk_context_free(ctx);
  qatk_model_free(model);
  if (s != QATK_OK) return report("generate", s);
  fprintf(stderr, "generated %d tokens\n", (int)n);
  return 0;
}
