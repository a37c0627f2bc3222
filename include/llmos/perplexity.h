/* Perplexity of a model on a text, optionally against a base model's logits. */
#ifndef LLMOS_PERPLEXITY_H
#define LLMOS_PERPLEXITY_H

#include "llmos/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lm_perplexity_params {
    int64_t n_ctx;          /* tokens per chunk, BOS included (0: 512, at most the model's context) */
    int64_t max_chunks;     /* 0: the whole text */
    int n_threads;
    const lm_model *kl_base; /* NULL, or a model with the same vocabulary to compare with */
    lm_progress_fn progress; /* ("chunks", done, total) */
    void *progress_user;
} lm_perplexity_params;

typedef struct lm_perplexity_result {
    int64_t n_chunks;
    int64_t n_scored;     /* tokens whose probability was measured */
    uint64_t n_bytes;     /* bytes of text those tokens cover */
    double loss;          /* mean negative log-likelihood, nats per token */
    double perplexity;    /* exp(loss) */
    double bits_per_byte; /* total NLL / ln 2 / bytes */
    int has_kl;
    double kl_mean;       /* mean KL(base || model), nats per token */
    double top1_agreement; /* fraction of positions where both models' argmax agree */
} lm_perplexity_result;

/* The text is tokenised as untrusted text (no BOS) and cut into chunks of
 * n_ctx - 1 tokens; each chunk is evaluated after a BOS (when the vocabulary
 * has one) and every token of it is scored. */
lm_status lm_perplexity(const lm_model *m, const char *text, size_t len, const lm_perplexity_params *params,
                        lm_perplexity_result *result, lm_error *err);

#ifdef __cplusplus
}
#endif
#endif
