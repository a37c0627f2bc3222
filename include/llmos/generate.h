/* The generation loop: prompt -> tokens -> forward -> sampler -> token -> text. */
#ifndef LLMOS_GENERATE_H
#define LLMOS_GENERATE_H

#include "llmos/model.h"
#include "llmos/sampler.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lm_generate_params {
    lm_sampler_params sampling;
    int64_t n_predict; /* tokens to generate at most */
    int64_t n_ctx;     /* KV cache positions; 0 = prompt + n_predict, capped at the model's context */
    int n_threads;
    int add_bos;       /* -1: BOS/EOS as the tokenizer's metadata says; 0: none; 1: BOS always */
    lm_kv_type kv_type; /* the KV cache's element type (0: f32) */
} lm_generate_params;

/* Receives each generated token and the complete UTF-8 bytes it adds (a
 * character split across tokens arrives with the token that completes it;
 * token -1 carries an incomplete remainder at the end). Nonzero stops. */
typedef int (*lm_token_callback)(void *user, int32_t token, const char *text, size_t len);

typedef struct lm_generate_stats {
    int64_t n_prompt;    /* prompt tokens, BOS included */
    int64_t n_generated;
    double prompt_seconds;
    double generate_seconds;
    int stop_reason;     /* 0: n_predict reached, 1: end of generation token, 2: context full, 3: callback */
} lm_generate_stats;

lm_status lm_generate(const lm_model *m, const char *prompt, size_t prompt_len, const lm_generate_params *params,
                      lm_token_callback callback, void *user, lm_generate_stats *stats, lm_error *err);

#ifdef __cplusplus
}
#endif
#endif
