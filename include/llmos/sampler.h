/* Token sampling: repetition penalty, then greedy (temperature 0) or
 * top-k -> temperature softmax -> min-p -> top-p -> a seeded draw.
 * The same seed, parameters and logits always give the same token. */
#ifndef LLMOS_SAMPLER_H
#define LLMOS_SAMPLER_H

#include "llmos/base.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lm_sampler_params {
    float temperature;    /* 0 = greedy (argmax); at most 100 */
    int32_t top_k;        /* 0 = whole vocabulary */
    float top_p;          /* 1 = off */
    float min_p;          /* 0 = off; keep tokens with p >= min_p * p_max */
    float repeat_penalty; /* 1 = off; > 1 discourages recent tokens; in (0, 100] */
    int32_t repeat_last_n;/* how many recent tokens the penalty looks at */
    uint64_t seed;
} lm_sampler_params;

/* llama.cpp's defaults: temp 0.8, top-k 40, top-p 0.95, min-p 0.05, no penalty. */
lm_sampler_params lm_sampler_default_params(void);

typedef struct lm_sampler lm_sampler;

lm_status lm_sampler_init(const lm_sampler_params *params, int32_t n_vocab, lm_sampler **out, lm_error *err);
void lm_sampler_free(lm_sampler *s);

/* Picks a token from n_vocab logits (not modified). history holds the tokens
 * so far (for the repetition penalty). Returns the token id. */
int32_t lm_sampler_sample(lm_sampler *s, const float *logits, const int32_t *history, size_t n_history);

#ifdef __cplusplus
}
#endif
#endif
