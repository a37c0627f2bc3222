/* A new Llama-architecture model with random weights, written as GGUF. */
#ifndef LLMOS_INIT_H
#define LLMOS_INIT_H

#include "llmos/types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lm_init_params {
    int64_t dim, n_layers, n_heads, n_kv_heads, ffn_dim, context_length;
    const char *vocab_from; /* a GGUF whose tokenizer.* keys are copied; NULL: a synthetic vocabulary */
    int64_t vocab_size;     /* size of the synthetic vocabulary (SentencePiece-style, with byte tokens) */
    lm_type type;           /* of the weight matrices; norm vectors are F32 */
    uint64_t seed;
    int n_threads;
    lm_progress_fn progress; /* (tensor name, done, total) */
    void *progress_user;
} lm_init_params;

/* Weights ~ N(0, 0.02), the residual projections (attn_output, ffn_down)
 * scaled by 1/sqrt(2 * n_layers) as in GPT-2; norms 1. Each row has its own
 * random stream, so the file is the same for any thread count. */
lm_status lm_model_init(const lm_init_params *params, const char *out_path, lm_error *err);

#ifdef __cplusplus
}
#endif
#endif
